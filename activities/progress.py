"""A run's progress written to its enrollment and funnel rows, by whichever activity carries it.

The runs a worker serves report their progress (``record_progress``, and sends that record the
wait or the end after them) through one ``ProgressWriter``: while a transaction is being
written, the reports arriving wait and go together in the next one, so that many runs ending
or moving on at once share statements and a commit instead of one transaction each. A report
waits for no timer: alone, it is written at once.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from temporalio import activity

from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.activity_types import RecordProgressInput

# Reports per transaction at most: a batch stays a few milliseconds of statements.
REPORTS_AT_ONCE = 200


def report_of(request: RecordProgressInput) -> enrollments_store.Progress:
    # The start time only matters when this write creates the row (no starter or
    # begin_enrollment wrote it first).
    started = request.entries[0].at if request.entries else activity.info().started_time
    return enrollments_store.Progress(
        **request.ref(),
        correlation=None,
        started_at=started,
        entries=request.entries,
        status=request.status,
        step=request.step,
        variant=request.variant,
        reason=request.reason,
    )


def write(db: Database, reports: list[enrollments_store.Progress]) -> None:
    with db.connection() as connection:
        enrollments_store.write_progress_all(connection, reports)


@dataclass
class _Waiting:
    report: enrollments_store.Progress
    written: asyncio.Future[None]


class ProgressWriter:
    """Writes the reports handed to ``record`` in shared transactions (see the module)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: list[_Waiting] = []
        self._writing: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def record(self, request: RecordProgressInput) -> None:
        """Returns once the report is committed; raises what writing it alone raised."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A writer outliving its event loop (a test's) starts afresh on the new one.
            self._loop, self._queue, self._writing = loop, [], None
        waiting = _Waiting(report_of(request), loop.create_future())
        self._queue.append(waiting)
        if self._writing is None or self._writing.done():
            self._writing = loop.create_task(self._drain())
        # Cancelled (the activity timed out), the report is still written with its batch.
        await waiting.written

    async def _drain(self) -> None:
        while self._queue:
            batch = self._next_batch()
            try:
                await asyncio.to_thread(write, self.db, [w.report for w in batch])
            except Exception:
                # One report's failure (or the batch's) must not fail the others: each
                # alone, so that only a report that cannot be written raises in its run.
                for waiting in batch:
                    await self._write_alone(waiting)
            except BaseException:
                # The writer cancelled (the worker stopping): its runs' activities are told,
                # not left waiting for their timeouts.
                for waiting in [*batch, *self._queue]:
                    waiting.written.cancel()
                self._queue = []
                raise
            else:
                for waiting in batch:
                    if not waiting.written.done():
                        waiting.written.set_result(None)

    def _next_batch(self) -> list[_Waiting]:
        """The oldest reports, one per enrollment (a statement may not update a row twice: a
        retried local activity can report again while its first attempt waits here)."""
        batch: list[_Waiting] = []
        later: list[_Waiting] = []
        taken: set[str] = set()
        for waiting in self._queue:
            enrollment = waiting.report.enrollment_id
            if enrollment in taken or len(batch) == REPORTS_AT_ONCE:
                later.append(waiting)
            else:
                taken.add(enrollment)
                batch.append(waiting)
        self._queue = later
        return batch

    async def _write_alone(self, waiting: _Waiting) -> None:
        try:
            await asyncio.to_thread(write, self.db, [waiting.report])
        except Exception as exc:
            if not waiting.written.done():
                waiting.written.set_exception(exc)
        else:
            if not waiting.written.done():
                waiting.written.set_result(None)
