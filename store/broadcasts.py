"""Broadcasts and the snapshot of their recipients.

The snapshot is taken once, set-based (one INSERT ... SELECT from ``segment_members`` per time
zone among the members), in the transaction that records its size: a retried snapshot finds
``total`` set and takes nothing again. The workflow then pages through it by the keyset
``(due_at, contact_id)``; each recipient's row says what became of it.

A page is sent in a few set-based statements (``activities/broadcast_sends.py``): its message
rows and its contacts locked in one statement each, and what the send guards read beyond the
contact row (topic choices, suppressions, recent sends for frequency caps) read for all of the
page's recipients at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DateTime,
    String,
    bindparam,
    delete,
    func,
    insert,
    literal,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from temporal_journeys.store.models import (
    Broadcast,
    BroadcastRecipient,
    Contact,
    ContactTopic,
    Message,
    SegmentMember,
    Suppression,
    Topic,
)

RECIPIENTS = BroadcastRecipient.__table__
MEMBERS = SegmentMember.__table__
CONTACTS = Contact.__table__
MESSAGES = Message.__table__
LIVE = ("scheduled", "sending", "paused")


@dataclass(frozen=True)
class Recipient:
    contact_id: str
    due_at: datetime
    status: str
    message_id: str | None


@dataclass(frozen=True)
class Outcome:
    contact_id: str
    status: str
    reason: str | None
    message_id: str | None
    due_at: datetime | None = None
    """For a deferred recipient: when it may be sent (the end of its quiet hours)."""


def add(session: Session, broadcast: Broadcast) -> Broadcast:
    session.add(broadcast)
    session.flush()
    return broadcast


def get(session: Session, broadcast_id: str) -> Broadcast | None:
    return session.get(Broadcast, broadcast_id)


def listing(session: Session, *, status: str | None, limit: int) -> list[Broadcast]:
    query = select(Broadcast).order_by(Broadcast.created_at.desc(), Broadcast.id).limit(limit)
    if status is not None:
        query = query.where(Broadcast.status == status)
    return list(session.scalars(query))


def set_status(session: Session, broadcast_id: str, status: str, at: datetime) -> bool:
    """False when there is no such broadcast. A finished broadcast keeps its final status."""
    row = session.get(Broadcast, broadcast_id, with_for_update=True)
    if row is None:
        return False
    if row.status in ("completed", "cancelled", "failed"):
        return True
    row.status = status
    if status == "sending" and row.started_at is None:
        row.started_at = at
    if status in ("completed", "cancelled", "failed"):
        row.finished_at = at
    return True


def live_using_segment(session: Session, segment_key: str) -> list[str]:
    """Ids of broadcasts to ``segment_key`` that have not finished (their snapshot may not be
    taken yet)."""
    query = (
        select(Broadcast.id)
        .where(Broadcast.segment_key == segment_key, Broadcast.status.in_(LIVE))
        .order_by(Broadcast.id)
    )
    return list(session.scalars(query))


def snapshot(session: Session, broadcast_id: str, due_in: Callable[[str], datetime]) -> int | None:
    """Copy the segment's members into the recipients, each due at ``due_in(their zone)``;
    the number of recipients. Idempotent: a snapshot already taken is counted, not retaken.
    None when the broadcast does not exist."""
    row = session.get(Broadcast, broadcast_id, with_for_update=True)
    if row is None:
        return None
    if row.total is not None:
        return row.total
    zone = func.coalesce(CONTACTS.c.timezone, "UTC")
    joined = MEMBERS.outerjoin(CONTACTS, CONTACTS.c.id == MEMBERS.c.contact_id)
    mine = MEMBERS.c.segment_key == row.segment_key
    zones = list(session.execute(select(zone).select_from(joined).where(mine).distinct()).scalars())
    for name in zones:
        chosen = (
            select(
                literal(broadcast_id, String(64)),
                MEMBERS.c.contact_id,
                literal(due_in(name), DateTime(timezone=True)),
                literal("queued", String(20)),
            )
            .select_from(joined)
            .where(mine, zone == name)
        )
        session.execute(
            insert(RECIPIENTS).from_select(
                ["broadcast_id", "contact_id", "due_at", "status"], chosen
            )
        )
    # Counted, as drivers do not all report an INSERT ... SELECT's rows.
    total = session.scalar(
        select(func.count())
        .select_from(RECIPIENTS)
        .where(RECIPIENTS.c.broadcast_id == broadcast_id)
    )
    row.total = total or 0
    return row.total


def page(
    session: Session,
    broadcast_id: str,
    *,
    after: tuple[datetime, str] | None,
    now: datetime,
    limit: int,
) -> list[Recipient]:
    """Recipients due by ``now`` after the cursor, in keyset order (``due_at``, contact)."""
    query = _recipients().where(RECIPIENTS.c.broadcast_id == broadcast_id)
    query = query.where(RECIPIENTS.c.due_at <= now)
    if after is not None:
        query = query.where(
            tuple_(RECIPIENTS.c.due_at, RECIPIENTS.c.contact_id) > tuple_(*_bound(after))
        )
    query = query.order_by(RECIPIENTS.c.due_at, RECIPIENTS.c.contact_id).limit(limit)
    return [Recipient(*row) for row in session.execute(query)]


def next_due(
    session: Session, broadcast_id: str, after: tuple[datetime, str] | None
) -> datetime | None:
    """When the first recipient after the cursor is due; None when none is left."""
    query = select(func.min(RECIPIENTS.c.due_at)).where(RECIPIENTS.c.broadcast_id == broadcast_id)
    if after is not None:
        query = query.where(
            tuple_(RECIPIENTS.c.due_at, RECIPIENTS.c.contact_id) > tuple_(*_bound(after))
        )
    return _aware(session.scalar(query))


def _aware(moment: datetime | None) -> datetime | None:
    """SQLite gives back naive datetimes (UTC): the workflow compares them with its clock."""
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def deferred_page(
    session: Session, broadcast_id: str, *, now: datetime, limit: int
) -> list[Recipient]:
    """Recipients held by quiet hours whose hour has come, oldest first."""
    query = (
        _recipients()
        .where(
            RECIPIENTS.c.broadcast_id == broadcast_id,
            RECIPIENTS.c.status == "deferred",
            RECIPIENTS.c.due_at <= now,
        )
        .order_by(RECIPIENTS.c.due_at, RECIPIENTS.c.contact_id)
        .limit(limit)
    )
    return [Recipient(*row) for row in session.execute(query)]


def next_deferred(session: Session, broadcast_id: str) -> datetime | None:
    query = select(func.min(RECIPIENTS.c.due_at)).where(
        RECIPIENTS.c.broadcast_id == broadcast_id, RECIPIENTS.c.status == "deferred"
    )
    return _aware(session.scalar(query))


def record(session: Session, broadcast_id: str, outcomes: Iterable[Outcome]) -> None:
    """Each recipient's outcome, in one executemany; a deferred one also gets its new due."""
    rows = [
        {
            "b_id": broadcast_id,
            "c_id": o.contact_id,
            "status": o.status,
            "reason": o.reason,
            "message_id": o.message_id,
        }
        for o in outcomes
        if o.due_at is None
    ]
    held = [
        {
            "b_id": broadcast_id,
            "c_id": o.contact_id,
            "status": o.status,
            "reason": o.reason,
            "message_id": o.message_id,
            "due": o.due_at,
        }
        for o in outcomes
        if o.due_at is not None
    ]
    where = (RECIPIENTS.c.broadcast_id == bindparam("b_id"),) + (
        RECIPIENTS.c.contact_id == bindparam("c_id"),
    )
    values: dict[str, Any] = {
        "status": bindparam("status"),
        "reason": bindparam("reason"),
        "message_id": bindparam("message_id"),
    }
    connection = session.connection()
    if rows:
        connection.execute(update(RECIPIENTS).where(*where).values(**values), rows)
    if held:
        statement = update(RECIPIENTS).where(*where).values(**values, due_at=bindparam("due"))
        connection.execute(statement, held)


