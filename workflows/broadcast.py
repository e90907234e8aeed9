"""The broadcast workflow: one run (``broadcast/<id>``) sends to every member of a segment.

It waits for ``send_at``, has the segment's members copied into a snapshot (one row per
recipient, ``broadcast_recipients``, with the moment each is due), then pages through that
snapshot with a keyset cursor ``(due_at, contact_id)``: members who join the segment later are
not in it and nobody in it is skipped over, whatever happens to the segment meanwhile. Each
page is one activity that sends to its recipients through the send activity's own path (the
message row keyed ``broadcast/<id>/<contact>``, every guard) or enters them into a journey, so
a page retried after a crash sends nobody twice. Recipients held by quiet hours are sent in a
second pass once their hour comes.

The rate limit is kept with workflow timers; the run continues as new every
``batches_per_run`` pages carrying its cursor and counts; ``pause``, ``resume`` and ``cancel``
are updates, and the progress is in the run's current details for the Temporal UI.

Names here are on the wire (histories carry them): they never change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from temporal_journeys.journeys.spec import Channel

BROADCAST_WORKFLOW = "Broadcast"
SNAPSHOT = "broadcasts.snapshot"
SEND_BATCH = "broadcasts.send_batch"
SET_STATUS = "broadcasts.set_status"
PAUSE = "pause"
RESUME = "resume"
CANCEL = "cancel"
PROGRESS = "progress"
PREFIX = "broadcast/"
STATUSES = ("scheduled", "sending", "paused", "completed", "cancelled", "failed")
LIVE = ("scheduled", "sending", "paused")
"""A broadcast in these statuses still has a run that may send."""
MAX_REASONS = 20  # distinct skip reasons kept in the counts; the rest are "other"
_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


def workflow_id(broadcast_id: str) -> str:
    return PREFIX + broadcast_id


def idempotency_key(broadcast_id: str, contact_id: str) -> str:
    """The message row's key: one message per recipient, whatever retries the batch."""
    return f"{PREFIX}{broadcast_id}/{contact_id}"


class BroadcastPlan(BaseModel):
    """What to send to whom and when, fixed when the broadcast is created."""

    id: str
    segment: str
    channel: Channel | None = None
    template: str | None = None
    journey: str | None = None
    topic: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    send_at: datetime | None = None
    local_time: str | None = Field(default=None, description="HH:MM in each contact's zone.")
    rate_per_minute: int | None = None
    batch_size: int = Field(default=500, ge=1, le=5000)
    batches_per_run: int = Field(default=100, ge=1)
    concurrency: int = Field(default=16, ge=1, le=256, description="Sends at once per batch.")


class Progress(BaseModel):
    status: str = "scheduled"
    total: int | None = None
    processed: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    entered: int = 0
    deferred: int = Field(default=0, description="Held by quiet hours, waiting for the pass.")
    skipped_reasons: dict[str, int] = Field(default_factory=dict)

    def add(self, result: BatchResult) -> None:
        self.processed += result.processed
        self.sent += result.sent
        self.skipped += result.skipped
        self.failed += result.failed
        self.entered += result.entered
        self.deferred += result.deferred - result.undeferred
        for reason, n in result.skipped_reasons.items():
            key = reason
            if key not in self.skipped_reasons and len(self.skipped_reasons) >= MAX_REASONS:
                key = "other"
            self.skipped_reasons[key] = self.skipped_reasons.get(key, 0) + n

    def line(self, plan: BroadcastPlan) -> str:
        total = f"{self.total:,}" if self.total is not None else "?"
        done = "entered" if plan.journey else "sent"
        count = self.entered if plan.journey else self.sent
        text = f"{count:,} of {total} {done}, {self.skipped:,} skipped"
        if self.skipped_reasons:
            top = sorted(self.skipped_reasons.items(), key=lambda kv: -kv[1])[:3]
            text += " (" + ", ".join(f"{n:,} {reason}" for reason, n in top) + ")"
        text += f", {self.failed:,} failed"
        if self.deferred:
            text += f", {self.deferred:,} waiting for quiet hours to end"
        return text


