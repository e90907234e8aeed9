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


# Where a message can be, in the order it gets there. Webhooks arrive late, twice and out of
# order, so they only ever move a message forward along this order (``advance``): the final
# state is the furthest one reached, whatever order the deliveries came in. A send attempt's
# own states (pending to sent) are written by the send activity with ``add_status``.
STATUS_ORDER: tuple[str, ...] = (
    "pending",  # row written, provider not yet called
    "deferred",  # held by a frequency cap or channel quiet hours
    "sending",  # provider being called: a crash here leaves the outcome unknown
    "unknown",  # an attempt's outcome could not be known; never sent again
    "sent",  # accepted by the provider
    "delayed",  # the provider is retrying delivery (SendGrid "deferred")
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "spamreport",
    "undelivered",  # accepted, then refused downstream (Twilio failed/undelivered, dropped)
    "bounced",
    "failed",  # refused by the provider for good when sent
    "skipped",  # never sent: consent, suppression, address or cap
)
RANK = {status: rank for rank, status in enumerate(STATUS_ORDER)}


def advance(message: Message, status: str, at: datetime | None = None, **extra: Any) -> bool:
    """Move a message to ``status`` if that is further than where it is; False if not."""
    if RANK[status] <= RANK.get(message.status, -1):
        return False
    add_status(message, status, at, **extra)
    return True
