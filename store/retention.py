"""Retention: old events deleted and old messages' rendered content cleared, in batches; on
Postgres, whole months of events swapped for the rows they still need first.

Each call handles at most ``limit`` rows in one short transaction of the caller's, so a pass
over millions of rows never holds a lock for long (SQLite has one writer at a time) and can
stop and resume anywhere: the caller keeps the cursor (``after``) between calls.

What an event deletion must never take away (``events_needed`` and the outbox test below):

- **Conditions that read stored events.** Segment conditions (``event`` counts, ``last_event``)
  and journey branch conditions (``history``) count a contact's stored events. An event whose
  name such a condition reads *without* a window (ever, or before/after a date) is kept
  forever; one read with a window longer than the retention period is kept for that window.
  The set is computed from every stored segment and every stored journey version (runs of an
  old version still branch on it) at each batch, so a condition saved mid-pass is honoured
  from the next batch on.
- **Events not yet routed.** An event still in the outbox (queued, or parked for an operator)
  is what the relay will send to its runs: kept until the relay deletes its entry.
- **Deduplication by messageId.** Ingest skips a messageId found in ``event_ids``, which
  loses it with its event; once an event is deleted a repeat of it would be stored and routed
  again. Deleting only events *received* more than the retention period ago keeps
  deduplication for that long after receipt, whatever timestamp the client gave (clients retry
  for minutes or hours).

The WhatsApp send reads one day back (the 24-hour window after a contact's last message), less
than any retention setting (whole days, at least one). Runs themselves read no stored event:
what a ``wait_for`` step sees travels in signals and the run's own buffer (docs/operating.md,
"What a run keeps of its events").

Messages keep their row, status, outcomes and status history (the stats and frequency caps
read them); only what the provider was given (subject, text, HTML, headers) is cleared. A
retried send renders its content again from the template (``activities/sends.py``,
``record_content``), so clearing the stored copy changes no send.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel
from sqlalchemy import (
    ColumnElement,
    and_,
    column,
    delete,
    func,
    insert,
    literal_column,
    not_,
    null,
    or_,
    select,
    table,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from temporal_journeys.journeys.conditions import History
from temporal_journeys.journeys.segments import EventCondition, LastEventCondition, nodes
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import partitions
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.models import Event, EventId, JourneyVersion, Message, OutboxEntry

# Each statement's rows stay bounded; SQLite accepts far more bound values than this too.
MAX_BATCH = 10_000


@dataclass(frozen=True)
class EventsNeeded:
    """Event names that stored conditions read: kept forever, or kept for a window."""

    forever: frozenset[str] = frozenset()
    windows: dict[str, timedelta] = field(default_factory=dict)

    def describe(self) -> str:
        kept = [f"{name} (forever)" for name in sorted(self.forever)]
        kept += [f"{name} ({window.days} d)" for name, window in sorted(self.windows.items())]
        return ", ".join(kept) or "none"


def _models(value: Any) -> Iterator[Any]:
    """Every pydantic model inside ``value`` (a journey spec), depth first. Generic over the
    spec's shape, so a new step kind carrying conditions is covered without a change here."""
    if isinstance(value, BaseModel):
        yield value
        for name in type(value).model_fields:
            yield from _models(getattr(value, name))
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _models(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _models(item)


def events_needed(session: Session) -> EventsNeeded:
    """The event names that stored segments and journey versions read, with how far back."""
    forever: set[str] = set()
    windows: dict[str, timedelta] = {}

    def note(name: str, window: timedelta | None) -> None:
        if window is None:
            forever.add(name)
        else:
            windows[name] = max(window, windows.get(name, window))

    for segment in segments_store.definitions(session).values():
        for node in nodes(segment.condition):
            if isinstance(node, EventCondition):
                note(node.event, node.within)
            elif isinstance(node, LastEventCondition):
                # `before` / `after` a moment: a contact's last event may be of any age.
                note(node.last_event, node.within)
    versions = session.execute(select(JourneyVersion.journey_key, JourneyVersion.version)).all()
    for key, version in versions:
        journey = journeys_store.version_spec(session, key, version)
        for model in _models(journey):
            if isinstance(model, History):
                note(model.event, model.within)
    return EventsNeeded(
        frozenset(forever),
        {name: window for name, window in windows.items() if name not in forever},
    )


class EventsBatch(BaseModel):
    """One batch of the events pass: the ids scanned, and how many of them went."""

    scanned: int
    deleted: int = 0  # or would have gone, on a dry run
    last_id: int  # the cursor: every id up to this one has been looked at
    done: bool


def _old_enough(now: datetime, keep: timedelta, needed: EventsNeeded) -> ColumnElement[bool]:
    cutoff = now - keep
    special = sorted(needed.forever | needed.windows.keys())
    cases = [and_(Event.name.not_in(special), Event.timestamp < cutoff)]
    cases += [
        and_(Event.name == name, Event.timestamp < min(cutoff, now - window))
        for name, window in sorted(needed.windows.items())
    ]
    return or_(*cases)


def delete_old_events(
    session: Session,
    *,
    now: datetime,
    keep: timedelta,
    after_id: int,
    limit: int,
    needed: EventsNeeded,
    dry_run: bool = False,
    counted_months: Sequence[str] = (),
) -> EventsBatch:
    """Delete (or, on a dry run, count) the events among the ``limit`` ids after ``after_id``
    that are older than ``keep`` by receipt and by event time, and that no condition and no
    outbox entry still needs. A dry run leaves out the rows of the partitions
    ``counted_months``, which the dry run of ``swap_old_month`` counted.

    The walk is by primary key, so it needs no index of its own (every index slows ingest).
    Ids grow with receipt up to the few seconds two API transactions overlap, so the pass
    stops at the first batch that holds no event received before the cutoff: a straggler of
    those seconds goes the next day."""
    limit = max(1, min(limit, MAX_BATCH))
    cutoff = now - keep
    page = select(Event.id, Event.received_at).where(Event.id > after_id)
    page = page.order_by(Event.id).limit(limit).subquery()
    last, scanned, old = session.execute(
        select(
            func.max(page.c.id),
            func.count(),
            func.count().filter(page.c.received_at < cutoff),
        )
    ).one()
    if not scanned:
        return EventsBatch(scanned=0, last_id=after_id, done=True)
    routed = select(OutboxEntry.event_id).where(
        OutboxEntry.event_id > after_id, OutboxEntry.event_id <= last
    )
    where = (
        Event.id > after_id,
        Event.id <= last,
        Event.received_at < cutoff,
        _old_enough(now, keep, needed),
        Event.id.not_in(routed),
    )
    if dry_run:
        # The months a real pass swaps first are still here: their rows were counted then.
        if counted_months:
            where += (literal_column("events.tableoid::regclass::text").not_in(counted_months),)
        gone = session.scalar(select(func.count()).select_from(Event).where(*where)) or 0
    else:
        # Their messageIds first: a repeat of a deleted event is stored again, as before.
        session.execute(
            delete(EventId).where(EventId.message_id.in_(select(Event.message_id).where(*where)))
        )
        gone = session.execute(delete(Event).where(*where)).rowcount
    return EventsBatch(
        scanned=scanned, deleted=gone, last_id=last, done=scanned < limit or old == 0
    )


class MonthSwapped(BaseModel):
    """A month of events (a partition, on Postgres) swapped for the rows it still needed."""

    month: str
    deleted: int  # or would have gone, on a dry run
    kept: int


def old_months(session: Session, *, now: datetime, keep: timedelta) -> list[partitions.Month]:
    """The months of events received wholly before the cutoff and not swapped yet, oldest
    first; none on SQLite."""
    if not partitions.is_partitioned(session):
        return []
    cutoff = now - keep
    return [m for m in partitions.months(session) if not m.kept and m.end <= cutoff]


def swap_old_month(
    session: Session,
    month: partitions.Month,
    *,
    now: datetime,
    keep: timedelta,
    needed: EventsNeeded,
    dry_run: bool = False,
) -> MonthSwapped:
    """Replace a whole month of events by the few of its rows that conditions or the outbox
    still need, and drop the rest with the month's partition: one catalogue change instead of
    a deletion per row (``store/partitions.py``). Which rows go is decided as for a batch
    (``delete_old_events``); their messageIds leave ``event_ids`` with them.

    The copy runs with erasures held off (a contact erased meanwhile would come back with it);
    ingest waits only for the swap itself, a few catalogue changes at the end."""
    in_month = [Event.received_at < month.end]
    if month.start is not None:
        in_month.append(Event.received_at >= month.start)
    # A hashed list of the outbox's event ids (``event_id`` is never null, so NOT IN is exact):
    # the outbox has no index by event, and a correlated probe per row scanned it every time.
    goes = and_(_old_enough(now, keep, needed), Event.id.not_in(select(OutboxEntry.event_id)))
    if dry_run:
        gone, total = session.execute(
            select(func.count().filter(goes), func.count()).select_from(Event).where(*in_month)
        ).one()
        return MonthSwapped(month=month.table, deleted=gone, kept=total - gone)
    partitions.hold_erasures(session)
    columns = [c.name for c in Event.__table__.columns]
    kept_rows = table(partitions.create_kept(session, month), *map(column, columns))
    copied = (
        insert(kept_rows)
        .from_select(columns, select(*Event.__table__.columns).where(*in_month, not_(goes)))
        .returning(kept_rows.c.id)
        .cte("copied")
    )
    kept = session.scalar(select(func.count()).select_from(copied)) or 0
    gone_ids = select(Event.message_id).where(*in_month, goes).cte("gone")
    forgotten = (
        delete(EventId)
        .where(EventId.message_id.in_(select(gone_ids.c.message_id)))
        .returning(EventId.message_id)
        .cte("forgotten")
    )
    # ``forgotten`` is named by nothing the answer reads: added, or it would not be written.
    gone = session.scalar(select(func.count()).select_from(gone_ids).add_cte(forgotten)) or 0
    partitions.swap_month(session, month)
    return MonthSwapped(month=month.table, deleted=gone, kept=kept)


# Rows whose rendered content is still stored; the partial index ix_messages_content_created
# (migration 0014) holds exactly these, so a pass reads only what it has left to clear.
HAS_CONTENT = or_(
    Message.subject.is_not(None),
    Message.body.is_not(None),
    Message.html.is_not(None),
    Message.headers.is_not(None),
)


class BodiesBatch(BaseModel):
    """One batch of the message-content pass."""

    cleared: int  # or would have been, on a dry run
    after: tuple[datetime, str] | None  # the cursor: (created_at, id) of the last one
    done: bool


def clear_old_bodies(
    session: Session,
    *,
    before: datetime,
    after: tuple[datetime, str] | None,
    limit: int,
    dry_run: bool = False,
) -> BodiesBatch:
    """Clear the subject, text, HTML and headers of up to ``limit`` messages created before
    ``before``, oldest first from the cursor ``after``; a dry run counts them instead."""
    limit = max(1, min(limit, MAX_BATCH))
    key = tuple_(Message.created_at, Message.id)
    where: list[ColumnElement[bool]] = [HAS_CONTENT, Message.created_at < before]
    if after is not None:
        where.append(key > tuple_(*after))
    rows = session.execute(
        select(Message.created_at, Message.id)
        .where(*where)
        .order_by(Message.created_at, Message.id)
        .limit(limit)
    ).all()
    if not rows:
        return BodiesBatch(cleared=0, after=after, done=True)
    last = (rows[-1][0], rows[-1][1])
    if not dry_run:
        # SQL NULL for each (a JSON column would store JSON null for None): a cleared row
        # leaves the partial index.
        session.execute(
            update(Message)
            .where(*where, key <= tuple_(*last))
            .values(subject=null(), body=null(), html=null(), headers=null())
            .execution_options(synchronize_session=False)
        )
    return BodiesBatch(cleared=len(rows), after=last, done=len(rows) < limit)