class BroadcastInput(BaseModel):
    plan: BroadcastPlan
    progress: Progress = Field(default_factory=Progress)
    started: bool = Field(default=False, description="The snapshot is taken.")
    phase: Literal["main", "deferred"] = "main"
    after_due: datetime | None = None
    after_contact: str | None = None
    paused: bool = False
    window_start: datetime | None = None
    window_count: int = 0


class SnapshotInput(BaseModel):
    broadcast_id: str
    segment: str
    start: datetime = Field(description="Due moment of everyone (without a local time).")
    local_time: str | None = None


class BatchInput(BaseModel):
    plan: BroadcastPlan
    phase: Literal["main", "deferred"]
    after_due: datetime | None
    after_contact: str | None
    limit: int
    now: datetime


class BatchResult(BaseModel):
    paged: int = Field(default=0, description="Recipients in the page, whatever their outcome.")
    processed: int = 0
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    entered: int = 0
    deferred: int = 0
    undeferred: int = Field(default=0, description="Deferred ones settled by this batch.")
    skipped_reasons: dict[str, int] = Field(default_factory=dict)
    last_due: datetime | None = None
    last_contact: str | None = None
    next_due: datetime | None = Field(
        default=None, description="When the next recipient of this phase is due, if any."
    )
    done: bool = Field(default=False, description="No recipient of this phase is left.")


class StatusInput(BaseModel):
    broadcast_id: str
    status: str
    at: datetime


