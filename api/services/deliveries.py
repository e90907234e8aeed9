"""Delivery reports from SendGrid and Twilio, already verified and read by the provider's own
module (``activities/providers/sendgrid_email``, ``twilio_sms``): deduplicated, applied
forward-only to the send log, and turned into events that the outbox relay routes to the run
that sent."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy.orm import Session

from temporal_journeys.activities.providers import (
    sendgrid_email,
    twilio_sms,
    twilio_whatsapp,
    webhook_receipts,
)
from temporal_journeys.activities.providers.reports import Change
from temporal_journeys.api.services import consent
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import deliveries as deliveries_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import suppressions
from temporal_journeys.store.models import Contact, Message


class Applied(BaseModel):
    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    recorded: int = 0  # events queued for the relay


def apply_sendgrid(
    session: Session, events: list[sendgrid_email.SendGridEvent], now: datetime
) -> Applied:
    """Apply a verified SendGrid delivery in the caller's transaction."""
    result = Applied()
    messages = deliveries_store.lock_messages(
        session, {e.message_id for e in events if e.message_id}
    )
    rows: list[dict[str, Any]] = []
    for event in events:
        change = sendgrid_email.change_for(event)
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


def apply_twilio_status(
    session: Session, update: twilio_sms.TwilioStatus, now: datetime, channel: str = "sms"
) -> Applied:
    """Apply a verified Twilio status callback (of an SMS, or of a WhatsApp message: its own
    callback URL says which) in the caller's transaction."""
    if channel == "whatsapp":
        change = twilio_whatsapp.change_for(update)
    else:
        change = twilio_sms.change_for(update)
    if change is None:
        return Applied(ignored=1)
    ours = {update.message_id} if update.message_id else set()
    message = deliveries_store.lock_messages(session, ours).get(update.message_id or "")
    if message is None:
        message = deliveries_store.lock_by_provider_id(session, update.sid)
    if message is not None and message.channel != channel:
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


def apply_gateway(
    session: Session, receipt: webhook_receipts.GatewayReceipt, now: datetime
) -> Applied:
    """Apply a verified gateway receipt for a webhook-channel message in the caller's
    transaction."""
    change = webhook_receipts.change_for(receipt)
    message = deliveries_store.lock_messages(session, {receipt.message_id}).get(receipt.message_id)
    if message is not None and message.channel != "webhook":
        message = None
    if not deliveries_store.claim(
        session, receipt.key, message.id if message else None, change.status
    ):
        return Applied(duplicates=1)
    if message is None:
        return Applied(ignored=1)  # not a message of ours (or erased since)
    details = {"error": receipt.error} if receipt.error else {}
    row = _apply(session, message, change, receipt.key, receipt.when(now), None, details)
    recorded = events_store.accept(session, [row], now) if row else 0
    return Applied(applied=1, recorded=recorded)


def apply_twilio_inbound(
    session: Session, inbound: twilio_sms.TwilioInbound, now: datetime
) -> Applied:
    """An SMS or WhatsApp message a contact sent us: STOP and START keywords (opting the number
    out of, or back into, that channel), then ``sms.inbound`` / ``whatsapp.inbound`` for
    journeys. A WhatsApp sender is ``whatsapp:+...``; its inbound event also opens the 24-hour
    window for free-form messages."""
    whatsapp_phone = twilio_whatsapp.phone_of(inbound.sender)
    channel = "sms" if whatsapp_phone is None else "whatsapp"
    phone = whatsapp_phone or inbound.sender
    inbound_event, opted_out_event = (
        (twilio_sms.INBOUND_EVENT, twilio_sms.OPTED_OUT_EVENT)
        if whatsapp_phone is None
        else (twilio_whatsapp.INBOUND_EVENT, twilio_whatsapp.OPTED_OUT_EVENT)
    )
    contacts = deliveries_store.contacts_with_phone(session, phone)
    if not contacts:
        return Applied(ignored=1)  # not a contact of ours: nothing is stored about them
    key = f"twilio:{inbound.sid}:inbound"
    if not deliveries_store.claim(session, key, None, "inbound"):
        return Applied(duplicates=1)
    rows = []
    for contact in contacts:
        # One event per contact at the number; the key stays short whatever the contact id.
        event_key = f"{key}:{hashlib.sha256(contact.id.encode()).hexdigest()[:16]}"
        properties: dict[str, Any] = {"body": inbound.body, "message_sid": inbound.sid}
        opted_out = False
        if inbound.keyword is not None:
            properties["keyword"] = inbound.keyword
        if inbound.keyword == "stop":
            opted_out = consent.unsubscribe(session, contact, channel, "stop", phone)
        elif inbound.keyword == "start":
            consent.resubscribe(session, contact, channel, phone)
        rows.append(_event(event_key, contact, inbound_event, now, properties))
        if opted_out:
            keyword = {"channel": channel, "source": "keyword"}
            rows.append(_event(f"{event_key}:stop", contact, opted_out_event, now, keyword))
    return Applied(applied=1, recorded=events_store.accept(session, rows, now))


ENGAGEMENT = {"push.opened": ("push", "opened")}
"""Events the app posts itself through ``/v1/track`` about a message it received (the push
provider has no webhook): event name -> (channel, message status)."""


def apply_engagement(
    session: Session, contact_id: str, name: str, properties: dict[str, Any], at: datetime
) -> bool:
    """Move the message a tracked engagement event names (``properties.message_id``) on, as a
    provider's webhook would: ``push.opened`` makes the push message ``opened``. Only the
    contact's own message of that channel; forward only, so a repeat changes nothing. The
    event itself is routed like any tracked event (it releases ``wait_for`` on it)."""
    target = ENGAGEMENT.get(name)
    message_id = properties.get("message_id")
    if target is None or not isinstance(message_id, str):
        return False
    message = deliveries_store.lock_messages(session, {message_id}).get(message_id)
    if message is None or message.channel != target[0] or message.contact_id != contact_id:
        return False
    return messages_store.advance(message, target[1], at, provider_event=f"track:{name}")


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
        contact = contacts_store.get(session, message.contact_id, for_update=True)
        if contact is not None:
            consent.unsubscribe(session, contact, message.channel, change.suppress, address)
    elif change.suppress and address:
        suppressions.add(session, message.channel, address, change.suppress)
    if change.event is None or message.test:
        # A test send's opens and clicks are the marketer's: no journey hears of them.
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
