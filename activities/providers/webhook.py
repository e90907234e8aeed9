"""The ``webhook`` channel: a signed JSON POST to the URL a template names, through httpx.

Every request carries two headers (docs/channels.md):

``X-Journeys-Signature: t=<unix seconds>,v1=<hex>``
    ``<hex>`` is HMAC-SHA256, keyed with ``settings.webhook_signing_secret``, of the bytes
    ``<t>.<raw body>``. A receiver recomputes it over the body exactly as received, compares in
    constant time, and refuses timestamps older than a few minutes (replays).
``Idempotency-Key: <message id>``
    The same on every attempt of one message, so the receiver can drop a repeat: an attempt
    whose outcome is unknown may be made again on this channel.

The body is the template's rendered ``text`` when it has one, else a JSON document with the
message id, the contact, the trigger event and the step's data.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from typing import Any

import httpx

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.http_outcomes import raise_for_status, retry_after
from temporal_journeys.journeys.settings import Settings

SIGNATURE_HEADER = "X-Journeys-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Journeys-Signature`` value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def verify(
    secret: str, header: str, body: bytes, max_age: float = 300, now: float | None = None
) -> bool:
    """What a receiver does: the signature matches and is recent."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > max_age:
        return False
    return hmac.compare_digest(signature(secret, timestamp, body), header)


def document(message: OutgoingMessage) -> dict[str, Any]:
    """The default body: who, why and with what data this step fired."""
    context = message.context
    return {
        "message_id": message.message_id,
        "contact": context.get("contact"),
        "event": context.get("trigger"),
        "data": context.get("data"),
    }


class SignedWebhook:
    name = "webhook"
    # The receiver gets an Idempotency-Key and can drop a repeat, so an unknown outcome is
    # retried rather than risk a step that silently never reached its receiver.
    resend_when_unsure = True
    confirmed_by_webhook = False

    def __init__(self, settings: Settings) -> None:
        self._secret = settings.webhook_signing_secret
        self._timeout = settings.provider_timeout_seconds

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        if not self._secret:
            raise PermanentSendError(
                "webhook channel needs a signing secret (JOURNEYS_WEBHOOK_SIGNING_SECRET)"
            )
        if not message.url or not message.url.startswith(("https://", "http://")):
            raise PermanentSendError(f"webhook URL {message.url!r} is not an http(s) URL")
        if message.text is not None:
            body = message.text.encode()
        else:
            body = json.dumps(document(message), default=str, separators=(",", ":")).encode()
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(self._secret, int(time.time()), body),
            "Idempotency-Key": message.message_id,
        }
        # A database write: off the event loop. A crash after it is harmless here, since an
        # interrupted attempt is made again on this channel.
        await asyncio.to_thread(before_call)
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.post(message.url, content=body, headers=headers)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as error:
            raise NotAccepted(f"webhook unreachable: {error!r}") from error
        except httpx.HTTPError as error:
            raise OutcomeUnknown(f"webhook gave no answer: {error!r}") from error
        if response.status_code >= 300:
            wait = retry_after(response.headers.get("Retry-After"))
            raise_for_status(self.name, response.status_code, response.text[:200], wait)
        return Receipt(self.name, response.headers.get("X-Request-Id") or message.message_id)
