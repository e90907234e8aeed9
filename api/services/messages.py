"""The send log as the API shows it: each message with what it said and the headers sent."""

from __future__ import annotations

from sqlalchemy.orm import Session

from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import MessageOut
from temporal_journeys.store import messages as messages_store


def listing(
    session: Session,
    *,
    contact: str | None,
    journey: str | None,
    status: str | None,
    test: bool | None = None,
    limit: int,
) -> list[MessageOut]:
    """Newest first; ``status`` is the furthest state each message reached."""
    rows = messages_store.listing(
        session, contact_id=contact, journey_key=journey, status=status, test=test, limit=limit
    )
    return [MessageOut.model_validate(m, from_attributes=True) for m in rows]


def get(session: Session, message_id: str) -> MessageOut:
    message = messages_store.get(session, message_id)
    if message is None:
        raise NotFound(f"message {message_id!r}")
    return MessageOut.model_validate(message, from_attributes=True)
