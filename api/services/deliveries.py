"""Delivery webhooks from SendGrid and Twilio: verified, deduplicated, applied forward-only to
the send log, and turned into events that the outbox relay routes to the run that sent."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict
from twilio.request_validator import RequestValidator

from api.services import consent
from journeys.settings import Settings
from store import deliveries as deliveries_store
from store import events as events_store
from store import messages as messages_store
from store import suppressions
from store.models import Contact, Message

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
MESSAGE_ID_ARG = "journeys_message_id"  # the custom arg the email provider sets
UNIX_TIME = re.compile(r"[0-9]{1,12}")
MAX_KEY = 180  # provider event ids become event messageIds (200 characters at most)


class Refused(Exception):
    """The request cannot be shown to come from the provider (401)."""


class Malformed(ValueError):
    """A verified request whose body is not what the provider sends (400)."""


class Applied(BaseModel):
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    recorded: int = 0  # events queued for the relay


@dataclass(frozen=True)
class Change:
    """What one provider event does to a message: its new status, the event journeys see,
    and whether the address must never be mailed again."""

    status: str
    event: str | None
    suppress: str | None = None


# ---------------------------------------------------------------- signatures


@lru_cache(maxsize=4)
def _sendgrid_key(configured: str) -> ec.EllipticCurvePublicKey:
    # The dashboard shows base64 DER; a PEM block is accepted as well.
    try:
        if "BEGIN PUBLIC KEY" in configured:
            key = serialization.load_pem_public_key(configured.strip().encode())
        else:
            der = base64.b64decode("".join(configured.split()), validate=True)
            key = serialization.load_der_public_key(der)
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as exc:
        raise Refused("the configured SendGrid webhook key is not a public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise Refused("the configured SendGrid webhook key is not an ECDSA P-256 key")
    return key


def verify_sendgrid(
    settings: Settings, signature: str | None, timestamp: str | None, body: bytes, now: datetime
) -> None:
    """SendGrid's Signed Event Webhook: ECDSA P-256 / SHA-256 over timestamp + raw body."""
    if not settings.sendgrid_webhook_public_key:
        # Never accept unsigned deliveries: anyone could mark messages opened or unsubscribe.
        raise Refused(
            "the SendGrid webhook is not configured: set JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY"
        )
    key = _sendgrid_key(settings.sendgrid_webhook_public_key)
    if not signature or not timestamp:
        raise Refused(f"the {SENDGRID_SIGNATURE} and {SENDGRID_TIMESTAMP} headers are required")
    if not UNIX_TIME.fullmatch(timestamp):
        raise Refused(f"{SENDGRID_TIMESTAMP} is not a Unix time")
    # The signed timestamp bounds replays of a captured request.
    if abs(now.timestamp() - int(timestamp)) > settings.webhook_max_age_seconds:
        raise Refused(
            f"the signature timestamp is more than {settings.webhook_max_age_seconds} s "
            "from now (a replay, or a clock out of sync)"
        )
    try:
        raw = base64.b64decode(signature, validate=True)
        key.verify(raw, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (binascii.Error, ValueError, InvalidSignature) as exc:
        raise Refused("the SendGrid signature does not match the body") from exc


def public_url(settings: Settings, path: str, query: str) -> str:
    """The URL Twilio signed: the configured public one, not the one a proxy forwarded to."""
    return settings.public_url.rstrip("/") + path + (f"?{query}" if query else "")


def verify_twilio(
    settings: Settings, signature: str | None, url: str, body: bytes, content_type: str | None
) -> ImmutableMultiDict[str, str]:
    """X-Twilio-Signature (HMAC-SHA1 of URL + sorted form fields); returns the form fields."""
    if not settings.twilio_auth_token:
        raise Refused("Twilio webhooks are not configured: set JOURNEYS_TWILIO_AUTH_TOKEN")
    if not signature:
        raise Refused(f"the {TWILIO_SIGNATURE} header is required")
    params = parse_form(body, content_type)
    # RequestValidator compares in constant time and tries the URL with and without its port.
    if not RequestValidator(settings.twilio_auth_token).validate(url, params, signature):
        raise Refused(f"the {TWILIO_SIGNATURE} does not match {url} and the form fields")
    return params


def parse_form(body: bytes, content_type: str | None) -> ImmutableMultiDict[str, str]:
    if (content_type or "").split(";")[0].strip().lower() != "application/x-www-form-urlencoded":
        raise Malformed("expected a form body (application/x-www-form-urlencoded)")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=500)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Malformed(f"the form body cannot be read: {exc}") from exc
    return ImmutableMultiDict(pairs)


# ---------------------------------------------------------------- SendGrid


@dataclass(frozen=True)
class SendGridEvent:
    key: str  # sg_event_id
    kind: str  # processed, delivered, open, click, bounce, ...
    at: datetime
    message_id: str | None  # ours, from the custom arg
    provider_message_id: str | None  # X-Message-Id: sg_message_id up to its first dot
    email: str | None
    details: dict[str, Any] = field(default_factory=dict)


