"""The send log: one row per idempotency key, written before any provider is called."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from temporal_journeys.store.models import Message, Suppression, utcnow


def get(session: Session, message_id: str) -> Message | None:
    return session.get(Message, message_id)


def lock(session: Session, message_id: str) -> Message | None:
    """The message, locked for this transaction: attempts of one send queue up behind it."""
    return session.scalars(
        select(Message).where(Message.id == message_id).with_for_update()
    ).one_or_none()


def add(session: Session, message: Message) -> Message:
    session.add(message)
    return message


def listing(
    session: Session,
    *,
    contact_id: str | None = None,
    journey_key: str | None = None,
    status: str | None = None,
    test: bool | None = None,
    limit: int,
) -> list[Message]:
    """Messages, newest first, filtered by whichever of contact, journey, status and test
    mark are given."""
    query = select(Message).order_by(Message.created_at.desc()).limit(limit)
    if test is not None:
        query = query.where(Message.test.is_(test))
    if contact_id is not None:
        query = query.where(Message.contact_id == contact_id)
    if journey_key is not None:
        query = query.where(Message.journey_key == journey_key)
    if status is not None:
        query = query.where(Message.status == status)
    return list(session.scalars(query))


def latest_of_step(session: Session, contact_id: str, step_id: str) -> Message | None:
    """The newest message this step sent to the contact."""
    return (
        session.query(Message)
        .filter_by(contact_id=contact_id, step_id=step_id)
        .order_by(Message.created_at.desc())
        .first()
    )


def sent_times(
    session: Session,
    *,
    contact_id: str,
    channel: str,
    excluding: str,
    statuses: list[str],
    after: datetime,
    until: datetime,
) -> list[datetime | None]:
    """``sent_at`` of the contact's other messages on ``channel`` in these statuses, sent in
    (after, until], oldest first."""
    return list(
        session.scalars(
            select(Message.sent_at)
            .where(
                Message.contact_id == contact_id,
                Message.channel == channel,
                Message.id != excluding,
                Message.status.in_(statuses),
                Message.sent_at > after,
                Message.sent_at <= until,
                # A template's test send reaches a marketer, not the contact: caps skip it.
                Message.test.is_(False),
            )
            .order_by(Message.sent_at)
        )
    )


def remove_for_contact(session: Session, contact_id: str) -> int:
    return session.execute(delete(Message).where(Message.contact_id == contact_id)).rowcount


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
    "unknown",  # an attempt's outcome could not be known; sent again only after a resend window
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

# What a provider's reports proved of a message, whatever the order they came in: one bit per
# outcome in ``Message.reached``, so the stats count a journey's messages per outcome from the
# messages alone (an open after the click moves no status, yet it was opened). An engagement
# proves what comes before it: a click that the message was opened (images off send no open),
# an open, click, complaint or unsubscribe that it was delivered.
REACHED_BITS: dict[str, int] = {
    "delivered": 1,
    "opened": 2,
    "clicked": 4,
    "bounced": 8,
    "complained": 16,
    "unsubscribed": 32,
    "undelivered": 64,
}
PROVES: dict[str, tuple[str, ...]] = {
    "delivered": ("delivered",),
    "opened": ("delivered", "opened"),
    "clicked": ("delivered", "opened", "clicked"),
    "spamreport": ("delivered", "complained"),
    "unsubscribed": ("delivered", "unsubscribed"),
    "bounced": ("bounced",),
    "undelivered": ("undelivered",),
}


def reached_bits(status: str) -> int:
    """The ``Message.reached`` bits a report of ``status`` sets."""
    return sum(REACHED_BITS[outcome] for outcome in PROVES.get(status, ()))


def advance(message: Message, status: str, at: datetime | None = None, **extra: Any) -> bool:
    """Move a message to ``status`` if that is further than where it is; False if not. What
    the report proves is kept in ``reached`` either way."""
    message.reached = (message.reached or 0) | reached_bits(status)
    if RANK[status] <= RANK.get(message.status, -1):
        return False
    add_status(message, status, at, **extra)
    return True
