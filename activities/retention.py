"""Activities of the retention workflow, and the passes they and ``journeys retention`` run.

A pass is a generator of progress, one item per batch (``store/retention.py``: each batch a
transaction of its own): the activities heartbeat each item, so a retried attempt resumes from
its last heartbeat, and the CLI prints each one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TypeVar

from pydantic import BaseModel
from temporalio import activity

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import partitions
from temporal_journeys.store import retention as retention_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.retention import (
    CLEAR_BODIES,
    DELETE_EVENTS,
    BodiesCall,
    BodiesProgress,
    EventsCall,
    EventsProgress,
)

P = TypeVar("P", bound=BaseModel)
_STILL_WORKING = 30.0  # seconds; the workflow's heartbeat timeout is 2 minutes


def events_pass(
    db: Database,
    settings: Settings,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: EventsProgress | None = None,
) -> Iterator[EventsProgress]:
    """Delete old events batch by batch from ``progress``'s cursor, yielding after each."""
    progress = progress or EventsProgress()
    if settings.retention_events_days is None:
        yield progress.model_copy(update={"done": True})
        return
    keep = timedelta(days=settings.retention_events_days)
    size = batch_size or settings.retention_batch_size
    if not progress.months_done:
        for step in _months_pass(db, now=now, keep=keep, dry_run=dry_run, progress=progress):
            progress = step
            yield progress
        progress = progress.model_copy(update={"months_done": True})
    while not progress.done:
        with db.transaction() as session:
            # Asked at every batch: a condition saved during the pass counts from the next one.
            needed = retention_store.events_needed(session)
            batch = retention_store.delete_old_events(
                session,
                now=now,
                keep=keep,
                after_id=progress.after_id,
                limit=size,
                needed=needed,
                dry_run=dry_run,
                counted_months=progress.months if dry_run else (),
            )
        progress = progress.model_copy(
            update={
                "after_id": batch.last_id,
                "scanned": progress.scanned + batch.scanned,
                "deleted": progress.deleted + batch.deleted,
                "batches": progress.batches + (1 if batch.scanned else 0),
                "done": batch.done,
                "kept_for_conditions": needed.describe(),
            }
        )
        yield progress


def _months_pass(
    db: Database, *, now: datetime, keep: timedelta, dry_run: bool, progress: EventsProgress
) -> Iterator[EventsProgress]:
    """On Postgres, first the months of partitions to come, then each month received wholly
    before the cutoff swapped for what it still needs (``swap_old_month``), one transaction
    each; the batches after it handle the month that straddles the cutoff and the rows kept."""
    if not dry_run:
        with db.transaction() as session:
            partitions.ensure_months(session, now)
    while True:
        with db.transaction() as session:
            pending = [
                m
                for m in retention_store.old_months(session, now=now, keep=keep)
                if m.table not in progress.months
            ]
            if not pending:
                return
            needed = retention_store.events_needed(session)
            swapped = retention_store.swap_old_month(
                session, pending[0], now=now, keep=keep, needed=needed, dry_run=dry_run
            )
        progress = progress.model_copy(
            update={
                "months": [*progress.months, swapped.month],
                "deleted": progress.deleted + swapped.deleted,
                "scanned": progress.scanned + swapped.deleted + swapped.kept,
                "kept_for_conditions": needed.describe(),
            }
        )
        yield progress


def bodies_pass(
    db: Database,
    settings: Settings,
    *,
    now: datetime,
    dry_run: bool = False,
    batch_size: int | None = None,
    progress: BodiesProgress | None = None,
) -> Iterator[BodiesProgress]:
    """Clear old messages' rendered content batch by batch, yielding after each."""
    progress = progress or BodiesProgress()
    if settings.retention_message_bodies_days is None:
        yield progress.model_copy(update={"done": True})
        return
    before = now - timedelta(days=settings.retention_message_bodies_days)
    size = batch_size or settings.retention_batch_size
    while not progress.done:
        with db.transaction() as session:
            batch = retention_store.clear_old_bodies(
                session, before=before, after=progress.after, limit=size, dry_run=dry_run
            )
        progress = BodiesProgress(
            after=batch.after,
            cleared=progress.cleared + batch.cleared,
            batches=progress.batches + (1 if batch.cleared else 0),
            done=batch.done,
        )
        yield progress


async def _heartbeating(passes: Iterator[P], start: P, batches: int) -> P:
    """Up to ``batches`` items of a pass, each run in a thread and heartbeated."""
    progress = start
    for _ in range(batches):
        working = asyncio.ensure_future(asyncio.to_thread(next, passes, None))
        # A month's swap can outlast the heartbeat timeout: the last progress is sent again
        # while it works, so the attempt is not declared dead and started twice.
        while not (await asyncio.wait({working}, timeout=_STILL_WORKING))[0]:
            activity.heartbeat(progress)
        step = working.result()
        if step is None:
            break
        progress = step
        activity.heartbeat(progress)
        if getattr(progress, "done", False):
            break
    return progress


def _resumed(given: P) -> P:
    """The progress of the last heartbeat of a previous attempt, else the one given."""
    details = activity.info().heartbeat_details
    if not details:
        return given
    last = details[0]
    return last if isinstance(last, type(given)) else type(given).model_validate(last)


class RetentionActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name=DELETE_EVENTS)
    async def delete_events(self, call: EventsCall) -> EventsProgress:
        start = _resumed(call.progress)
        passes = events_pass(
            self._db,
            self._settings,
            now=call.now,
            dry_run=call.dry_run,
            batch_size=call.batch_size,
            progress=start,
        )
        return await _heartbeating(passes, start, call.batches)

    @activity.defn(name=CLEAR_BODIES)
    async def clear_message_bodies(self, call: BodiesCall) -> BodiesProgress:
        start = _resumed(call.progress)
        passes = bodies_pass(
            self._db,
            self._settings,
            now=call.now,
            dry_run=call.dry_run,
            batch_size=call.batch_size,
            progress=start,
        )
        return await _heartbeating(passes, start, call.batches)
