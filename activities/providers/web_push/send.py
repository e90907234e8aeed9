"""Web push (RFC 8030) to browsers' push subscriptions, through ``pywebpush``: each message is
encrypted to the subscription's keys (aes128gcm, RFC 8291) and signed for the push service
with the VAPID key from settings (RFC 8292: an ES256 JWT whose ``aud`` is the endpoint's
origin, ``exp`` 12 hours on, ``sub`` ``vapid_subject``).

One POST per subscription, as FCM has one call per token; push services take no idempotency
key either, so the message's ``device_log`` records each subscription's outcome and a retry is
given only the subscriptions not called yet. The ``Topic`` header (RFC 8030 section 5.4) is
derived from the message id: a push service holding an undelivered copy for an offline browser
replaces it instead of queueing a second, and the notification's ``tag`` is the message id, so
the browser shows one notification should a repeat ever reach it.

Statuses (push services answer plain HTTP): 201 taken; 404 and 410 the subscription is gone
(removed); 429, 408, 502, 503, 504 not taken (retried, after ``Retry-After`` when given); 413
the payload is too big (the message fails); other 4xx the push service refuses this
subscription (403: it was made for another VAPID key), kept; 500 and other 5xx, or no answer,
outcome unknown for that subscription.

Calls are blocking (``requests``) and run in this provider's own threads (``threads.py``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from typing import Any

import requests
from py_vapid import Vapid02
from pywebpush import WebPushException, webpush
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    Device,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.http_outcomes import NOT_TAKEN, retry_after
from temporal_journeys.activities.providers.threads import CallThreads
from temporal_journeys.activities.providers.web_push.endpoints import (
    endpoint_problem,
    host_patterns,
)
from temporal_journeys.journeys.settings import Settings

PLATFORM = "webpush"
MESSAGE_ID_KEY = "journeys_message_id"
"""The data key carrying our message id to the service worker, which posts ``push.opened``."""
MAX_CONTENT = 4096 - 86 - 16 - 1
"""Push services must take a 4096-byte body (RFC 8030 section 7.2); aes128gcm spends 86 bytes
on its header, 16 on the tag and one on the padding delimiter, which leaves this much."""
GONE = frozenset({404, 410})


def load_vapid(private_key: str) -> Vapid02:
    """The VAPID key: PEM, or base64url of the raw 32-byte key or of its DER."""
    text = private_key.strip()
    try:
        if text.startswith("-----BEGIN"):
            return Vapid02.from_pem(text.encode())
        return Vapid02.from_string(text)
    except Exception as exc:  # py_vapid raises whatever its parsers raise
        raise ValueError(f"JOURNEYS_VAPID_PRIVATE_KEY is not a P-256 private key: {exc}") from exc


def public_key(vapid: Vapid02) -> str:
    """The application server key browsers subscribe with (``applicationServerKey``): the
    uncompressed P-256 point, base64url without padding."""
    from cryptography.hazmat.primitives import serialization

    raw = vapid.public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def topic(message_id: str) -> str:
    """RFC 8030 ``Topic``: at most 32 characters of the URL-safe base64 alphabet."""
    digest = hashlib.sha256(message_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()[:32]


def payload(message: OutgoingMessage) -> bytes:
    """What the service worker receives (decrypted by the browser), as JSON: it shows
    ``title`` / ``body`` with ``tag``, and opens ``data.link`` on a click."""
    data = {MESSAGE_ID_KEY: message.message_id}
    if message.url:
        data["link"] = message.url
    document: dict[str, Any] = {"tag": message.message_id, "data": data}
    if message.subject:
        document["title"] = message.subject
    if message.text:
        document["body"] = message.text
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def _never_connected(error: requests.ConnectionError) -> bool:
    """Whether a connection error happened before the request was written."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class SubscriptionFailed(Exception):
    """This subscription cannot get the message; the others may. ``gone``: remove it."""

    def __init__(self, reason: str, gone: bool) -> None:
        super().__init__(reason)
        self.gone = gone