def counts(session: Session, broadcast_id: str) -> dict[str, int]:
    """Recipients by status."""
    query = (
        select(RECIPIENTS.c.status, func.count())
        .where(RECIPIENTS.c.broadcast_id == broadcast_id)
        .group_by(RECIPIENTS.c.status)
    )
    return {status: n for status, n in session.execute(query)}


def skip_reasons(session: Session, broadcast_id: str, limit: int = 20) -> dict[str, int]:
    """The most frequent reasons recipients were skipped or failed, with their numbers."""
    n = func.count().label("n")
    query = (
        select(RECIPIENTS.c.reason, n)
        .where(
            RECIPIENTS.c.broadcast_id == broadcast_id,
            RECIPIENTS.c.status.in_(("skipped", "failed")),
        )
        .group_by(RECIPIENTS.c.reason)
        .order_by(n.desc())
        .limit(limit)
    )
    return {reason or "": count for reason, count in session.execute(query)}


def recipients(
    session: Session, broadcast_id: str, *, after: str | None, limit: int
) -> list[Recipient]:
    """Recipients by contact id, a page at a time (the API's listing)."""
    query = _recipients().where(RECIPIENTS.c.broadcast_id == broadcast_id)
    if after is not None:
        query = query.where(RECIPIENTS.c.contact_id > after)
    query = query.order_by(RECIPIENTS.c.contact_id).limit(limit)
    return [Recipient(*row) for row in session.execute(query)]


def _recipients() -> Any:
    return select(
        RECIPIENTS.c.contact_id, RECIPIENTS.c.due_at, RECIPIENTS.c.status, RECIPIENTS.c.message_id
    )


def _bound(after: tuple[datetime, str]) -> tuple[Any, Any]:
    due, contact = after
    return literal(due, DateTime(timezone=True)), literal(contact, String(200))


