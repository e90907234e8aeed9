"""Subscription topics and each contact's explicit choices (``journeys/topics.py`` decides).

Writers of a contact's choices hold the contact's row lock (identify, the unsubscribe link,
the contacts API all lock it first), so the read-modify-write below cannot lose a choice."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from sqlalchemy import and_, delete, select
from sqlalchemy.orm import Session

from temporal_journeys.journeys.topics import TopicInfo, TopicType
from temporal_journeys.store.models import ContactTopic, Topic


def info(topic: Topic) -> TopicInfo:
    return TopicInfo(topic.key, topic.name, topic.description, topic.type)  # type: ignore[arg-type]


def get(session: Session, key: str) -> Topic | None:
    return session.get(Topic, key)


def put(
    session: Session, key: str, name: str, description: str | None, topic_type: TopicType
) -> tuple[Topic, bool]:
    """Create or replace a topic; True when it is new."""
    topic = session.get(Topic, key)
    created = topic is None
    if topic is None:
        topic = Topic(key=key)
        session.add(topic)
    topic.name, topic.description, topic.type = name, description, topic_type
    session.flush()
    return topic, created


def listed(session: Session) -> list[Topic]:
    return list(session.scalars(select(Topic).order_by(Topic.key)))


def keys(session: Session) -> list[str]:
    return list(session.scalars(select(Topic.key)))


def remove(session: Session, key: str) -> bool:
    """Delete a topic. Contacts' choices stay: an unsubscribe is still honoured if a topic of
    the same key is created again."""
    return bool(session.execute(delete(Topic).where(Topic.key == key)).rowcount)


def choices_of(session: Session, contact_id: str) -> dict[str, bool]:
    """The contact's explicit choices, by topic key."""
    rows = session.execute(
        select(ContactTopic.topic, ContactTopic.subscribed).where(
            ContactTopic.contact_id == contact_id
        )
    )
    return {topic: subscribed for topic, subscribed in rows}


def type_and_choice(
    session: Session, contact_id: str, topic: str
) -> tuple[str | None, bool | None]:
    """(the topic's type or None if it is not defined, the contact's choice or None): what a
    send guard needs, in one statement."""
    row = session.execute(
        select(Topic.type, ContactTopic.subscribed)
        .select_from(Topic)
        .outerjoin(
            ContactTopic,
            and_(ContactTopic.topic == Topic.key, ContactTopic.contact_id == contact_id),
        )
        .where(Topic.key == topic)
    ).first()
    if row is None:
        return None, None
    return row[0], row[1]


def set_choices(
    session: Session,
    contact_id: str,
    choices: Mapping[str, bool],
    source: str,
    now: datetime,
) -> dict[str, bool]:
    """Record choices; returns those that changed (an unchanged one keeps the moment and the
    source of the first time it was made, which is what a consent record must show)."""
    if not choices:
        return {}
    existing = {
        row.topic: row
        for row in session.scalars(
            select(ContactTopic).where(
                ContactTopic.contact_id == contact_id, ContactTopic.topic.in_(list(choices))
            )
        )
    }
    changed: dict[str, bool] = {}
    for topic, value in choices.items():
        row = existing.get(topic)
        if row is None:
            session.add(
                ContactTopic(
                    contact_id=contact_id,
                    topic=topic,
                    subscribed=value,
                    source=source,
                    updated_at=now,
                )
            )
        elif row.subscribed != value:
            row.subscribed, row.source, row.updated_at = value, source, now
        else:
            continue
        changed[topic] = value
    session.flush()
    return changed


def subscribed_among(session: Session, topic: str, contact_ids: Iterable[str]) -> set[str] | None:
    """Which of ``contact_ids`` are subscribed to ``topic``, in one statement, for a batch of
    recipients (broadcasts); None when the topic is not defined."""
    kind = session.scalar(select(Topic.type).where(Topic.key == topic))
    if kind is None:
        return None
    ids = list(dict.fromkeys(contact_ids))
    if not ids:
        return set()
    rows = session.execute(
        select(ContactTopic.contact_id, ContactTopic.subscribed).where(
            ContactTopic.topic == topic, ContactTopic.contact_id.in_(ids)
        )
    )
    chosen = {contact_id: choice for contact_id, choice in rows}
    default = kind == "opt_out"
    return {contact_id for contact_id in ids if chosen.get(contact_id, default)}


def remove_for_contact(session: Session, contact_id: str) -> int:
    """Erasure: the contact's choices go with the profile; the number of rows deleted."""
    result = session.execute(delete(ContactTopic).where(ContactTopic.contact_id == contact_id))
    return result.rowcount or 0
