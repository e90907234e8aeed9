"""Accepted events waiting to be routed to Temporal, taken per contact in arrival order."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Event, OutboxEntry


def add(session: Session, rows: list[tuple[int, str]]) -> None:
    """Queue (event id, contact id) pairs in the caller's transaction."""
    session.add_all(
        OutboxEntry(event_id=event_id, contact_id=contact) for event_id, contact in rows
    )


def claim(session: Session, limit: int) -> list[tuple[OutboxEntry, Event]]:
    """The oldest pending entries, locked for this transaction.

    On Postgres several relays may run: an advisory lock per contact keeps one contact's events
    with one relay at a time (so they go out in order), and SKIP LOCKED lets the others take
    other contacts. SQLite has a single writer and needs neither."""
    query = (
        select(OutboxEntry, Event)
        .join(Event, Event.id == OutboxEntry.event_id)
        .order_by(OutboxEntry.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.where(
            func.pg_try_advisory_xact_lock(func.hashtext(OutboxEntry.contact_id))
        ).with_for_update(of=OutboxEntry, skip_locked=True)
    return [(entry, event) for entry, event in session.execute(query).all()]


def pending(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(OutboxEntry)) or 0
