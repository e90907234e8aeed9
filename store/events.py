"""Stored events, as the history conditions of branches ask about them."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from temporal_journeys.store import outbox, partitions
from temporal_journeys.store.models import Event, EventId, utcnow


def count(session: Session | Connection, contact_id: str, name: str, since: datetime | None) -> int:
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
    received = utcnow()
    event = Event(
        message_id=message_id,
        contact_id=contact_id,
        name=name,
        properties=properties,
        timestamp=timestamp,
        received_at=received,
    )
    session.add_all([event, EventId(message_id=message_id, received_at=received)])
    session.flush()
    return event


# One statement for Postgres: the batch goes in as one JSON array of [messageId, contact, name,
# properties, timestamp] rows (a fixed, cached statement whatever the batch size), messageIds
# seen before (in ``event_ids``, or earlier in the batch) are skipped, and what was stored is
# queued for routing. One JSON document instead of five arrays: psycopg dumps a text array
# element by element in Python, escaping each with a regular expression, which was a quarter of
# the API's time under load (docs/benchmarks.md); ``json.dumps`` of the whole batch is one call
# in C. ``event_ids`` takes the messageIds in their own order (two batches sharing some lock
# them in the same order), the events go in in the batch's (ids follow it, and the relay routes
# by id).
_ACCEPT_POSTGRES = text(
    """
    WITH incoming AS (
        SELECT DISTINCT ON (call ->> 0)
               call ->> 0 AS message_id, call ->> 1 AS contact_id, call ->> 2 AS name,
               call -> 3 AS properties, CAST(call ->> 4 AS timestamptz) AS timestamp, position
        FROM jsonb_array_elements(CAST(:rows AS jsonb)) WITH ORDINALITY AS t(call, position)
        ORDER BY call ->> 0, position
    ), fresh AS (
        INSERT INTO event_ids (message_id, received_at)
        SELECT message_id, :now FROM incoming
        ON CONFLICT (message_id) DO NOTHING
        RETURNING message_id
    ), stored AS (
        INSERT INTO events (message_id, contact_id, name, properties, timestamp, received_at)
        SELECT message_id, contact_id, name, properties, timestamp, :now
        FROM incoming JOIN fresh USING (message_id) ORDER BY position
        RETURNING id, contact_id
    ), queued AS (
        INSERT INTO outbox (event_id, contact_id, attempts, created_at, received_at)
        SELECT id, contact_id, 0, :now, :now FROM stored ORDER BY id
        RETURNING id
    )
    SELECT n, CASE WHEN n > 0 THEN pg_notify(:channel, '') END
    FROM (SELECT count(*) AS n FROM queued) AS counted
    """
)


def accept(session: Session, rows: list[dict[str, Any]], now: datetime) -> int:
    """Store events (skipping messageIds seen before) and queue them for routing, in the
    caller's transaction, listening relays told at its commit; returns how many were new."""
    if session.get_bind().dialect.name == "postgresql":
        document = json.dumps(
            [
                [
                    r["message_id"],
                    r["contact_id"],
                    r["name"],
                    r["properties"],
                    r["timestamp"].isoformat(),
                ]
                for r in rows
            ],
            # ASCII escapes: a lone surrogate (which JSON can carry) stays text Postgres
            # refuses with a DataError (422) instead of failing to encode here.
            separators=(",", ":"),
        )
        # Relays in other processes wake at the commit: the statement notifies them itself when
        # it queued anything (one round trip less per ingest than a NOTIFY of its own).
        parameters = {"rows": document, "now": now, "channel": outbox.CHANNEL}
        stored = session.connection().execute(_ACCEPT_POSTGRES, parameters).one()[0]
        if stored:
            outbox.notified(session)
        return stored
    firsts: dict[str, dict[str, Any]] = {}
    for row in rows:
        firsts.setdefault(row["message_id"], row)
    new = _claim_ids(session, list(firsts), now)
    fresh = [{**row, "received_at": now} for key, row in firsts.items() if key in new]
    if not fresh:
        return 0
    stored = session.execute(
        sqlite.insert(Event).returning(Event.id, Event.contact_id, sort_by_parameter_order=True),
        fresh,
    ).all()
    outbox.add(session, [(event_id, contact) for event_id, contact in stored], now)
    return len(stored)


def _claim_ids(session: Session, message_ids: list[str], now: datetime) -> set[str]:
    """The messageIds among these not stored before, now taken (SQLite's way)."""
    if not message_ids:
        return set()
    claimed = session.execute(
        sqlite.insert(EventId).on_conflict_do_nothing().returning(EventId.message_id),
        [{"message_id": key, "received_at": now} for key in message_ids],
    )
    return set(claimed.scalars())


def remove_for_contact(session: Session, contact_id: str) -> int:
    """Erase a contact's events (their messageIds stay in ``event_ids``: a replay of one is
    still skipped, so the contact's events do not come back)."""
    if session.get_bind().dialect.name == "postgresql":
        # Not while retention swaps a month: its copy of the month's kept rows would bring
        # these back.
        partitions.as_an_erasure(session)
    return session.execute(delete(Event).where(Event.contact_id == contact_id)).rowcount
