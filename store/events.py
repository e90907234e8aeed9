"""Stored events, as the history conditions of branches ask about them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

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
