"""The send log: one row per idempotency key, written before any provider is called."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from store.models import Message, Suppression, utcnow


def get(session: Session, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def is_suppressed(session: Session, channel: str, address: str) -> str | None:
    row = session.query(Suppression).filter_by(channel=channel, address=address).one_or_none()
    return row.reason if row else None


def add_status(message: Message, status: str, at: datetime | None = None, **extra: Any) -> None:
    message.status = status
    history = list(message.status_history or [])
    history.append({"status": status, "at": (at or utcnow()).isoformat(), **extra})
    message.status_history = history
