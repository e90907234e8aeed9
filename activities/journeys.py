"""Activities that start journeys from inside a run (the `enter` step)."""

from __future__ import annotations

import asyncio

from temporalio import activity

from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.activity_types import (
    ENTER_JOURNEY,
    EnterJourneyInput,
    EnterJourneyResult,
)
from temporal_journeys.workflows.starter import CannotEnroll, start_run


class JourneyActivities:
    def __init__(self, db: Database, task_queue: str) -> None:
        self._db = db
        self._task_queue = task_queue

    @activity.defn(name=ENTER_JOURNEY)
    async def enter_journey(self, request: EnterJourneyInput) -> EnterJourneyResult:
        live = await asyncio.to_thread(self._live, request.journey_key)
        if live is None:
            return EnterJourneyResult(
                entered=False, reason=f"journey {request.journey_key} is not published and active"
            )
        version, journey = live
        try:
            # Starting is idempotent while the target run is alive (same workflow id).
            handle = await start_run(
                activity.client(),
                journey=journey,
                version=version,
                contact_id=request.contact_id,
                task_queue=self._task_queue,
            )
        except CannotEnroll as exc:
            return EnterJourneyResult(entered=False, reason=str(exc))
        return EnterJourneyResult(entered=True, workflow_id=handle.id)

    def _live(self, key: str):  # type: ignore[no-untyped-def]
        with self._db.transaction() as session:
            return journeys_store.live_version(session, key)
