"""SendGrid's Signed Event Webhook: the signature check, the events of a body, and what each
event type does to the message it reports on (status, journey event, suppression)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from temporal_journeys.activities.providers.reports import Change, Malformed, Refused
from temporal_journeys.activities.providers.sendgrid_email.send import MESSAGE_ID_ARG
from temporal_journeys.journeys.settings import Settings

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
UNIX_TIME = re.compile(r"[0-9]{1,12}")
MAX_KEY = 180  # provider event ids become event messageIds (200 characters at most)


# ---------------------------------------------------------------- signature


@lru_cache(maxsize=4)
def _public_key(configured: str) -> ec.EllipticCurvePublicKey:
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


def verify_signature(
    settings: Settings, signature: str | None, timestamp: str | None, body: bytes, now: datetime
) -> None:
    """ECDSA P-256 / SHA-256 over timestamp + raw body; raises ``Refused`` unless it holds."""
    if not settings.sendgrid_webhook_public_key:
        # Never accept unsigned deliveries: anyone could mark messages opened or unsubscribe.
        raise Refused(
            "the SendGrid webhook is not configured: set JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY"
        )
    key = _public_key(settings.sendgrid_webhook_public_key)
    if not signature or not timestamp:
        raise Refused(f"the {SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required")
    if not UNIX_TIME.fullmatch(timestamp):
        raise Refused(f"{TIMESTAMP_HEADER} is not a Unix time")
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


# ---------------------------------------------------------------- events


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


def parse_events(body: bytes, now: datetime) -> list[SendGridEvent]:
    """The events of a webhook body (a JSON array of objects), checked whole before anything
    is stored."""
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


# ---------------------------------------------------------------- what an event does

CHANGES: dict[str, Change] = {
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


def change_for(event: SendGridEvent) -> Change | None:
    """What ``event`` does to its message; None for types journeys do not track."""
    if event.kind == "bounce" and event.details.get("bounce_type") == "blocked":
        return BLOCKED
    return CHANGES.get(event.kind)
