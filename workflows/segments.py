"""Segment workflows: the backfill of a new or changed definition, and the scheduled refresh.

``SegmentBackfill`` (id ``segment-backfill/<key>/v<version>``) walks the contacts in batches of
contact ids; each batch is one activity running the set-based membership SQL for that id range.
Its progress is in the run's current details ("4,000 of 10,000 contacts"), and it stops early
when the definition has moved on (the next version has its own backfill).

``SegmentRefresh`` is the action of the segment's Temporal Schedule (``segment-refresh/<key>``),
kept only for segments that time alone can change (windows, dates relative to now): one
activity recomputes the segment, and the segments that name it, for every contact at once.

Names here are on the wire (schedules and recorded histories carry them): they never change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

BACKFILL_WORKFLOW = "SegmentBackfill"
REFRESH_WORKFLOW = "SegmentRefresh"
COUNT_CONTACTS = "segments.count_contacts"
BACKFILL_BATCH = "segments.backfill_batch"
FINISH_BACKFILL = "segments.finish_backfill"
RECOMPUTE = "segments.recompute"
SCHEDULE_PREFIX = "segment-refresh/"
BACKFILL_PREFIX = "segment-backfill/"
BATCHES_PER_RUN = 200  # then continue-as-new, so a huge backfill keeps a short history
_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


def schedule_id(key: str) -> str:
    return SCHEDULE_PREFIX + key


def backfill_id(key: str, version: int) -> str:
    return f"{BACKFILL_PREFIX}{key}/v{version}"


class BackfillInput(BaseModel):
    key: str
    version: int
    batch: int = Field(default=1000, ge=1, le=100_000)
    after: str | None = Field(default=None, description="Contacts up to this id are done.")
    done: int = 0
    total: int | None = None
    entered: int = 0
    exited: int = 0


class BatchInput(BaseModel):
    key: str
    version: int
    after: str | None
    limit: int
    now: datetime | None = Field(
        default=None,
        description="Where windows end; None: the activity's clock, as ingest uses (a batch "
        "that waited in a queue is not evaluated at an older moment than the events since).",
    )


class BatchResult(BaseModel):
    current: bool = Field(description="False when the segment is gone or has a newer version.")
    processed: int = 0
    last: str | None = None
    entered: int = 0
    exited: int = 0


class BackfillResult(BaseModel):
    key: str
    version: int
    done: int
    entered: int
    exited: int
    superseded: bool = False


class RefreshInput(BaseModel):
    key: str
    now: datetime | None = Field(
        default=None, description="Set by the workflow from its clock: windows end there."
    )


class RefreshResult(BaseModel):
    entered: dict[str, int] = Field(default_factory=dict)
    exited: dict[str, int] = Field(default_factory=dict)


@workflow.defn(name=BACKFILL_WORKFLOW)
class SegmentBackfillWorkflow:
    def __init__(self) -> None:
        self._details = ""

    @workflow.run
    async def run(self, request: BackfillInput) -> BackfillResult:
        state = request.model_copy()
        if state.total is None:
            state.total = await workflow.execute_activity(
                COUNT_CONTACTS,
                state.key,
                result_type=int,
                start_to_close_timeout=timedelta(minutes=5),
                retry_policy=_RETRY,
            )
        self._show(state)
        for _ in range(BATCHES_PER_RUN):
            result: BatchResult = await workflow.execute_activity(
                BACKFILL_BATCH,
                BatchInput(
                    key=state.key,
                    version=state.version,
                    after=state.after,
                    limit=state.batch,
                ),
                result_type=BatchResult,
                start_to_close_timeout=timedelta(minutes=10),
                retry_policy=_RETRY,
                summary=f"contacts after {state.after or 'the first'}",
            )
            if not result.current:
                workflow.set_current_details(
                    f"Segment {state.key} v{state.version}: superseded by a newer definition"
                )
                return self._result(state, superseded=True)
            state.done += result.processed
            state.entered += result.entered
            state.exited += result.exited
            state.after = result.last or state.after
            self._show(state)
            if result.processed < state.batch:
                finished = await workflow.execute_activity(
                    FINISH_BACKFILL,
                    BatchInput(key=state.key, version=state.version, after=None, limit=0),
                    result_type=bool,
                    start_to_close_timeout=timedelta(minutes=1),
                    retry_policy=_RETRY,
                )
                return self._result(state, superseded=not finished)
        workflow.continue_as_new(state)

    def _show(self, state: BackfillInput) -> None:
        total = max(state.total or 0, state.done)
        workflow.set_current_details(
            f"Segment {state.key} v{state.version}: {state.done:,} of {total:,} contacts "
            f"evaluated; {state.entered:,} entered, {state.exited:,} left"
        )

    @staticmethod
    def _result(state: BackfillInput, *, superseded: bool) -> BackfillResult:
        return BackfillResult(
            key=state.key,
            version=state.version,
            done=state.done,
            entered=state.entered,
            exited=state.exited,
            superseded=superseded,
        )


@workflow.defn(name=REFRESH_WORKFLOW)
class SegmentRefreshWorkflow:
    @workflow.run
    async def run(self, request: RefreshInput) -> RefreshResult:
        workflow.set_current_details(f"Recomputing segment {request.key} for every contact")
        return await workflow.execute_activity(
            RECOMPUTE,
            RefreshInput(key=request.key, now=request.now or workflow.now()),
            result_type=RefreshResult,
            start_to_close_timeout=timedelta(minutes=30),
            retry_policy=_RETRY,
            summary=f"recompute {request.key}",
        )
