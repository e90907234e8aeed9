"""SMS through the ``twilio`` SDK (Messages API), pointed at ``settings.twilio_base_url``.

twilio-python 9 keeps each product's host in its domain object (``client.api.base_url``);
setting it there sends every Messages call to our URL. The SDK's own client has no timeout,
so ours is a ``TwilioHttpClient(timeout=...)``; one per send, because the answer's headers
(``Retry-After``) are only reachable through the client that made the call. Calls run in this
provider's own threads (``threads.py``), which mark the message ``sending`` just before.
"""

from __future__ import annotations

from typing import Any

import requests
from twilio.base.exceptions import TwilioException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

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
from temporal_journeys.activities.providers.threads import CallThreads
from temporal_journeys.journeys.settings import Settings

# Twilio error codes that no retry will change.
PERMANENT_CODES = {
    21211: "invalid 'To' phone number",
    21408: "sending to this region is not enabled",
    21610: "the recipient replied STOP",
    21614: "'To' is not a mobile number",
}


class _KeepsLastAnswer(TwilioHttpClient):
    """The SDK's HTTP client, remembering the last answer's headers for error handling."""

    last_headers: dict[str, str]

    def request(self, *args: Any, **kwargs: Any) -> Response:
        response = super().request(*args, **kwargs)
        self.last_headers = dict(response.headers or {})
        return response


def _never_connected(error: requests.ConnectionError) -> bool:
    """Whether a ``requests`` connection error happened before the request was written."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError | ConnectTimeoutError)


class TwilioSms:
    name = "twilio"
    # The Messages API takes no idempotency key: never repeat an attempt we cannot see into.
    resend_when_unsure = False
    # Every SMS asks for a status callback, but nothing tells the worker that Twilio can reach
    # ``public_url``: an unknown outcome is sent again only when the resend setting says so.
    confirmed_by_webhook = False
    permanent_codes = PERMANENT_CODES

    def __init__(self, settings: Settings) -> None:
        assert settings.has_twilio, "TwilioSms needs the twilio_* settings"
        self._settings = settings
        self._threads = CallThreads(self.name, settings.provider_concurrency)

    def status_callback(self, message_id: str) -> str:
        base = self._settings.public_url.rstrip("/")
        return f"{base}/v1/webhooks/twilio/status?message_id={message_id}"

    def message_fields(self, message: OutgoingMessage) -> dict[str, str]:
        """What the Messages API is given besides the status callback (WhatsApp overrides)."""
        return {
            "to": message.to or "",
            "from_": self._settings.twilio_from_number or "",
            "body": message.text or "",
        }

    async def send(
        self, message: OutgoingMessage, before_call: BeforeCall = nothing_to_mark
    ) -> Receipt:
        return await self._threads.call(before_call, lambda: self._send(message))

    def _send(self, message: OutgoingMessage) -> Receipt:
        settings = self._settings
        http = _KeepsLastAnswer(timeout=settings.provider_timeout_seconds)
        http.last_headers = {}
        client = Client(settings.twilio_account_sid, settings.twilio_auth_token, http_client=http)
        # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host we set.
        client.edge, client.region = None, None
        client.api.base_url = settings.twilio_base_url.rstrip("/")
        try:
            sent = client.messages.create(
                **self.message_fields(message),
                status_callback=self.status_callback(message.message_id),
            )
        except TwilioException as error:
            self._raise_for(error, http.last_headers)
        except requests.ConnectionError as error:  # includes ConnectTimeout
            if _never_connected(error):
                raise NotAccepted(f"twilio unreachable: {error}") from error
            raise OutcomeUnknown(f"twilio dropped the connection: {error}") from error
        except requests.RequestException as error:  # ReadTimeout and the like
            raise OutcomeUnknown(f"twilio gave no answer: {error!r}") from error
        finally:
            if http.session is not None:
                http.session.close()
        return Receipt(self.name, sent.sid or "")

    def _raise_for(self, error: TwilioException, headers: dict[str, str]) -> None:
        status = int(getattr(error, "status", 0) or 0)
        code = getattr(error, "code", None)
        detail = str(getattr(error, "msg", None) or getattr(error, "detail", None) or error)
        if code in self.permanent_codes:
            raise PermanentSendError(
                f"twilio error {code}: {self.permanent_codes[code]} ({detail})"
            ) from error
        wait = retry_after(headers.get("Retry-After"))
        raise_for_status(self.name, status, f"error {code}: {detail}", wait)
