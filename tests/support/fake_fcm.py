"""A fake Firebase Cloud Messaging: the HTTP v1 ``messages:send`` endpoint and the OAuth2 token
endpoint of a service account, real HTTP on 127.0.0.1, for ``google-auth`` and ``requests``.

``service_account_file(path)`` writes a service-account JSON file with a fresh RSA key whose
``token_uri`` is this server, so the real ``google.oauth2.service_account`` credentials get
their access token here. The token endpoint checks what Google's checks: the grant type, and a
JWT assertion signed with the file's private key (RS256, its ``kid``), issued by the account's
email, for Google's token endpoint as audience, with the FCM scope and a current
``iat``/``exp``. Only then does it issue an access token. ``messages:send`` answers 401
UNAUTHENTICATED unless the bearer token is one it issued (and not revoked since:
``revoke_access_tokens``).

Every send is recorded (``sends``); by default each is answered as FCM answers (200 with the
message ``name``). ``script`` queues other answers, used in order (``script_for``: for one
token's sends); ``unregister`` makes a token answer UNREGISTERED from then on, as FCM does for
an uninstalled app.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import exceptions, jwt

PROJECT = "journeys-test"
CLIENT_EMAIL = f"push-sender@{PROJECT}.iam.gserviceaccount.com"
SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# The audience Google's token endpoint requires in the assertion, wherever ``token_uri`` is
# (google-auth always signs for it).
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


@dataclass
class FcmAnswer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    accept: bool | None = None
    """Whether FCM took the message (None: when the status is under 300)."""


def fcm_error(
    status: int, code: str, message: str, *, token_field: bool = False, **extra: Any
) -> FcmAnswer:
    """An answer shaped like FCM v1's errors: the Google API status and FCM's errorCode."""
    api_status = {
        400: "INVALID_ARGUMENT",
        401: "UNAUTHENTICATED",
        403: "PERMISSION_DENIED",
        404: "NOT_FOUND",
        429: "RESOURCE_EXHAUSTED",
        500: "INTERNAL",
        503: "UNAVAILABLE",
    }.get(status, "UNKNOWN")
    details: list[dict[str, Any]] = [{"@type": FCM_ERROR, "errorCode": code}]
    if token_field:
        details.append(
            {
                "@type": BAD_REQUEST,
                "fieldViolations": [{"field": "message.token", "description": message}],
            }
        )
    body = {"error": {"code": status, "message": message, "status": api_status, "details": details}}
    return FcmAnswer(status, body, **extra)


@dataclass
class Sent:
    """One ``messages:send`` call as the fake received it."""

    path: str
    headers: dict[str, str]
    body: Any
    answer: FcmAnswer
    access_token: str | None

    @property
    def accepted(self) -> bool:
        accept = self.answer.accept
        return accept if accept is not None else self.answer.status < 300

    @property
    def message(self) -> dict[str, Any]:
        return self.body["message"] if isinstance(self.body, dict) else {}

    @property
    def token(self) -> str | None:
        return self.message.get("token")

    @property
    def message_id(self) -> str | None:
        return (self.message.get("data") or {}).get("journeys_message_id")


class FakeFcm:
    """The fake server; a context manager, or ``start()`` and ``stop()``."""

    def __init__(self) -> None:
        self.url = ""
        self.sends: list[Sent] = []
        self.token_requests: list[dict[str, Any]] = []
        """Each token request: the assertion's verified claims, or the reason it was refused."""
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._key_id = uuid.uuid4().hex
        self._issued: set[str] = set()
        self._scripts: list[FcmAnswer] = []
        self._per_token: dict[str, list[FcmAnswer]] = {}
        self._unregistered: set[str] = set()
        self._names = itertools.count(1)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------ what tests use

    def service_account_file(self, path: Path, project: str = PROJECT) -> Path:
        """Write a service-account key file whose ``token_uri`` is this fake."""
        private_pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        info = {
            "type": "service_account",
            "project_id": project,
            "private_key_id": self._key_id,
            "private_key": private_pem,
            "client_email": CLIENT_EMAIL,
            "client_id": "100000000000000000000",
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": f"{self.url}/token",
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "universe_domain": "googleapis.com",
        }
        path.write_text(json.dumps(info))
        return path

    def script(self, *answers: FcmAnswer) -> None:
        with self._lock:
            self._scripts.extend(answers)

    def script_for(self, token: str, *answers: FcmAnswer) -> None:
        """Queue answers for sends to ``token``, used in order before any other script."""
        with self._lock:
            self._per_token.setdefault(token, []).extend(answers)

    def unregister(self, *tokens: str) -> None:
        """These tokens answer UNREGISTERED from now on (the app was uninstalled)."""
        with self._lock:
            self._unregistered.update(tokens)

    def revoke_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (401 UNAUTHENTICATED)."""
        with self._lock:
            self._issued.clear()

    def accepted(self) -> list[Sent]:
        with self._lock:
            return [s for s in self.sends if s.accepted]

    def reset(self) -> None:
        with self._lock:
            self.sends.clear()
            self.token_requests.clear()
            self._scripts.clear()
            self._per_token.clear()
            self._unregistered.clear()

    # ------------------------------------------------------------ the two endpoints

    def _token(self, headers: dict[str, str], raw: bytes) -> tuple[int, dict[str, Any]]:
        form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        if form.get("grant_type") != JWT_GRANT:
            return self._refuse_token("unsupported_grant_type", form.get("grant_type"))
        public_pem = self._key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        try:
            # Checks the RS256 signature against the key with this id, iat/exp and audience.
            claims = jwt.decode(
                form.get("assertion", ""),
                certs={self._key_id: public_pem},
                audience=GOOGLE_TOKEN_AUDIENCE,
            )
        except (ValueError, exceptions.GoogleAuthError) as exc:
            return self._refuse_token("invalid_grant", f"bad assertion: {exc}")
        if claims.get("iss") != CLIENT_EMAIL or SCOPE not in str(claims.get("scope", "")).split():
            return self._refuse_token("invalid_scope", f"claims {claims}")
        access_token = "ya29.fake-" + uuid.uuid4().hex
        with self._lock:
            self._issued.add(access_token)
            self.token_requests.append({"claims": claims, "access_token": access_token})
        return 200, {"access_token": access_token, "expires_in": 3599, "token_type": "Bearer"}

    def _refuse_token(self, error: str, detail: Any) -> tuple[int, dict[str, Any]]:
        with self._lock:
            self.token_requests.append({"refused": error, "detail": str(detail)})
        return 400, {"error": error, "error_description": str(detail)}

    def _send(self, path: str, headers: dict[str, str], raw: bytes) -> FcmAnswer:
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        auth = headers.get("Authorization", "")
        bearer = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        project = path.removeprefix("/v1/projects/").split("/")[0]
        with self._lock:
            token = body.get("message", {}).get("token") if isinstance(body, dict) else None
            if bearer is None or bearer not in self._issued:
                answer = fcm_error(401, "UNAUTHENTICATED", "Request had invalid credentials.")
            elif self._per_token.get(token or ""):
                answer = self._per_token[token or ""].pop(0)
            elif self._scripts:
                answer = self._scripts.pop(0)
            elif token in self._unregistered:
                answer = fcm_error(404, "UNREGISTERED", "Requested entity was not found.")
            elif not token:
                answer = fcm_error(400, "INVALID_ARGUMENT", "Recipient of the message is not set.")
            else:
                name = f"projects/{project}/messages/{next(self._names)}"
                answer = FcmAnswer(200, {"name": name})
            self.sends.append(Sent(path, headers, body, answer, bearer))
        return answer

    # ------------------------------------------------------------ serving

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"
            timeout = 10

            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                path = urlsplit(self.path).path
                headers = dict(self.headers.items())
                if path == "/token":
                    status, body = fake._token(headers, raw)
                    self._answer(FcmAnswer(status, body))
                elif path.startswith("/v1/projects/") and path.endswith("/messages:send"):
                    answer = fake._send(path, headers, raw)
                    if answer.delay and fake._stopping.wait(answer.delay):
                        return
                    self._answer(answer)
                else:
                    self._answer(FcmAnswer(404, {"error": {"code": 404, "message": path}}))

            def _answer(self, answer: FcmAnswer) -> None:
                payload = b"" if answer.body is None else json.dumps(answer.body).encode()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json; charset=UTF-8")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = False
        self._server.block_on_close = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fake-fcm", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> FakeFcm:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
