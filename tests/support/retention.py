"""Rows of a given age for the retention tests: events, messages with rendered content,
segments that read events."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from temporal_journeys.journeys.segments import parse_segment
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, Message
from tests.support import harness as h

CONTENT = {
    "subject": "Hello Ada",
    "body": "Hi Ada",
    "html": "<p>Hi Ada</p>",
    "headers": {"List-Unsubscribe": "<https://x.test/u/1>"},
}


def add_event(
    db: Database, now: datetime, name: str, age_days: float, received_days: float | None = None
) -> int:
    """An event ``age_days`` old by its timestamp (and by receipt, unless given)."""
    received = age_days if received_days is None else received_days
    with db.transaction() as session:
        event = Event(
            message_id=h.unique("msg"),
            contact_id="ada",
            name=name,
            properties={},
            timestamp=now - timedelta(days=age_days),
            received_at=now - timedelta(days=received),
        )
        session.add(event)
        session.flush()
        return event.id


def add_message(db: Database, now: datetime, age_days: float, **content: object) -> str:
    """A delivered message created ``age_days`` ago, with whatever content is given."""
    with db.transaction() as session:
        message = Message(
            id=h.unique("m"),
            idempotency_key=h.unique("key"),
            contact_id="ada",
            channel="email",
            template="hello",
            provider="console",
            status="delivered",
            status_history=[{"status": "sent"}, {"status": "delivered"}],
            reached=1,
            created_at=now - timedelta(days=age_days),
            **content,
        )
        session.add(message)
        return message.id


def add_segment(db: Database, condition: dict) -> None:
    segment = parse_segment(
        {"kind": "segment", "key": h.unique("seg"), "name": "Reads events", "condition": condition}
    )
    with db.transaction() as session:
        segments_store.put(session, segment)


def event_ids(db: Database) -> set[int]:
    with db.transaction() as session:
        return set(session.scalars(select(Event.id)))