def remove_for_contact(session: Session, contact_id: str) -> int:
    """Erasure: the contact's places in broadcasts go with the profile; rows deleted."""
    result = session.execute(delete(RECIPIENTS).where(RECIPIENTS.c.contact_id == contact_id))
    return result.rowcount or 0


# --- a page's sends, set-based --------------------------------------------------------------


def lock_messages(session: Session, message_ids: Collection[str]) -> dict[str, Message]:
    """The page's message rows that exist, locked for this transaction (in id order, so two
    lockers of overlapping pages queue up rather than deadlock)."""
    if not message_ids:
        return {}
    query = (
        select(Message)
        .where(Message.id.in_(list(message_ids)))
        .order_by(Message.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return {row.id: row for row in session.scalars(query)}


def insert_new(session: Session) -> None:
    """Write the message rows added to the session (a page's, by the send path) in one INSERT
    instead of the session's unit of work, which costs several times more per row; the objects
    leave the session (the page reads its rows again, locked, before changing them)."""
    fresh = [m for m in session.new if isinstance(m, Message)]
    if not fresh:
        return
    columns = list(MESSAGES.columns)
    rows = []
    for message in fresh:
        session.expunge(message)
        rows.append({column.key: _value(message, column) for column in columns})
    session.execute(insert(MESSAGES), rows)


def _value(message: Message, column: Any) -> Any:
    """The attribute, or the column's Python-side default as the unit of work would apply it
    (an executemany needs every key in every row, so Core would not)."""
    value = getattr(message, column.key)
    if value is None and column.default is not None:
        default = column.default
        return default.arg(None) if default.is_callable else default.arg
    return value


def lock_contacts(session: Session, contact_ids: Collection[str]) -> dict[str, Contact]:
    """The contacts, locked for this transaction (created if they are new, as one send's
    ``contacts.lock_or_create`` does), so a journey's send to one of them waits for the page
    and then counts its message."""
    if not contact_ids:
        return {}
    wanted = sorted(set(contact_ids))
    locked = (
        select(Contact)
        .where(Contact.id.in_(wanted))
        .order_by(Contact.id)
        .with_for_update()
        # Fresh from the rows, not from the identity map: what we change is what we locked.
        .execution_options(populate_existing=True)
    )
    found = {row.id: row for row in session.scalars(locked)}
    missing = [contact_id for contact_id in wanted if contact_id not in found]
    if missing:
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        session.execute(
            dialect.insert(CONTACTS).on_conflict_do_nothing(),
            [
                {"id": c, "traits": {}, "tags": [], "scores": {}, "unsubscribed": []}
                for c in missing
            ],
        )
        found.update(
            {row.id: row for row in session.scalars(locked.where(Contact.id.in_(missing)))}
        )
    return found


def topic_choices(
    session: Session, topic: str, contact_ids: Collection[str]
) -> tuple[str | None, dict[str, bool]]:
    """The topic's type (None if it is not defined) and the choices of those of the contacts
    who made one (no entry: the topic's default)."""
    topic_type = session.scalar(select(Topic.type).where(Topic.key == topic))
    if topic_type is None or not contact_ids:
        return topic_type, {}
    query = select(ContactTopic.contact_id, ContactTopic.subscribed).where(
        ContactTopic.topic == topic, ContactTopic.contact_id.in_(list(contact_ids))
    )
    return topic_type, {contact_id: subscribed for contact_id, subscribed in session.execute(query)}


def suppressions(session: Session, channel: str, addresses: Collection[str]) -> dict[str, str]:
    """The suppressed ones of ``addresses`` on ``channel``, with the reason."""
    if not addresses:
        return {}
    query = select(Suppression.address, Suppression.reason).where(
        Suppression.channel == channel, Suppression.address.in_(list(addresses))
    )
    return {address: reason for address, reason in session.execute(query)}


def sent_times(
    session: Session,
    *,
    contact_ids: Collection[str],
    channel: str,
    excluding: Collection[str],
    statuses: list[str],
    after: datetime,
    until: datetime,
) -> dict[str, list[datetime | None]]:
    """Per contact, ``sent_at`` of their messages on ``channel`` in these statuses sent in
    (after, until], oldest first, leaving out the messages ``excluding`` (the page's own): what
    ``messages.sent_times`` answers for one contact, for all of them."""
    if not contact_ids:
        return {}
    query = (
        select(Message.contact_id, Message.sent_at)
        .where(
            Message.contact_id.in_(list(contact_ids)),
            Message.channel == channel,
            Message.status.in_(statuses),
            Message.sent_at > after,
            Message.sent_at <= until,
            # A template's test send reaches a marketer, not the contact: caps skip it.
            Message.test.is_(False),
        )
        .order_by(Message.contact_id, Message.sent_at)
    )
    if excluding:
        query = query.where(Message.id.not_in(list(excluding)))
    times: dict[str, list[datetime | None]] = defaultdict(list)
    for contact_id, moment in session.execute(query):
        times[contact_id].append(moment)
    return dict(times)
