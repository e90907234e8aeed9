"""A run's progress written to its enrollment and funnel rows, by whichever activity carries it."""

from __future__ import annotations

from temporalio import activity

from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.activity_types import RecordProgressInput


def record(db: Database, request: RecordProgressInput) -> None:
    # The start time only matters when this write creates the row (no starter or
    # begin_enrollment wrote it first).
    started = request.entries[0].at if request.entries else activity.info().started_time
    with db.connection() as connection:
        enrollments_store.write_progress(
            connection,
            **request.ref(),
            correlation=None,
            started_at=started,
            entries=request.entries,
            status=request.status,
            step=request.step,
            variant=request.variant,
            reason=request.reason,
        )
