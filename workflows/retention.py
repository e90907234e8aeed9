"""The retention workflow: old events deleted, old messages' rendered content cleared.

``JourneysRetention`` is the action of the Temporal Schedule ``journeys-retention`` (daily,
``api/services/retention.py``) and can be started by hand (``temporal workflow start --type
JourneysRetention``). Its clock is fixed at its start (``now``), so every batch of a pass uses
the same cutoffs. Two activities do the work, each looping batches of at most
``retention_batch_size`` rows, heartbeating its cursor after each batch (a retried attempt
resumes where the last one stopped) and returning after ``batches_per_call``; the run shows
its totals in its current details between calls and continues as new after
``CALLS_PER_RUN`` calls, so a first pass over years of rows keeps a short history.

Names here are on the wire (schedules and recorded histories carry them): they never change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

RETENTION_WORKFLOW = "JourneysRetention"
SCHEDULE_ID = "journeys-retention"
DELETE_EVENTS = "retention.delete_events"
CLEAR_BODIES = "retention.clear_message_bodies"
CALLS_PER_RUN = 100  # then continue-as-new
_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))
_CALL_TIMEOUT = timedelta(minutes=30)
_HEARTBEAT = timedelta(minutes=2)


class EventsProgress(BaseModel):
    after_id: int = Field(default=0, description="Every event id up to this one was looked at.")
    scanned: int = 0
    deleted: int = 0
    batches: int = 0
    done: bool = False
    kept_for_conditions: str | None = Field(
        default=None, description="Event names conditions read, kept forever or for a window."
    )
    months: list[str] = Field(
        default_factory=list, description="Months swapped whole (Postgres partitions)."
    )
    months_done: bool = False


class BodiesProgress(BaseModel):
    after: tuple[datetime, str] | None = Field(
        default=None, description="(created_at, id) of the last message looked at."
    )
    cleared: int = 0
    batches: int = 0
    done: bool = False


class RetentionInput(BaseModel):
    dry_run: bool = Field(default=False, description="Count what would go; change nothing.")
    batch_size: int | None = Field(
        default=None, ge=1, le=10_000, description="None: the worker's retention_batch_size."
    )
    batches_per_call: int = Field(default=20, ge=1, le=1_000)
    now: datetime | None = Field(default=None, description="Set by the first run: the cutoffs.")
    events: EventsProgress = Field(default_factory=EventsProgress)
    bodies: BodiesProgress = Field(default_factory=BodiesProgress)


class EventsCall(BaseModel):
    now: datetime
    dry_run: bool
    batch_size: int | None
    batches: int
    progress: EventsProgress


class BodiesCall(BaseModel):
    now: datetime
    dry_run: bool
    batch_size: int | None
    batches: int
    progress: BodiesProgress


class RetentionResult(BaseModel):
    dry_run: bool
    now: datetime
    events: EventsProgress
    bodies: BodiesProgress


def describe(state: RetentionInput | RetentionResult) -> str:
    """One line of progress, for the run's current details and the CLI."""
    events, bodies = state.events, state.bodies
    verb = "would go" if state.dry_run else "deleted"
    cleared = "would be cleared" if state.dry_run else "cleared"
    return (
        f"Retention{' (dry run)' if state.dry_run else ''}: events {events.deleted:,} {verb} "
        f"of {events.scanned:,} looked at in {_months(events.months)}{events.batches:,} batches"
        f"{'' if events.done else f', up to id {events.after_id:,}'}; message contents "
        f"{bodies.cleared:,} {cleared} in {bodies.batches:,} batches"
    )


def _months(months: list[str]) -> str:
    return f"{len(months)} whole month{'' if len(months) == 1 else 's'} and " if months else ""


@workflow.defn(name=RETENTION_WORKFLOW)
class RetentionWorkflow:
    @workflow.run
    async def run(self, request: RetentionInput) -> RetentionResult:
        state = request.model_copy(deep=True)
        if state.now is None:
            state.now = workflow.now()
        workflow.set_current_details(describe(state))
        for _ in range(CALLS_PER_RUN):
            if not state.events.done:
                state.events = await workflow.execute_activity(
                    DELETE_EVENTS,
                    EventsCall(
                        now=state.now,
                        dry_run=state.dry_run,
                        batch_size=state.batch_size,
                        batches=state.batches_per_call,
                        progress=state.events,
                    ),
                    result_type=EventsProgress,
                    start_to_close_timeout=_CALL_TIMEOUT,
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_RETRY,
                    summary=f"events after id {state.events.after_id}",
                )
            elif not state.bodies.done:
                state.bodies = await workflow.execute_activity(
                    CLEAR_BODIES,
                    BodiesCall(
                        now=state.now,
                        dry_run=state.dry_run,
                        batch_size=state.batch_size,
                        batches=state.batches_per_call,
                        progress=state.bodies,
                    ),
                    result_type=BodiesProgress,
                    start_to_close_timeout=_CALL_TIMEOUT,
                    heartbeat_timeout=_HEARTBEAT,
                    retry_policy=_RETRY,
                    summary="message contents",
                )
            else:
                break
            workflow.set_current_details(describe(state))
        if not (state.events.done and state.bodies.done):
            workflow.continue_as_new(state)
        return RetentionResult(
            dry_run=state.dry_run, now=state.now, events=state.events, bodies=state.bodies
        )
