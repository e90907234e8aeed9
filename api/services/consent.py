"""Consent: opting a contact out of a channel (link, STOP, provider report) and back in, and
out of or into subscription topics (the unsubscribe link's preference page, the API)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from temporal_journeys.journeys import topics
from temporal_journeys.journeys.consent import Link, read_link
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import suppressions
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.models import Contact


def address_of(contact: Contact, channel: str) -> str | None:
    if channel == "email":
        return contact.email
    if channel in ("sms", "whatsapp"):
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
class TopicChoice:
    key: str
    name: str
    description: str | None
    subscribed: bool


@dataclass(frozen=True)
class LinkState:
    """What an unsubscribe link stands for. ``unsubscribed``: the contact left the whole
    channel (or was erased); ``topic``: the message's topic, if it had one, and whether the
    contact still gets it; ``topics``: every topic with the contact's standing, for the page."""

    channel: str
    unsubscribed: bool
    recorded: bool = False  # an event was queued: the relay has work
    topic: TopicChoice | None = None
    topics: list[TopicChoice] = field(default_factory=list)


def _event(
    session: Session, contact_id: str, name: str, properties: dict[str, Any], now: datetime
) -> None:
    row = {
        "message_id": f"{name}:{uuid.uuid4()}",
        "contact_id": contact_id,
        "name": name,
        "properties": properties,
        "timestamp": now,
    }
    events_store.accept(session, [row], now)


def topic_choices(session: Session, contact_id: str) -> list[TopicChoice]:
    """Every defined topic with whether the contact receives it (their choice or the default)."""
    chosen = topics_store.choices_of(session, contact_id)
    return [
        TopicChoice(t.key, t.name, t.description, topics.subscribed(t.type, chosen.get(t.key)))
        for t in topics_store.listed(session)
    ]


def set_topics(
    session: Session,
    contact_id: str,
    choices: Mapping[str, bool],
    source: str,
    now: datetime,
) -> dict[str, bool]:
    """Record topic choices (the contact locked by the caller). Each that changes whether the
    contact receives the topic is also a ``topic.subscribed`` / ``topic.unsubscribed`` event
    queued for routing, so journeys can exit on it; confirming a default stores the choice
    without an event. Returns those changes (an event was queued for each)."""
    before = {c.key: c.subscribed for c in topic_choices(session, contact_id)}
    stored = topics_store.set_choices(session, contact_id, choices, source, now)
    changed = {key: value for key, value in stored.items() if before.get(key) != value}
    for key, value in changed.items():
        name = "topic.subscribed" if value else "topic.unsubscribed"
        _event(session, contact_id, name, {"topic": key, "source": source}, now)
    return changed


def _state(session: Session, link: Link, recorded: bool = False) -> LinkState:
    contact = contacts_store.get(session, link.contact_id)
    if contact is None:
        # An erased contact has nothing left to send to: the link reads as already done.
        return LinkState(link.channel, True, recorded)
    choices = topic_choices(session, contact.id)
    mine = next((c for c in choices if c.key == link.topic), None)
    if link.topic is not None and mine is None:  # the topic was deleted since the send
        mine = TopicChoice(link.topic, link.topic, None, False)
    left = link.channel in (contact.unsubscribed or [])
    return LinkState(link.channel, left, recorded, mine, choices)


def link_state(session: Session, secret: str, token: str) -> LinkState | None:
    """What an unsubscribe link stands for, without changing anything; None if not genuine."""
    link = read_link(secret, token)
    return None if link is None else _state(session, link)


def unsubscribe_by_link(session: Session, link: Link, now: datetime) -> LinkState:
    """Carry out an unsubscribe link (RFC 8058 one-click); idempotent.

    A link from a message with a topic leaves that topic only (the contact keeps the others
    and the channel); a link without one leaves the channel. The first time, an event is
    recorded and queued for routing (``topic.unsubscribed`` or ``<channel>.unsubscribed``), so
    journeys that exit on it hear about it; repeating the request records nothing more."""
    if link.topic is not None:
        contact = contacts_store.get(session, link.contact_id, for_update=True)
        if contact is None:
            return LinkState(link.channel, True)  # erased: never recreate a contact from a link
        changed = set_topics(session, contact.id, {link.topic: False}, "link", now)
        return _state(session, link, recorded=bool(changed))
    return unsubscribe_everything(session, link, now)


def unsubscribe_everything(session: Session, link: Link, now: datetime) -> LinkState:
    """Leave the link's whole channel (every topic with it); idempotent."""
    contact = contacts_store.get(session, link.contact_id, for_update=True)
    if contact is None:
        return LinkState(link.channel, True)  # erased: never recreate a contact from a link
    recorded = unsubscribe(session, contact, link.channel, reason="unsubscribed")
    if recorded:
        properties = {"channel": link.channel, "source": "link"}
        _event(session, contact.id, f"{link.channel}.unsubscribed", properties, now)
    return _state(session, link, recorded)


def save_preferences(
    session: Session, link: Link, shown: list[str], chosen: list[str], now: datetime
) -> LinkState:
    """The preference page's form: of the topics the page ``shown``, those ``chosen`` are
    subscribed and the others not. Topics created after the page was served are left alone.
    ``UnknownTopics`` (422 naming the form field) for a key that is not a topic."""
    known = set(topics_store.keys(session))
    problems = [
        Problem(f"$.{name}", f"unknown topic {key!r}")
        for name, keys in (("shown", shown), ("topic", chosen))
        for key in keys
        if key not in known
    ]
    if problems:
        raise topics.UnknownTopics(problems)
    contact = contacts_store.get(session, link.contact_id, for_update=True)
    if contact is None:
        return LinkState(link.channel, True)
    choices = {key: key in set(chosen) for key in [*shown, *chosen]}
    changed = set_topics(session, contact.id, choices, "preferences", now)
    return _state(session, link, recorded=bool(changed))
