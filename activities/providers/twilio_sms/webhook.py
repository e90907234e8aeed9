"""Twilio's webhooks: the ``X-Twilio-Signature`` check, status callbacks and inbound messages
read from their form fields, what each status does to a message, and the opt-out keywords."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from temporal_journeys.activities.providers.reports import Change, Malformed, Refused
from temporal_journeys.journeys.settings import Settings

SIGNATURE_HEADER = "X-Twilio-Signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'

Form = ImmutableMultiDict[str, str]


# ---------------------------------------------------------------- signature


def signed_url(settings: Settings, path: str, query: str) -> str:
    """The URL Twilio signed: the configured public one, not the one a proxy forwarded to."""
    return settings.public_url.rstrip("/") + path + (f"?{query}" if query else "")


def verify_signature(
    settings: Settings, signature: str | None, url: str, body: bytes, content_type: str | None
) -> Form:
    """HMAC-SHA1 of URL + sorted form fields; returns the form fields, raises ``Refused``
    unless it holds."""
    if not settings.twilio_auth_token:
        raise Refused("Twilio webhooks are not configured: set JOURNEYS_TWILIO_AUTH_TOKEN")
    if not signature:
        raise Refused(f"the {SIGNATURE_HEADER} header is required")
    params = parse_form(body, content_type)
    # RequestValidator compares in constant time and tries the URL with and without its port.
    if not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        raise Refused(f"the {SIGNATURE_HEADER} does not match {url} and the form fields")
    return params


def parse_form(body: bytes, content_type: str | None) -> Form:
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Malformed("expected a form body (application/x-www-form-urlencoded)")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"the form body cannot be read: {exc}") from exc
    return ImmutableMultiDict(pairs)


def _field(params: Form, name: str, limit: int = 100) -> str:
    value = params.get(name, "")
    if not value or len(value) > limit:
        raise Malformed(f"the form field {name} is required (at most {limit} characters)")
    return value


# ---------------------------------------------------------------- status callbacks


@dataclass(frozen=True)
class TwilioStatus:
    sid: str
    status: str
    message_id: str | None  # ours, from the status callback URL
    error_code: str | None


def parse_status(params: Form, message_id: str | None) -> TwilioStatus:
    return TwilioStatus(
        sid=_field(params, "MessageSid"),
        status=_field(params, "MessageStatus").lower(),
        message_id=message_id,
        error_code=params.get("ErrorCode") or None,
    )


CHANGES: dict[str, Change] = {
    "sent": Change("sent", None),
    "delivered": Change("delivered", "sms.delivered"),
    "undelivered": Change("undelivered", "sms.failed"),
    "failed": Change("undelivered", "sms.failed"),
}


def change_for(update: TwilioStatus) -> Change | None:
    """What a status does to its message; None for queued, sending, ...: nothing a journey
    waits for."""
    return CHANGES.get(update.status)


# ---------------------------------------------------------------- inbound messages

STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP", "YES"})
INBOUND_EVENT = "sms.inbound"
OPTED_OUT_EVENT = "sms.unsubscribed"


@dataclass(frozen=True)
class TwilioInbound:
    sid: str
    sender: str
    body: str
    keyword: str | None  # "stop" or "start" when the whole message is one of those keywords


def _keyword(body: str) -> str | None:
    word = body.strip().upper()
    if word in STOP:
        return "stop"
    if word in START:
        return "start"
    return None


def parse_inbound(params: Form) -> TwilioInbound:
    body = params.get("Body", "")
    return TwilioInbound(
        sid=_field(params, "MessageSid"),
        sender=_field(params, "From", limit=40),
        body=body,
        keyword=_keyword(body),
    )
