"""Parked outbox entries as operators see and handle them: list, queue again, give up."""

from __future__ import annotations

from sqlalchemy.orm import Session

from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import ParkedOut
from temporal_journeys.store import outbox


def listing(session: Session, *, after: int, limit: int) -> list[ParkedOut]:
    return [
        ParkedOut(
            id=entry.id,
            event_id=event.id,
            message_id=event.message_id,
            contact_id=entry.contact_id,
            event=event.name,
            attempts=entry.attempts,
            error=entry.last_error,
            parked_at=entry.parked_at,
            received_at=event.received_at,
        )
        for entry, event in outbox.parked(session, after=after, limit=limit)
    ]


def retry(session: Session, entry_id: int) -> None:
    """Back in the queue, ahead of its contact's later events; the relay tries it next pass."""
    if not outbox.unpark(session, entry_id):
        raise NotFound(f"parked event {entry_id}")


def drop(session: Session, entry_id: int) -> None:
    if not outbox.drop(session, entry_id):
        raise NotFound(f"parked event {entry_id}")
