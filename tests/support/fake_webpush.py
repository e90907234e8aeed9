"""A fake web push service (RFC 8030), real HTTP on 127.0.0.1, that checks what a browser's
push service checks and reads what only the browser could read.

``subscribe(application_server_key)`` is what a browser does on ``pushManager.subscribe``: it
makes a P-256 key pair and a 16-byte auth secret of the subscription's own, and an endpoint
``<url>/push/<id>`` on this server, tied to the VAPID public key it was subscribed with.

Each POST to an endpoint is checked as push services do (RFC 8292): ``Authorization: vapid
t=<JWT>, k=<key>`` where ``k`` is the key the subscription was made with, the JWT an ES256
signature by that key (verified with ``cryptography``), ``aud`` the endpoint's origin, ``exp``
in the future and at most 24 hours on, ``sub`` a mailto: or https: contact; a ``TTL`` header;
``Content-Encoding: aes128gcm``. Then the body is DECRYPTED with the subscription's private key
and auth secret (RFC 8291, implemented here from the RFC with ``cryptography``, not with the
sender's library), so a test asserts the plain text the service worker would get.

A request failing a check is answered 400/401/403 and recorded with its ``problem``. Otherwise
the answer is 201 with a ``Location``, unless ``script`` / ``script_for`` queued another;
``unsubscribe`` makes an endpoint answer 410 Gone from then on (the user revoked permission),
``forget`` 404.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import struct
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> bytes:
    public = key.public_key() if isinstance(key, ec.EllipticCurvePrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def vapid_keys() -> tuple[str, str]:
    """A fresh VAPID key pair as an operator makes one: (private key as the base64url raw
    32 bytes for ``JOURNEYS_VAPID_PRIVATE_KEY``, public key for ``applicationServerKey``)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return b64u(key.private_numbers().private_value.to_bytes(32, "big")), b64u(raw_public(key))


@dataclass
class Subscription:
    """What the browser holds: the endpoint and keys it gives the app (``keys`` is the shape of
    ``PushSubscription.toJSON()``), and the private key only it has."""

    id: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    application_server_key: str

    @property
    def p256dh(self) -> str:
        return b64u(raw_public(self.private_key))

    @property
    def keys(self) -> dict[str, str]:
        return {"p256dh": self.p256dh, "auth": b64u(self.auth)}

    def to_json(self) -> dict[str, Any]:
        return {"endpoint": self.endpoint, "expirationTime": None, "keys": self.keys}


@dataclass
class PushAnswer:
    status: int = 201
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    accept: bool | None = None
    """Whether the service took the message (None: when the status is under 300)."""


@dataclass
class Received:
    """One POST as the fake received it: what it decrypted, and what it answered."""

    subscription_id: str
    headers: dict[str, str]
    answer: PushAnswer
    claims: dict[str, Any] | None = None
    plaintext: bytes | None = None
    problem: str | None = None

    @property
    def accepted(self) -> bool:
        accept = self.answer.accept
        return accept if accept is not None else self.answer.status < 300

    @property
    def json(self) -> Any:
        return json.loads(self.plaintext) if self.plaintext is not None else None


class Refused(Exception):
    def __init__(self, status: int, problem: str) -> None:
        super().__init__(problem)
        self.status = status


def decrypt_aes128gcm(body: bytes, subscription: Subscription) -> bytes:
    """RFC 8291 section 3.4 with RFC 8188's aes128gcm: the service worker's plain text."""
    if len(body) < 21:
        raise Refused(400, "body shorter than an aes128gcm header")
    salt, (record_size,), id_length = body[:16], struct.unpack("!L", body[16:20]), body[20]
    sender_public = body[21 : 21 + id_length]
    records = body[21 + id_length :]
    if id_length != 65 or len(records) > record_size:
        raise Refused(400, "aes128gcm: keyid is not a P-256 point, or more than one record")
    try:
        as_public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), sender_public)
    except ValueError as exc:
        raise Refused(400, f"aes128gcm keyid: {exc}") from exc
    ecdh_secret = subscription.private_key.exchange(ec.ECDH(), as_public)
    ua_public = raw_public(subscription.private_key)
    key_info = b"WebPush: info\x00" + ua_public + sender_public
    ikm = HKDF(hashes.SHA256(), 32, subscription.auth, key_info).derive(ecdh_secret)
    cek = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
    try:
        padded = AESGCM(cek).decrypt(nonce, records, None)
    except InvalidTag as exc:
        raise Refused(
            400, "aes128gcm: the record does not decrypt with the subscription's keys"
        ) from exc
    content = padded.rstrip(b"\x00")
    if not content.endswith(b"\x02"):  # the last (only) record's delimiter
        raise Refused(400, "aes128gcm: no last-record padding delimiter")
    return content[:-1]


