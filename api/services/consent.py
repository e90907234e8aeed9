"""Consent: opting a contact out of a channel (link, STOP, provider report) and back in."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from journeys.consent import read_token
from store import events as events_store
from store import messages as messages_store
from store import suppressions
from store.models import Contact


def address_of(contact: Contact, channel: str) -> str | None:
    if channel == "email":
        return contact.email
    if channel == "sms":
        return contact.phone
    return None


def unsubscribe(
    session: Session, contact: Contact, channel: str, reason: str, address: str | None = None
) -> bool:
    """Opt the contact out of ``channel`` and suppress ``address`` (default: the contact's
    current one), so neither a later journey nor a changed profile reaches it; False if both
    were already so."""
    changed = channel not in (contact.unsubscribed or [])
    if changed:
        # A new list, so SQLAlchemy sees the JSON column change.
        contact.unsubscribed = [*(contact.unsubscribed or []), channel]
    address = address or address_of(contact, channel)
    if address and messages_store.is_suppressed(session, channel, address) is None:
        suppressions.add(session, channel, address, reason)
        changed = True
    return changed


def resubscribe(
    session: Session, contact: Contact, channel: str, address: str | None = None
) -> bool:
    """Undo an opt-out the person asked to undo (SMS START); False if nothing was held."""
    changed = channel in (contact.unsubscribed or [])
    if changed:
        contact.unsubscribed = [c for c in contact.unsubscribed if c != channel]
    address = address or address_of(contact, channel)
    if address and suppressions.lift(session, channel, address):
        changed = True
    return changed


@dataclass(frozen=True)
class LinkState:
    channel: str
    unsubscribed: bool
    recorded: bool = False  # an event was queued: the relay has work


def link_state(session: Session, secret: str, token: str) -> LinkState | None:
    """What an unsubscribe link stands for, without changing anything; None if not genuine."""
    read = read_token(secret, token)
    if read is None:
        return None
    contact_id, channel = read
    contact = session.get(Contact, contact_id)
    # An erased contact has nothing left to send to: the link reads as already done.
    done = contact is None or channel in (contact.unsubscribed or [])
    return LinkState(channel, done)


def unsubscribe_by_link(
    session: Session, secret: str, token: str, now: datetime
) -> LinkState | None:
    """Carry out an unsubscribe link (RFC 8058 one-click); idempotent. None if not genuine.

    The first time, a ``<channel>.unsubscribed`` event is recorded and queued for routing, so
    journeys that exit on it hear about it; repeating the request records nothing more."""
    read = read_token(secret, token)
    if read is None:
        return None
    contact_id, channel = read
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        return LinkState(channel, True)  # erased: never recreate a contact from a link
    if unsubscribe(session, contact, channel, reason="unsubscribed"):
        row = {
            "message_id": f"unsubscribe:{uuid.uuid4()}",
            "contact_id": contact.id,
            "name": f"{channel}.unsubscribed",
            "properties": {"channel": channel, "source": "link"},
            "timestamp": now,
        }
        events_store.accept(session, [row], now)
        return LinkState(channel, True, recorded=True)
    return LinkState(channel, True)
