"""Activities of the segment workflows: backfill batches and the scheduled recompute, each one
set-based SQL run (``store/segments.py``) in one transaction with the events it records."""

from __future__ import annotations

import asyncio

from temporalio import activity

from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import utcnow
from temporal_journeys.workflows.segments import (
    BACKFILL_BATCH,
    COUNT_CONTACTS,
    FINISH_BACKFILL,
    RECOMPUTE,
    BatchInput,
    BatchResult,
    RefreshInput,
    RefreshResult,
)


class SegmentActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name=COUNT_CONTACTS)
    async def count_contacts(self, key: str) -> int:
        return await asyncio.to_thread(self._count)

    def _count(self) -> int:
        with self._db.transaction() as session:
            segments_store.adopt_event_contacts(session)
            return segments_store.contact_count(session)

    @activity.defn(name=BACKFILL_BATCH)
    async def backfill_batch(self, request: BatchInput) -> BatchResult:
        return await asyncio.to_thread(self._batch, request)

    def _batch(self, request: BatchInput) -> BatchResult:
        with self._db.transaction() as session:
            row = segments_store.get(session, request.key)
            if row is None or row.version != request.version:
                return BatchResult(current=False)
            ids = segments_store.contact_ids_after(session, request.after, request.limit)
            # The last batch also covers members past the last contact (erased contacts).
            high = ids[-1] if len(ids) == request.limit else None
            changes = segments_store.apply(
                session,
                segments_store.segment_of(row),
                request.now or utcnow(),
                id_range=(request.after, high),
            )
            return BatchResult(
                current=True,
                processed=len(ids),
                last=ids[-1] if ids else request.after,
                entered=len(changes.entered),
                exited=len(changes.exited),
            )

    @activity.defn(name=FINISH_BACKFILL)
    async def finish_backfill(self, request: BatchInput) -> bool:
        return await asyncio.to_thread(self._finish, request)

    def _finish(self, request: BatchInput) -> bool:
        with self._db.transaction() as session:
            return segments_store.mark_backfilled(session, request.key, request.version)

    @activity.defn(name=RECOMPUTE)
    async def recompute(self, request: RefreshInput) -> RefreshResult:
        return await asyncio.to_thread(self._recompute, request)

    def _recompute(self, request: RefreshInput) -> RefreshResult:
        with self._db.transaction() as session:
            found = segments_store.recompute(session, request.key, request.now or utcnow())
        return RefreshResult(
            entered={key: len(c.entered) for key, c in found.items()},
            exited={key: len(c.exited) for key, c in found.items()},
        )
