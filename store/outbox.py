"""Accepted events waiting to be routed to Temporal, taken per contact in arrival order; those
the relay could not deliver for good are parked beside them until an operator acts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    bindparam,
    delete,
    func,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session, aliased

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, OutboxEntry, utcnow

log = logging.getLogger("journeys.store.outbox")
ERROR_CHARS = 500


@dataclass(frozen=True, order=True)
class Claim:
    """A pending entry a relay holds for this pass: its contact is this relay's alone."""

    entry_id: int
    contact_id: str
    event_name: str


def add(session: Session, rows: list[tuple[int, str]], received_at: datetime) -> None:
    """Queue (event id, contact id) pairs of events received then, in the caller's transaction."""
    session.add_all(
        OutboxEntry(event_id=event_id, contact_id=contact, received_at=received_at)
        for event_id, contact in rows
    )


# An entry's event: by id and month of receipt, so Postgres reads one partition of ``events``.
_ITS_EVENT = and_(Event.id == OutboxEntry.event_id, Event.received_at == OutboxEntry.received_at)


# The channel the API notifies once an ingest queued events, and relays in their own processes
# listen on (Postgres only).
CHANNEL = "journeys_outbox"
# How long a relay's listener waits before connecting again after its connection broke.
LISTEN_RETRY_SECONDS = 2.0


_NOTIFY = select(func.pg_notify(bindparam("channel"), ""))


def notify(session: Session, queued: int) -> None:
    """Tell listening relays that ``queued`` events wait, when the caller's transaction commits
    (Postgres delivers a NOTIFY at commit, and drops it on rollback). Whatever queues entries
    calls it (the segments' level statements, ``unpark``; ``events.accept``'s statement
    notifies by itself and calls ``notified``); sent once per transaction, as Postgres would
    deliver one anyway. Nothing when none were queued, and nothing on SQLite, whose relay runs
    in the API's process and is woken there."""
    if not queued or session.get_bind().dialect.name != "postgresql":
        return
    current = session.get_transaction()
    if current is not None and session.info.get(_NOTIFIED) is current:
        return
    session.connection().execute(_NOTIFY, {"channel": CHANNEL})
    notified(session)


def notified(session: Session) -> None:
    """Record that the caller's transaction has notified (a statement of its own may do it,
    as ``events.accept``'s does), so ``notify`` sends nothing more in it."""
    session.info[_NOTIFIED] = session.get_transaction()


_NOTIFIED = "journeys.outbox_notified"
"""The transaction of a session's ``info`` that notified already (a session may hold several
transactions one after another)."""


async def listen(db: Database, wake: Callable[[], None]) -> None:
    """Call ``wake`` on every notification of ``notify``, until cancelled; Postgres only.

    A connection of its own (psycopg's async one, autocommit: LISTEN takes effect at once), not
    one of the pool: it stays open for the process's life. When it breaks it is opened again,
    and ``wake`` is called then too, as notifications sent meanwhile were lost."""
    import psycopg  # the Postgres driver; imported here, as SQLite deployments never call this

    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as connection:
                await connection.execute(f"LISTEN {CHANNEL}")
                log.info("listening for the API's notifications on %s", CHANNEL)
                wake()
                async for _ in connection.notifies():
                    wake()
        except psycopg.Error as exc:
            log.warning("outbox listener lost its connection (%s); polling meanwhile", exc)
        await asyncio.sleep(LISTEN_RETRY_SECONDS)


def _pending() -> ColumnElement[bool]:
    return OutboxEntry.parked_at.is_(None)


@asynccontextmanager
async def claim(db: Database, limit: int) -> AsyncIterator[list[Claim]]:
    """The oldest pending entries, their contacts held until the block ends.

    The relay commits each delivered event on its own, so a transaction-scoped lock would go
    with the first commit. On Postgres each contact is therefore held by a session advisory lock
    on a connection kept for the pass (several relays may run: another one skips the contacts
    held here, so one contact's events go out in order); it is released at the end, and dies
    with the connection if the process does. SQLite has a single writer and needs none."""
    # Checked out in a thread: waiting for a free connection on the event loop would stall the
    # tasks that hold the others.
    connection = await asyncio.to_thread(db.engine.connect)
    postgres = connection.dialect.name == "postgresql"
    try:
        with connection.begin():
            rows = connection.execute(_claim_query(limit, postgres)).all()
        yield sorted(Claim(*row) for row in rows)
    finally:
        _release(connection, postgres)


# How far past its batch a relay looks for contacts that no other relay holds.
CLAIM_WINDOW = 4