class WebPush:
    name = "webpush"
    # No idempotency key: an attempt whose outcome is unknown is not repeated.
    resend_when_unsure = False
    # Push services report nothing back; the service worker posts ``push.opened`` itself.
    confirmed_by_webhook = False

    def __init__(self, settings: Settings) -> None:
        assert settings.vapid_private_key and settings.vapid_subject, "WebPush needs VAPID"
        self._vapid = load_vapid(settings.vapid_private_key)
        self._subject = settings.vapid_subject
        self._hosts = host_patterns(settings.webpush_endpoint_hosts)
        self._ttl = settings.webpush_ttl_seconds
        self._timeout = settings.provider_timeout_seconds
        self._threads = CallThreads(self.name, settings.provider_concurrency)

    @property
    def application_server_key(self) -> str:
        return public_key(self._vapid)

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        return await self._threads.call(before_call, lambda: self._send(message))

    def _send(self, message: OutgoingMessage) -> Receipt:
        body = payload(message)
        if len(body) > MAX_CONTENT:
            raise PermanentSendError(
                f"web push payload is {len(body)} bytes; push services take {MAX_CONTENT}"
            )
        log = message.device_log
        delivered = list(log.earlier) if log is not None else []
        unknown: list[str] = []
        refused: list[str] = []
        with requests.Session() as session:
            for device in message.devices:
                try:
                    location = self._send_one(session, message, device, body)
                except OutcomeUnknown as exc:
                    unknown.append(str(exc))
                    if log is not None:
                        log.unknown(device.token)
                    continue
                except SubscriptionFailed as exc:
                    if log is not None and exc.gone:
                        log.removed(device.token, str(exc))
                    elif log is not None:
                        log.refused(device.token, str(exc))
                    refused.append(str(exc))
                    continue
                except PermanentSendError:
                    if delivered:
                        break  # some browsers have it: the message was sent
                    raise
                delivered.append(location)
                if log is not None:
                    log.sent(device.token, location)
        if delivered:
            return Receipt(self.name, delivered[0])
        if unknown:
            raise OutcomeUnknown("; ".join(unknown))
        if refused:
            raise PermanentSendError("no push subscription took it: " + "; ".join(refused))
        raise PermanentSendError("no push subscription")

    def _send_one(
        self, session: requests.Session, message: OutgoingMessage, device: Device, body: bytes
    ) -> str:
        """One POST to the subscription's push service: the message's ``Location`` (its URI at
        the push service), or the error for this subscription."""
        problem = endpoint_problem(device.token, self._hosts)
        if problem is not None:
            raise SubscriptionFailed(f"endpoint {problem}", gone=False)
        if device.keys is None:
            raise SubscriptionFailed("a web push subscription without its keys", gone=False)
        p256dh, auth = device.keys
        subscription = {"endpoint": device.token, "keys": {"p256dh": p256dh, "auth": auth}}
        # A fresh dict per call: pywebpush writes ``aud`` (this endpoint's origin) and ``exp``
        # into the claims it is given.
        claims: dict[str, str | int] = {
            "sub": self._subject,
            "exp": int(time.time()) + 12 * 3600,
        }
        headers = {"Topic": topic(message.message_id), "Urgency": "normal"}
        try:
            response = webpush(
                subscription,
                body.decode(),
                vapid_private_key=self._vapid,
                vapid_claims=claims,
                ttl=self._ttl,
                timeout=self._timeout,
                headers=headers,
                requests_session=session,
            )
        except WebPushException as exc:
            if exc.response is None:  # the subscription's keys do not parse
                raise SubscriptionFailed(f"bad subscription keys: {exc.message}", False) from exc
            raise self._error(exc.response) from exc
        except ValueError as exc:  # a p256dh that is no P-256 point: nothing went out
            raise SubscriptionFailed(f"bad subscription keys: {exc}", gone=False) from exc
        except requests.ConnectionError as error:  # includes ConnectTimeout
            if _never_connected(error):
                raise NotAccepted(f"push service unreachable: {error}") from error
            raise OutcomeUnknown(f"push service dropped the connection: {error}") from error
        except requests.RequestException as error:  # ReadTimeout and the like
            raise OutcomeUnknown(f"push service gave no answer: {error!r}") from error
        assert isinstance(response, requests.Response)
        return response.headers.get("Location", "")

    @staticmethod
    def _error(response: requests.Response) -> Exception:
        status = response.status_code
        where = f"push service answered {status}: {response.text[:200]}".rstrip(": ")
        if status in GONE:
            return SubscriptionFailed(where, gone=True)
        if status in NOT_TAKEN:
            return NotAccepted(where, retry_after(response.headers.get("Retry-After")))
        if status >= 500:
            return OutcomeUnknown(where)
        if status == 413:
            return PermanentSendError(where)
        return SubscriptionFailed(where, gone=False)