@workflow.defn(name=BROADCAST_WORKFLOW)
class BroadcastWorkflow:
    def __init__(self) -> None:
        self._state: BroadcastInput | None = None
        self._cancelled = False
        self._finished = False

    @workflow.run
    async def run(self, request: BroadcastInput) -> Progress:
        state = self._state = request.model_copy(deep=True)
        plan = state.plan
        if not state.started:
            await self._set_status("scheduled" if plan.send_at else "sending")
            if plan.send_at is not None and plan.send_at > workflow.now():
                self._show("scheduled for " + plan.send_at.isoformat())
                await self._sleep_until(plan.send_at)
            if not self._cancelled:
                start = max(plan.send_at or workflow.now(), workflow.now())
                state.progress.total = await workflow.execute_activity(
                    SNAPSHOT,
                    SnapshotInput(
                        broadcast_id=plan.id,
                        segment=plan.segment,
                        start=start,
                        local_time=plan.local_time,
                    ),
                    result_type=int,
                    start_to_close_timeout=timedelta(minutes=10),
                    retry_policy=_RETRY,
                    summary=f"members of {plan.segment}",
                )
                state.started = True
                state.progress.status = "paused" if state.paused else "sending"
                await self._set_status(state.progress.status)
        for _ in range(plan.batches_per_run):
            if state.paused and not self._cancelled:
                self._show("paused")
                await workflow.wait_condition(lambda: not state.paused or self._cancelled)
            if self._cancelled:
                return await self._finish("cancelled")
            await self._keep_rate()
            if self._cancelled:
                return await self._finish("cancelled")
            if state.paused:
                continue
            result = await self._batch()
            state.progress.add(result)
            state.window_count += result.paged
            if result.paged and state.phase == "main":
                state.after_due, state.after_contact = result.last_due, result.last_contact
            self._show()
            if result.done:
                if state.phase == "main" and state.progress.deferred > 0:
                    state.phase, state.after_due, state.after_contact = "deferred", None, None
                    continue
                return await self._finish("completed")
            if result.paged == 0 and result.next_due is not None:
                # Nobody due yet (a later local time, the end of someone's quiet hours).
                self._show(f"next recipients due at {result.next_due.isoformat()}")
                await self._sleep_until(result.next_due)
        # Updates answered before the history is carried over.
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(state)

    async def _batch(self) -> BatchResult:
        state = self._state
        assert state is not None
        limit = state.plan.batch_size
        if state.plan.rate_per_minute:
            limit = max(1, min(limit, state.plan.rate_per_minute))
        return await workflow.execute_activity(
            SEND_BATCH,
            BatchInput(
                plan=state.plan,
                phase=state.phase,
                after_due=state.after_due if state.phase == "main" else None,
                after_contact=state.after_contact if state.phase == "main" else None,
                limit=limit,
                now=workflow.now(),
            ),
            result_type=BatchResult,
            start_to_close_timeout=timedelta(minutes=10),
            # A worker killed mid-batch is noticed within this, and the batch tried again.
            heartbeat_timeout=timedelta(seconds=20),
            retry_policy=_RETRY,
            # No contact id here: summaries are shown unencrypted in the UI.
            summary=f"{state.phase} pass, after {state.progress.processed:,} recipients",
        )

    async def _keep_rate(self) -> None:
        """Wait until the next batch keeps within ``rate_per_minute`` since the window began;
        a window that fell behind (a pause, slow sends) starts again now, so no burst follows."""
        state = self._state
        assert state is not None
        rate = state.plan.rate_per_minute
        if not rate:
            return
        now = workflow.now()
        if state.window_start is None:
            state.window_start, state.window_count = now, 0
            return
        allowed = state.window_start + timedelta(minutes=state.window_count / rate)
        if allowed <= now:
            state.window_start, state.window_count = now, 0
            return
        await self._sleep_until(allowed)

    async def _sleep_until(self, moment: datetime) -> None:
        """A timer that a cancel (or a pause, then resume) cuts short."""
        state = self._state
        assert state is not None
        delay = moment - workflow.now()
        if delay <= timedelta(0):
            return
        try:
            await workflow.wait_condition(
                lambda: self._cancelled or state.paused, timeout=delay, timeout_summary="until due"
            )
        except TimeoutError:
            return
        if state.paused and not self._cancelled:
            await workflow.wait_condition(lambda: not state.paused or self._cancelled)
            await self._sleep_until(moment)

    async def _finish(self, status: str) -> Progress:
        state = self._state
        assert state is not None
        state.progress.status = status
        await self._set_status(status)
        self._show()
        self._finished = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        return state.progress

    async def _set_status(self, status: str) -> None:
        state = self._state
        assert state is not None
        await workflow.execute_activity(
            SET_STATUS,
            StatusInput(broadcast_id=state.plan.id, status=status, at=workflow.now()),
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=_RETRY,
        )

    def _show(self, note: str | None = None) -> None:
        state = self._state
        assert state is not None
        plan = state.plan
        what = f"journey {plan.journey}" if plan.journey else f"{plan.channel} {plan.template}"
        head = f"Broadcast {plan.id} ({what}) to segment {plan.segment}"
        if plan.topic:
            head += f", topic {plan.topic}"
        status = "paused" if state.paused and not self._finished else state.progress.status
        text = f"{head}: {state.progress.line(plan)} [{status}]"
        if note:
            text += f"; {note}"
        workflow.set_current_details(text)

    # --- operator's controls ------------------------------------------------------------

    @workflow.query(name=PROGRESS)
    def progress(self) -> Progress:
        assert self._state is not None
        return self._current()

    def _current(self) -> Progress:
        assert self._state is not None
        current = self._state.progress.model_copy(deep=True)
        if self._state.paused and current.status in ("sending", "scheduled"):
            current.status = "paused"
        return current

    @workflow.update(name=PAUSE)
    async def pause(self) -> Progress:
        state = self._state
        assert state is not None
        state.paused = True
        await self._set_status("paused")
        self._show()
        return self._current()

    @pause.validator
    def _may_pause(self) -> None:
        self._refuse_when_over("pause")

    @workflow.update(name=RESUME)
    async def resume(self) -> Progress:
        state = self._state
        assert state is not None
        state.paused = False
        await self._set_status("sending" if state.started else "scheduled")
        self._show()
        return self._current()

    @resume.validator
    def _may_resume(self) -> None:
        self._refuse_when_over("resume")

    @workflow.update(name=CANCEL)
    async def cancel(self) -> Progress:
        self._cancelled = True
        # Answered once the run has stopped (after the batch under way), so the caller sees
        # the final counts and nothing more is sent after the answer.
        await workflow.wait_condition(lambda: self._finished)
        return self._current()

    @cancel.validator
    def _may_cancel(self) -> None:
        self._refuse_when_over("cancel")

    def _refuse_when_over(self, what: str) -> None:
        if self._finished or self._cancelled:
            status = self._state.progress.status if self._state else "over"
            raise ApplicationError(f"cannot {what}: the broadcast is {status}", type="Finished")