# Fields worth passing on to journeys (renamed where SendGrid's name is unclear).
DETAILS = {
    "url": "url",
    "reason": "reason",
    "type": "bounce_type",
    "bounce_classification": "bounce_classification",
    "sg_machine_open": "machine_open",
    "asm_group_id": "asm_group_id",
}

SENDGRID: dict[str, Change] = {
    "processed": Change("sent", None),
    "deferred": Change("delayed", None),
    "delivered": Change("delivered", "email.delivered"),
    "open": Change("opened", "email.opened"),
    "click": Change("clicked", "email.clicked"),
    "bounce": Change("bounced", "email.bounced", suppress="bounced"),
    "dropped": Change("undelivered", None),
    "spamreport": Change("spamreport", "email.spamreport", suppress="spamreport"),
    "unsubscribe": Change("unsubscribed", "email.unsubscribed", suppress="unsubscribed"),
    "group_unsubscribe": Change("unsubscribed", "email.unsubscribed", suppress="unsubscribed"),
}
# A "blocked" bounce is a soft one (the receiving server refused for now): no suppression.
BLOCKED = Change("undelivered", "email.bounced")


def _text(item: dict[str, Any], name: str, where: str, required: bool = False) -> str | None:
    value = item.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise Malformed(f"{where}: `{name}` must be a non-empty string")
    return value


def _moment(value: Any, where: str, now: datetime) -> datetime:
    if value is None:
        return now
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Malformed(f"{where}: `timestamp` must be a Unix time")
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise Malformed(f"{where}: `timestamp` is out of range") from exc


def parse_sendgrid(body: bytes, now: datetime) -> list[SendGridEvent]:
    """The events of a SendGrid webhook body (a JSON array of objects), checked whole before
    anything is stored."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"the body is not JSON: {exc}") from exc
    if not isinstance(data, list):
        raise Malformed("expected a JSON array of events")
    events = []
    for index, item in enumerate(data):
        where = f"event {index}"
        if not isinstance(item, dict):
            raise Malformed(f"{where}: expected an object")
        key = _text(item, "sg_event_id", where, required=True)
        assert key is not None
        if len(key) > MAX_KEY:
            raise Malformed(f"{where}: `sg_event_id` is longer than {MAX_KEY} characters")
        sg_message_id = _text(item, "sg_message_id", where)
        events.append(
            SendGridEvent(
                key=key,
                kind=_text(item, "event", where, required=True) or "",
                at=_moment(item.get("timestamp"), where, now),
                message_id=_text(item, MESSAGE_ID_ARG, where),
                provider_message_id=sg_message_id.split(".")[0] if sg_message_id else None,
                email=_text(item, "email", where),
                details={
                    ours: item[theirs]
                    for theirs, ours in DETAILS.items()
                    if isinstance(item.get(theirs), str | int | float | bool)
                },
            )
        )
    return events


def _sendgrid_change(event: SendGridEvent) -> Change | None:
    if event.kind == "bounce" and event.details.get("bounce_type") == "blocked":
        return BLOCKED
    return SENDGRID.get(event.kind)


def apply_sendgrid(session: Session, events: list[SendGridEvent], now: datetime) -> Applied:
    """Apply a verified SendGrid delivery in the caller's transaction."""
    result = Applied()
    messages = deliveries_store.lock_messages(
        session, {e.message_id for e in events if e.message_id}
    )
    rows: list[dict[str, Any]] = []
    for event in events:
        change = _sendgrid_change(event)
        if change is None:
            result.ignored += 1  # an event type journeys do not track (e.g. account events)
            continue
        message = messages.get(event.message_id or "")
        if message is None and event.provider_message_id:
            message = deliveries_store.lock_by_provider_id(session, event.provider_message_id)
        if message is not None and message.channel != "email":
            message = None
        key = f"sendgrid:{event.key}"
        if not deliveries_store.claim(session, key, message.id if message else None, change.status):
            result.duplicates += 1
            continue
        if message is None:
            # Not sent by a journey (or erased since): a bad address is still worth knowing.
            result.ignored += 1
            if change.suppress and event.email:
                suppressions.add(session, "email", event.email, change.suppress)
            continue
        result.applied += 1
        address = message.to_address or event.email
        row = _apply(session, message, change, key, event.at, address, event.details)
        if row is not None:
            rows.append(row)
    if rows:
        result.recorded = events_store.accept(session, rows, now)
    return result