def verify_vapid(authorization: str, subscription: Subscription, origin: str) -> dict[str, Any]:
    """RFC 8292: the JWT's claims, once its ES256 signature, key, audience and expiry hold."""
    scheme, _, params = authorization.partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, f"Authorization scheme {scheme!r} is not vapid")
    fields = dict(part.strip().split("=", 1) for part in params.split(",") if "=" in part)
    token, key = fields.get("t", ""), fields.get("k", "")
    if key.rstrip("=") != subscription.application_server_key:
        raise Refused(403, "k is not the key the subscription was made with")
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64u(header_b64))
        claims = json.loads(unb64u(claims_b64))
        signature = unb64u(signature_b64)
    except ValueError as exc:
        raise Refused(401, f"t is not a JWT: {exc}") from exc
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise Refused(401, f"JWT is not ES256: {header}")
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64u(key))
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        public.verify(der, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Refused(403, "JWT signature does not verify with k") from exc
    if claims.get("aud") != origin:
        raise Refused(403, f"aud {claims.get('aud')!r} is not {origin!r}")
    exp, now = claims.get("exp"), time.time()
    if not isinstance(exp, int) or exp <= now or exp > now + 24 * 3600:
        raise Refused(403, f"exp {exp!r} is not within the next 24 hours")
    sub = str(claims.get("sub", ""))
    if not sub.startswith(("mailto:", "https:")):
        raise Refused(403, f"sub {sub!r} is not a mailto: or https: contact")
    return claims


class FakeWebPush:
    """The fake server; a context manager, or ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.url = ""
        self.received: list[Received] = []
        self._subscriptions: dict[str, Subscription] = {}
        self._gone: dict[str, int] = {}
        self._scripts: list[PushAnswer] = []
        self._per_endpoint: dict[str, list[PushAnswer]] = {}
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ test controls

    def subscribe(self, application_server_key: str) -> Subscription:
        sub_id = uuid.uuid4().hex
        subscription = Subscription(
            sub_id,
            f"{self.url}/push/{sub_id}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
            application_server_key.rstrip("="),
        )
        with self._lock:
            self._subscriptions[sub_id] = subscription
        return subscription

    def script(self, *answers: PushAnswer) -> None:
        """Answers for the next POSTs, to any endpoint, in order."""
        with self._lock:
            self._scripts.extend(answers)

    def script_for(self, subscription: Subscription, *answers: PushAnswer) -> None:
        with self._lock:
            self._per_endpoint.setdefault(subscription.id, []).extend(answers)

    def unsubscribe(self, subscription: Subscription) -> None:
        """The user revoked the permission: 410 Gone from now on."""
        with self._lock:
            self._gone[subscription.id] = 410

    def forget(self, subscription: Subscription) -> None:
        """The push service no longer knows the endpoint: 404 from now on."""
        with self._lock:
            self._gone[subscription.id] = 404

    def accepted(self) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.accepted]

    def for_subscription(self, subscription: Subscription) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.subscription_id == subscription.id]

    def accepted_per_message(self) -> Counter[str | None]:
        """How often the service took each journeys message (read from the decrypted payload)."""
        with self._lock:
            return Counter(
                (r.json or {}).get("data", {}).get("journeys_message_id")
                for r in self.received
                if r.accepted
            )

    def problems(self) -> list[str]:
        with self._lock:
            return [r.problem for r in self.received if r.problem]

    def reset(self) -> None:
        with self._lock:
            self.received.clear()
            self._scripts.clear()
            self._per_endpoint.clear()
            self._gone.clear()

    # ------------------------------------------------------------------ the service

    def _push(self, path: str, headers: dict[str, str], body: bytes) -> Received:
        sub_id = path.rsplit("/", 1)[-1]
        with self._lock:
            subscription = self._subscriptions.get(sub_id)
            gone = self._gone.get(sub_id)
        if subscription is None or gone:
            answer = PushAnswer(gone or 404, body=b"subscription not found")
            return Received(sub_id, headers, answer, problem=None)
        try:
            claims = verify_vapid(headers.get("authorization", ""), subscription, self.url)
            if not headers.get("ttl", "").isdigit():
                raise Refused(400, "no TTL header")
            if headers.get("content-encoding") != "aes128gcm":
                raise Refused(400, f"Content-Encoding {headers.get('content-encoding')!r}")
            plaintext = decrypt_aes128gcm(body, subscription)
        except Refused as refused:
            answer = PushAnswer(refused.status, body=str(refused).encode())
            return Received(sub_id, headers, answer, problem=str(refused))
        with self._lock:
            queued = self._per_endpoint.get(sub_id) or self._scripts
            answer = queued.pop(0) if queued else None
        if answer is None:
            answer = PushAnswer(201, {"Location": f"{self.url}/message/{next(self._ids)}"})
        return Received(sub_id, headers, answer, claims, plaintext)

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                received = fake._push(self.path, headers, body)
                with fake._lock:
                    fake.received.append(received)
                answer = received.answer
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeWebPush:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
