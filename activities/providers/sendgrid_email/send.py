"""Email through the ``sendgrid`` SDK (v3 Mail Send), pointed at ``settings.sendgrid_base_url``.

The SDK is synchronous and has no timeout of its own: each send builds a client (its request
headers are a shared mutable dict, so one per call keeps threads apart), gives it
``provider_timeout_seconds`` (python_http_client passes ``Client.timeout`` to ``urlopen``) and
runs in one of this provider's threads (``threads.py``), which marks the message ``sending``
just before the request. Our message id travels in ``custom_args`` so delivery webhooks find
the row, also one whose outcome the worker could not know.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
from typing import Any

from python_http_client.exceptions import HTTPError
from sendgrid import SendGridAPIClient

from temporal_journeys.activities.providers.base import (
    BeforeCall,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    Receipt,
    nothing_to_mark,
)
from temporal_journeys.activities.providers.http_outcomes import (
    raise_for_status,
    seconds_until_epoch,
)
from temporal_journeys.activities.providers.threads import CallThreads
from temporal_journeys.journeys.consent import unsubscribe_url
from temporal_journeys.journeys.settings import Settings

# Our message id, as a custom arg: every Event Webhook event carries it back (``webhook.py``).
MESSAGE_ID_ARG = "journeys_message_id"


def unsubscribe_headers(
    settings: Settings, contact_id: str, topic: str | None = None
) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe: an HTTPS link (plus a mailto when configured). The link
    of a message with a topic leaves that topic only; its page offers every topic and all
    email."""
    link = unsubscribe_url(settings.public_url, settings.secret_key, contact_id, "email", topic)
    targets = [f"<{link}>"]
    if settings.unsubscribe_mailto:
        targets.append(f"<mailto:{settings.unsubscribe_mailto}?subject=unsubscribe>")
    return {
        "List-Unsubscribe": ", ".join(targets),
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def headers_of(settings: Settings, message: OutgoingMessage) -> dict[str, str]:
    """The mail headers sent with ``message``: one-click unsubscribe, then the message's own."""
    unsubscribe = unsubscribe_headers(settings, message.contact_id or "", message.topic)
    return {**unsubscribe, **message.headers}


def mail_body(settings: Settings, message: OutgoingMessage) -> dict[str, Any]:
    """The v3 Mail Send document for one message."""
    personalization: dict[str, Any] = {"to": [{"email": message.to}]}
    body: dict[str, Any] = {
        "personalizations": [personalization],
        "from": {"email": settings.email_from},
        "custom_args": {MESSAGE_ID_ARG: message.message_id},
        "headers": headers_of(settings, message),
    }
    if message.provider_template_id:
        # Hosted dynamic template: SendGrid renders it with our data (Handlebars, not Liquid).
        body["template_id"] = message.provider_template_id
        personalization["dynamic_template_data"] = dict(message.context)
        return body
    body["subject"] = message.subject or ""
    # SendGrid wants text/plain before text/html.
    body["content"] = [
        {"type": kind, "value": value}
        for kind, value in (("text/plain", message.text), ("text/html", message.html))
        if value
    ]
    return body


def _detail(error: HTTPError) -> str:
    try:
        errors = json.loads(error.body or b"{}").get("errors") or []
        return "; ".join(str(item.get("message")) for item in errors) or str(error.reason)
    except (ValueError, AttributeError):
        return str(error.reason)


class SendGridEmail:
    name = "sendgrid"
    # Mail Send takes no idempotency key: a second call after an unknown outcome could make a
    # second email, so such an attempt is never repeated.
    resend_when_unsure = False

    def __init__(self, settings: Settings) -> None:
        assert settings.sendgrid_api_key, "SendGridEmail needs settings.sendgrid_api_key"
        self._settings = settings
        # Signed Event Webhook configured: every mail SendGrid takes comes back as an event.
        self.confirmed_by_webhook = bool(settings.sendgrid_webhook_public_key)
        self._threads = CallThreads(self.name, settings.provider_concurrency)

    def headers_for(self, message: OutgoingMessage) -> dict[str, str]:
        """What ``send`` puts in the mail's headers, for the message log."""
        return headers_of(self._settings, message)

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        body = mail_body(self._settings, message)
        return await self._threads.call(before_call, lambda: self._send(body))

    def _send(self, body: dict[str, Any]) -> Receipt:
        client = SendGridAPIClient(self._settings.sendgrid_api_key, host=self._base_url)
        client.client.timeout = self._settings.provider_timeout_seconds
        try:
            response = client.send(body)
        except HTTPError as error:
            wait = seconds_until_epoch(error.headers.get("X-RateLimit-Reset"))
            raise_for_status(self.name, error.status_code, _detail(error), wait)
            raise  # unreachable: raise_for_status always raises
        except urllib.error.URLError as error:
            # urllib wraps what fails while connecting or writing the request: not taken.
            raise NotAccepted(f"sendgrid unreachable: {error.reason}") from error
        except (TimeoutError, OSError, http.client.HTTPException) as error:
            # Failing while waiting for the answer: the request went out whole.
            raise OutcomeUnknown(f"sendgrid gave no answer: {error!r}") from error
        if response.status_code >= 300:
            raise_for_status(self.name, response.status_code, "unexpected answer")
        return Receipt(self.name, response.headers.get("X-Message-Id") or "")

    @property
    def _base_url(self) -> str:
        return self._settings.sendgrid_base_url.rstrip("/")