def _claim_query(limit: int, postgres: bool) -> Select[tuple[int, str, str]]:
    if not postgres:
        oldest = select(OutboxEntry.id, OutboxEntry.contact_id, Event.name).join(Event, _ITS_EVENT)
        return oldest.where(_pending()).order_by(OutboxEntry.id).limit(limit)
    # Each entry's event read by a lateral probe, one partition of ``events`` each (pruned at
    # run time by the entry's ``received_at``): as a join, the planner, which does not count
    # that pruning, preferred scanning every partition whole for a hash join.
    its_event = select(Event.name).where(_ITS_EVENT).limit(1).lateral("its_event")
    oldest = (
        select(OutboxEntry.id, OutboxEntry.contact_id, its_event.c.name)
        .join(its_event, true())
        .where(_pending())
        .order_by(OutboxEntry.id)
    )
    # The lock is taken in a query over a bounded window of the oldest entries, never in the
    # scan of the table: a filter there is evaluated on every row a sequential scan reads
    # before its sort (the plan Postgres picks when its statistics are stale, as after a bulk
    # insert), and a backlog of 100,000 entries then asked for 100,000 session locks, filling
    # the server's shared lock table ("out of shared memory") for every connection. The outer
    # query has no sort of its own, so its LIMIT stops it at ``limit`` locks; the caller sorts.
    window = oldest.limit(limit * CLAIM_WINDOW).cte("oldest").prefix_with("MATERIALIZED")
    return (
        select(window.c.id, window.c.contact_id, window.c.name)
        .where(func.pg_try_advisory_lock(func.hashtext(window.c.contact_id)))
        .limit(limit)
    )


def _release(connection: Connection, postgres: bool) -> None:
    try:
        if postgres:
            with connection.begin():
                connection.execute(select(func.pg_advisory_unlock_all()))
    except Exception:
        # Locks left on a pooled connection would hold those contacts for good: drop it instead,
        # which ends the server session and its locks.
        log.warning("could not release the relay's contact locks; closing its connection")
        connection.invalidate()
    finally:
        connection.close()


def take(session: Session, entry_id: int) -> tuple[OutboxEntry, Event] | None:
    """A claimed entry and its event, locked for the caller's transaction; ``None`` when it is no
    longer pending (delivered by a relay that held the contact before, parked or erased)."""
    taken = take_all(session, [entry_id])
    return taken[0] if taken else None


def _with_events(session: Session) -> Select[tuple[OutboxEntry, Event]]:
    """Entries with their events. On Postgres each event is read by a lateral probe of the
    one partition its entry names (see ``_claim_query``)."""
    if session.get_bind().dialect.name != "postgresql":
        return select(OutboxEntry, Event).join(Event, _ITS_EVENT)
    its_event = aliased(Event, select(Event).where(_ITS_EVENT).limit(1).lateral("its_event"))
    return select(OutboxEntry, its_event).join(its_event, true())


def take_all(session: Session, entry_ids: list[int]) -> list[tuple[OutboxEntry, Event]]:
    """``take`` for several claimed entries in one statement: those still pending, in id order."""
    query = (
        _with_events(session)
        .where(OutboxEntry.id.in_(entry_ids), _pending())
        .order_by(OutboxEntry.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(of=OutboxEntry)
    return [(entry, event) for entry, event in session.execute(query).all()]


def remove(session: Session, entry: OutboxEntry) -> None:
    """An entry routed to Temporal; gone when the caller's transaction commits."""
    session.delete(entry)


def failed(session: Session, entry: OutboxEntry, error: str) -> None:
    """An attempt that will be made again: the entry stays pending."""
    entry.attempts += 1
    entry.last_error = error[:ERROR_CHARS]


def park(session: Session, entry: OutboxEntry, error: str) -> None:
    """An entry that cannot be delivered as it is: out of the pending queue, with its error."""
    failed(session, entry, error)
    entry.parked_at = utcnow()


def pending(session: Session) -> int:
    """The backlog: entries waiting for the relay."""
    return session.scalar(select(func.count()).select_from(OutboxEntry).where(_pending())) or 0


def parked_count(session: Session) -> int:
    return (
        session.scalar(
            select(func.count()).select_from(OutboxEntry).where(OutboxEntry.parked_at.is_not(None))
        )
        or 0
    )


def parked(session: Session, *, after: int, limit: int) -> list[tuple[OutboxEntry, Event]]:
    """Parked entries with their events, oldest first, from the one after ``after``."""
    query = (
        _with_events(session)
        .where(OutboxEntry.parked_at.is_not(None), OutboxEntry.id > after)
        .order_by(OutboxEntry.id)
        .limit(limit)
    )
    return [(entry, event) for entry, event in session.execute(query).all()]


def unpark(session: Session, entry_id: int) -> bool:
    """Queue a parked entry again, in its original place: next for its contact. False if no
    parked entry has that id."""
    result = session.execute(
        update(OutboxEntry)
        .where(OutboxEntry.id == entry_id, OutboxEntry.parked_at.is_not(None))
        .values(parked_at=None)
    )
    queued = result.rowcount == 1  # type: ignore[attr-defined]
    notify(session, queued)
    return queued


def drop(session: Session, entry_id: int) -> bool:
    """Give a parked entry up: its event stays stored, it is never routed. False if no parked
    entry has that id."""
    result = session.execute(
        delete(OutboxEntry).where(OutboxEntry.id == entry_id, OutboxEntry.parked_at.is_not(None))
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def remove_for_contact(session: Session, contact_id: str) -> int:
    return session.execute(delete(OutboxEntry).where(OutboxEntry.contact_id == contact_id)).rowcount
