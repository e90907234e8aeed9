"""Stored events, as the history conditions of branches ask about them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from store import outbox
from store.models import Event


def count(session: Session, contact_id: str, name: str, since: datetime | None) -> int:
    query = select(func.count()).where(Event.contact_id == contact_id, Event.name == name)
    if since is not None:
        query = query.where(Event.timestamp >= since)
    return session.scalar(query) or 0


def record(
    session: Session,
    *,
    message_id: str,
    contact_id: str,
    name: str,
    properties: dict[str, Any],
    timestamp: datetime,
) -> Event:
    event = Event(
        message_id=message_id,
        contact_id=contact_id,
        name=name,
        properties=properties,
        timestamp=timestamp,
    )
    session.add(event)
    session.flush()
    return event


# One statement for Postgres: the batch goes in as arrays (a fixed, cached statement whatever
# the batch size), duplicates by messageId are skipped, and what was stored is queued for routing.
_ACCEPT_POSTGRES = text(
    """
    WITH incoming AS (
        SELECT * FROM unnest(
            CAST(:message_ids AS text[]), CAST(:contact_ids AS text[]), CAST(:names AS text[]),
            CAST(:properties AS text[]), CAST(:timestamps AS timestamptz[])
        ) WITH ORDINALITY AS t(message_id, contact_id, name, properties, timestamp, position)
    ), stored AS (
        INSERT INTO events (message_id, contact_id, name, properties, timestamp, received_at)
        SELECT message_id, contact_id, name, CAST(properties AS jsonb), timestamp, :now
        FROM incoming ORDER BY position
        ON CONFLICT (message_id) DO NOTHING
        RETURNING id, contact_id
    )
    INSERT INTO outbox (event_id, contact_id, attempts, created_at)
    SELECT id, contact_id, 0, :now FROM stored ORDER BY id
    RETURNING id
    """
)


def accept(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """Store events (skipping messageIds seen before) and queue them for routing, in the
    caller's transaction; returns how many were new."""
    if session.get_bind().dialect.name == "postgresql":
        result = session.execute(
            _ACCEPT_POSTGRES,
            {
                "message_ids": [r["message_id"] for r in rows],
                "contact_ids": [r["contact_id"] for r in rows],
                "names": [r["name"] for r in rows],
                "properties": [json.dumps(r["properties"]) for r in rows],
                "timestamps": [r["timestamp"] for r in rows],
                "now": now,
            },
        )
        return len(result.all())
    stored = session.execute(
        sqlite.insert(Event)
        .on_conflict_do_nothing(index_elements=["message_id"])
        .returning(Event.id, Event.contact_id),
        [{**row, "received_at": now} for row in rows],
    ).all()
    outbox.add(session, sorted((event_id, contact) for event_id, contact in stored))
    return len(stored)