def _apply(
    session: Session,
    message: Message,
    change: Change,
    key: str,
    at: datetime,
    address: str | None,
    details: dict[str, Any],
) -> dict[str, Any] | None:
    """Move the message forward, apply consent, and return the event row for journeys."""
    messages_store.advance(message, change.status, at, provider_event=key)
    if change.suppress == "unsubscribed":
        contact = session.get(Contact, message.contact_id, with_for_update=True)
        if contact is not None:
            consent.unsubscribe(session, contact, message.channel, change.suppress, address)
    elif change.suppress and address:
        suppressions.add(session, message.channel, address, change.suppress)
    if change.event is None:
        return None
    properties = {
        "message_id": message.id,
        "journey": message.journey_key,
        "step": message.step_id,
        "channel": message.channel,
        **details,
    }
    return {
        "message_id": key,
        "contact_id": message.contact_id,
        "name": change.event,
        "properties": properties,
        "timestamp": at,
    }


# ---------------------------------------------------------------- Twilio

TWILIO: dict[str, Change] = {
    "sent": Change("sent", None),
    "delivered": Change("delivered", "sms.delivered"),
    "undelivered": Change("undelivered", "sms.failed"),
    "failed": Change("undelivered", "sms.failed"),
}
STOP = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START = frozenset({"START", "UNSTOP", "YES"})
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _field(params: ImmutableMultiDict[str, str], name: str, limit: int = 100) -> str:
    value = params.get(name, "")
    if not value or len(value) > limit:
        raise Malformed(f"the form field {name} is required (at most {limit} characters)")
    return value


@dataclass(frozen=True)
class TwilioStatus:
    sid: str
    status: str
    message_id: str | None  # ours, from the status callback URL
    error_code: str | None


def parse_twilio_status(
    params: ImmutableMultiDict[str, str], message_id: str | None
) -> TwilioStatus:
    return TwilioStatus(
        sid=_field(params, "MessageSid"),
        status=_field(params, "MessageStatus").lower(),
        message_id=message_id,
        error_code=params.get("ErrorCode") or None,
    )


def apply_twilio_status(session: Session, update: TwilioStatus, now: datetime) -> Applied:
    """Apply a verified Twilio status callback in the caller's transaction."""
    change = TWILIO.get(update.status)
    if change is None:
        return Applied(ignored=1)  # queued, sending, ...: nothing a journey waits for
    ours = {update.message_id} if update.message_id else set()
    message = deliveries_store.lock_messages(session, ours).get(update.message_id or "")
    if message is None:
        message = deliveries_store.lock_by_provider_id(session, update.sid)
    if message is not None and message.channel != "sms":
        message = None
    key = f"twilio:{update.sid}:{update.status}"
    if not deliveries_store.claim(session, key, message.id if message else None, change.status):
        return Applied(duplicates=1)
    if message is None:
        return Applied(ignored=1)
    details = {"error_code": update.error_code} if update.error_code else {}
    row = _apply(session, message, change, key, now, message.to_address, details)
    recorded = events_store.accept(session, [row], now) if row else 0
    return Applied(applied=1, recorded=recorded)


@dataclass(frozen=True)
class TwilioInbound:
    sid: str
    sender: str
    body: str


def parse_twilio_inbound(params: ImmutableMultiDict[str, str]) -> TwilioInbound:
    return TwilioInbound(
        sid=_field(params, "MessageSid"),
        sender=_field(params, "From", limit=40),
        body=params.get("Body", ""),
    )


def apply_twilio_inbound(session: Session, inbound: TwilioInbound, now: datetime) -> Applied:
    """An SMS a contact sent us: STOP and START keywords, then ``sms.inbound`` for journeys."""
    contacts = deliveries_store.contacts_with_phone(session, inbound.sender)
    if not contacts:
        return Applied(ignored=1)  # not a contact of ours: nothing is stored about them
    key = f"twilio:{inbound.sid}:inbound"
    if not deliveries_store.claim(session, key, None, "inbound"):
        return Applied(duplicates=1)
    keyword = inbound.body.strip().upper()
    rows = []
    for contact in contacts:
        # One event per contact at the number; the key stays short whatever the contact id.
        event_key = f"{key}:{hashlib.sha256(contact.id.encode()).hexdigest()[:16]}"
        properties: dict[str, Any] = {"body": inbound.body, "message_sid": inbound.sid}
        opted_out = False
        if keyword in STOP:
            properties["keyword"] = "stop"
            opted_out = consent.unsubscribe(session, contact, "sms", "stop", inbound.sender)
        elif keyword in START:
            properties["keyword"] = "start"
            consent.resubscribe(session, contact, "sms", inbound.sender)
        rows.append(_event(event_key, contact, "sms.inbound", now, properties))
        if opted_out:
            rows.append(_event(f"{event_key}:stop", contact, "sms.unsubscribed", now))
    return Applied(applied=1, recorded=events_store.accept(session, rows, now))


def _event(
    key: str,
    contact: Contact,
    name: str,
    now: datetime,
    properties: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "message_id": key,
        "contact_id": contact.id,
        "name": name,
        "properties": properties or {"channel": "sms", "source": "keyword"},
        "timestamp": now,
    }
