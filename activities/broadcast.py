"""Activities of the broadcast workflow: the members snapshot, a batch of sends, the status.

A batch sends to its recipients with the journeys' send path done a page at a time
(``activities/broadcast_sends.py``): the message rows keyed ``broadcast/<id>/<contact>``
written with the guards (address, consent, topic subscription, suppression, quiet hours,
frequency caps) before any provider call, so a batch retried after a crash finds each earlier
outcome and sends nobody twice. Sends run ``concurrency`` at a time; each provider's own slots
still bound its calls. The batch records every recipient's outcome in the snapshot once they
are all known; a retry before that recomputes them from the message rows, which changes nothing.

A journey broadcast admits each page's recipients as one batch (``start_entries``: the
re-entry rule checked for all of them, the runs started by ``start_run``, idempotent while a
run is alive, and their enrollments recorded in one INSERT).
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from temporalio import activity
from temporalio.exceptions import ApplicationError

from temporal_journeys.activities.batch_admission import (
    Entry,
    in_held_transaction,
    live_journey,
    start_entries,
)
from temporal_journeys.activities.broadcast_sends import BroadcastSends
from temporal_journeys.activities.sends import SendActivities
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store.broadcasts import Outcome, Recipient
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.broadcast import (
    SEND_BATCH,
    SET_STATUS,
    SNAPSHOT,
    BatchInput,
    BatchResult,
    BroadcastPlan,
    SnapshotInput,
    StatusInput,
)
from temporal_journeys.workflows.starter import CannotEnroll

_QUOTED = re.compile(r" ?'[^']*'")
NO_ROW_ATTEMPTS = 8
"""Attempts of the snapshot that find no broadcast row before it gives up (about a minute
and a half with the workflow's retry policy)."""


def local_due(start: datetime, clock: str, zone: str) -> datetime:
    """The first moment at or after ``start`` when it is ``clock`` (HH:MM) in ``zone``, in
    UTC; an unknown zone counts as UTC. A clock time skipped by a DST change is taken at the
    same wall time after the change (``fold``-free arithmetic of ``zoneinfo``)."""
    try:
        tz = ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo("UTC")
    wanted = time.fromisoformat(clock)
    local = start.astimezone(tz)
    for days in range(3):
        day = (local + timedelta(days=days)).date()
        moment = datetime.combine(day, wanted, tzinfo=tz).astimezone(UTC)
        if moment >= start:
            return moment
    raise AssertionError("a clock time comes round within a day")  # pragma: no cover


def reason_kind(reason: str | None) -> str:
    """A skip reason without the values that differ per recipient (an address), for counts."""
    return _QUOTED.sub("", reason or "unknown").strip() if reason else "unknown"


class BroadcastActivities:
    def __init__(self, db: Database, sends: SendActivities, task_queue: str) -> None:
        self._db = db
        self._sends = BroadcastSends(db, sends, sends.settings)
        self._task_queue = task_queue

    @activity.defn(name=SNAPSHOT)
    async def snapshot(self, request: SnapshotInput) -> int:
        return await asyncio.to_thread(self._snapshot, request, activity.info().attempt)

    def _snapshot(self, request: SnapshotInput, attempt: int = NO_ROW_ATTEMPTS) -> int:
        start = request.start.astimezone(UTC)

        def due_in(zone: str) -> datetime:
            if request.local_time is None:
                return start
            return local_due(start, request.local_time, zone)

        with self._db.transaction() as session:
            total = broadcasts_store.snapshot(session, request.broadcast_id, due_in)
        if total is None:
            # The API starts the run before its row commits (so that a refused start rolls the
            # row back): a snapshot that runs first waits for the commit; a row that never
            # comes fails the broadcast.
            raise ApplicationError(
                f"broadcast {request.broadcast_id} has no row",
                type="NoBroadcast",
                non_retryable=attempt >= NO_ROW_ATTEMPTS,
            )
        return total

    @activity.defn(name=SET_STATUS)
    async def set_status(self, request: StatusInput) -> None:
        await asyncio.to_thread(self._set_status, request)

    def _set_status(self, request: StatusInput) -> None:
        with self._db.transaction() as session:
            broadcasts_store.set_status(session, request.broadcast_id, request.status, request.at)

    @activity.defn(name=SEND_BATCH)
    async def send_batch(self, request: BatchInput) -> BatchResult:
        plan = request.plan
        page = await asyncio.to_thread(self._page, request)
        result = BatchResult()
        if page:
            result.paged = len(page)
            last = page[-1]
            result.last_due, result.last_contact = last.due_at, last.contact_id
            beat = asyncio.create_task(_heartbeat())
            try:
                if plan.journey is not None:
                    outcomes = await self._enter_all(plan, page)
                    await asyncio.to_thread(self._record, plan.id, outcomes)
                else:
                    # Recorded in the snapshot by the page's last transaction.
                    outcomes = await self._sends.send(plan, page, request.now)
            finally:
                beat.cancel()
            _count(result, page, outcomes)
        if len(page) < request.limit:
            following = await asyncio.to_thread(self._following, request, result)
            result.next_due = following
            result.done = following is None
        return result

    def _page(self, request: BatchInput) -> list[Recipient]:
        with self._db.transaction() as session:
            if request.phase == "deferred":
                return broadcasts_store.deferred_page(
                    session, request.plan.id, now=request.now, limit=request.limit
                )
            after = (
                (request.after_due, request.after_contact)
                if request.after_due is not None and request.after_contact is not None
                else None
            )
            return broadcasts_store.page(
                session, request.plan.id, after=after, now=request.now, limit=request.limit
            )

    def _following(self, request: BatchInput, result: BatchResult) -> datetime | None:
        """When the next recipient of this phase is due; None when the phase is over."""
        with self._db.transaction() as session:
            if request.phase == "deferred":
                return broadcasts_store.next_deferred(session, request.plan.id)
            due = result.last_due or request.after_due
            contact = result.last_contact or request.after_contact
            after = (due, contact) if due is not None and contact is not None else None
            return broadcasts_store.next_due(session, request.plan.id, after)

    async def _enter_all(self, plan: BroadcastPlan, page: list[Recipient]) -> list[Outcome]:
        assert plan.journey is not None
        live = await asyncio.to_thread(live_journey, self._db, plan.journey)
        if live is None:
            reason = f"journey {plan.journey} is not published and active"
            return [Outcome(r.contact_id, "failed", reason, None) for r in page]
        version, journey = live
        # An earlier attempt's entries are recorded; the others are admitted as one batch
        # (``start_entries``: one transaction, the runs started ``concurrency`` at a time,
        # their rows in one INSERT), so no run redoes its admission itself.
        outcomes = {
            r.contact_id: Outcome(r.contact_id, "entered", None, r.message_id)
            for r in page
            if r.status == "entered"
        }
        todo = [r.contact_id for r in page if r.status != "entered"]
        if todo:
            async with self._db.held_connection() as connection:
                contacts = await in_held_transaction(
                    connection, contacts_store.load_snapshots, todo
                )
                started = await start_entries(
                    activity.client(),
                    connection,
                    journey=journey,
                    version=version,
                    entries=[Entry(contacts[c]) for c in todo],
                    task_queue=self._task_queue,
                    in_flight=plan.concurrency,
                )
            for contact_id, outcome in zip(todo, started, strict=True):
                if isinstance(outcome, CannotEnroll):
                    outcomes[contact_id] = Outcome(contact_id, "failed", str(outcome), None)
                elif isinstance(outcome, Exception):
                    raise outcome
                else:  # the run's workflow id stands where a message id would
                    outcomes[contact_id] = Outcome(contact_id, "entered", None, outcome.id[:64])
        return [outcomes[r.contact_id] for r in page]

    def _record(self, broadcast_id: str, outcomes: list[Outcome]) -> None:
        with self._db.transaction() as session:
            broadcasts_store.record(session, broadcast_id, outcomes)


async def _heartbeat(every: float = 2.0) -> None:
    """So that a worker killed mid-batch is noticed within the heartbeat timeout."""
    while True:
        activity.heartbeat()
        await asyncio.sleep(every)


def _count(result: BatchResult, page: list[Recipient], outcomes: list[Outcome]) -> None:
    reasons: Counter[str] = Counter()
    was = {r.contact_id: r.status for r in page}
    for outcome in outcomes:
        result.processed += 1
        if was.get(outcome.contact_id) == "deferred":
            result.undeferred += 1
        if outcome.status == "sent":
            result.sent += 1
        elif outcome.status == "entered":
            result.entered += 1
        elif outcome.status == "deferred":
            result.deferred += 1
            result.processed -= 1  # counted when its second pass settles it
        elif outcome.status == "skipped":
            result.skipped += 1
            reasons[reason_kind(outcome.reason)] += 1
        else:
            result.failed += 1
    result.skipped_reasons = dict(reasons)
