"""The journey interpreter: one run walks one contact through one published journey version.

The loop enters a step, runs that kind's short handler (``_take`` matches the step's class),
which answers the next step id, and records a trace line for every decision. Goal and exit
events interrupt whatever is running, timers included. The spec travels in the input, so a run
stays on the version it began on; the interpreter number there keeps its behaviour too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import Enum
from typing import Any, NamedTuple, assert_never

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from temporal_journeys.journeys.conditions import evaluate, history_conditions
    from temporal_journeys.journeys.records import (
        FIRST_SEQ,
        ContactSnapshot,
        JourneyEvent,
        TraceEntry,
    )
    from temporal_journeys.journeys.spec import (
        BranchStep,
        EnterStep,
        EventMatch,
        ExitStep,
        SendStep,
        SplitStep,
        Step,
        UpdateStep,
        WaitFor,
        WaitForDate,
        WaitForStep,
        WaitStep,
        WaitUntil,
    )
    from temporal_journeys.journeys.split import choose_variant
    from temporal_journeys.journeys.timing import next_date_occurrence, next_local_time, quiet_until
    from temporal_journeys.workflows import search_attributes as sa
    from temporal_journeys.workflows.activity_types import (
        BEGIN_ENROLLMENT,
        ENTER_JOURNEY,
        LOAD_CONDITION_DATA,
        RECORD_PROGRESS,
        SEND_MESSAGE,
        UPDATE_CONTACT,
        BeginEnrollmentInput,
        BeginEnrollmentResult,
        ConditionData,
        EnterJourneyInput,
        EnterJourneyResult,
        LoadConditionDataInput,
        RecordProgressInput,
        RunEnd,
        SendMessageInput,
        SendMessageResult,
        UpdateContactInput,
        WaitAhead,
    )
    from temporal_journeys.workflows.contract import (
        EVENT_SIGNAL,
        EXIT_UPDATE,
        MIGRATE_UPDATE,
        STATE_QUERY,
        WORKFLOW_NAME,
    )
    from temporal_journeys.workflows.limits import size_of, too_deep
    from temporal_journeys.workflows.options import DEFAULT as OPTIONS
    from temporal_journeys.workflows.types import (
        BUFFER_BYTES_LIMIT,
        CARRY_BYTES_LIMIT,
        EVENT_DEPTH_LIMIT,
        SEEN_IDS_LIMIT,
        TRACE_LIMIT,
        Behaviour,
        BufferedEvent,
        JourneyInput,
        JourneyResult,
        MigrateRun,
        RunState,
        RunView,
    )


class Halt(Enum):
    """A handler's answer when the loop must not simply go on to a next step."""

    SUSPEND = "suspend"  # continue as new (or migrate) before the step is done
    ENDED = "ended"  # the send's activity recorded the run's end (``RunEnd``)


Next = str | None | Halt
"""A handler's answer: the next step id, None when the journey ends here, or a ``Halt``."""


class Waited(Enum):
    """How a ``_block`` ended."""

    READY = "ready"  # what it waited for is there
    TIMEOUT = "timeout"  # its moment came
    INTERRUPTED = "interrupted"  # a goal, an exit event or an operator's exit
    SUSPENDED = "suspended"  # a migration or a continue-as-new comes first


class _Sent(NamedTuple):
    result: SendMessageResult
    after: RunEnd | WaitAhead | None  # what the attempt carried for its activity to record


# Waits shorter than this neither record progress nor move the search attributes before they
# begin (one local activity and an upsert less): they are over before anyone could look.
SHORT_WAIT = timedelta(seconds=5)
# Retired; interpreter-1 runs still name it (``Behaviour`` in ``types``).
SHORT_WAIT_PATCH = "short-waits-skip-bookkeeping"


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


@workflow.defn(name=WORKFLOW_NAME)
class JourneyWorkflow:
    @workflow.init
    def __init__(self, run_input: JourneyInput) -> None:
        self._input = run_input
        self._journey = run_input.journey
        self._steps = self._journey.step_map()
        self._resumed = run_input.state is not None
        self._s = run_input.state or RunState(
            entry_id=self._entry_id(run_input), started_at=workflow.now()
        )
        self._seen = set(self._s.seen_ids)
        self._sizes: dict[int, int] = {}  # buffered event seq -> its bytes, measured once
        self._interrupt: tuple[str, str] | None = None
        self._migration: MigrateRun | None = None
        self._migrated_to: str | None = None
        # The step after a send, entered and recorded by the send's activity (``WaitAhead``).
        self._entered_by_send = False
        self._waiting_for: str | None = None
        self._until: datetime | None = None
        self._shown_step = workflow.info().typed_search_attributes.get(sa.STEP)
        if run_input.trigger is not None:
            self._remember(run_input.trigger.id)

    @staticmethod
    def _entry_id(run_input: JourneyInput) -> str:
        """The id of this entry, which keys its enrollment and its sends: the first run's id,
        which the starter recorded and a reset keeps. A reset run is a new run replaying the
        old one's history, so its own run id would make its sends new messages; continue-as-new
        carries the id in the state instead. Runs on 1 and 2 keep the run id they keyed with."""
        info = workflow.info()
        if run_input.has(Behaviour.ENTRY_OF_THE_FIRST_RUN):
            return info.first_execution_run_id
        return info.run_id

    # --- the loop ---------------------------------------------------------------------------

    @workflow.run
    async def run(self, run_input: JourneyInput) -> JourneyResult:
        if not self._resumed:
            refusal = await self._begin()
            if refusal is not None:
                return await self._end("skipped", refusal)
        while self._s.step is not None and self._interrupt is None:
            if self._migration is not None:
                await self._migrate()
                continue
            if self._continue_as_new_due():
                await self._continue_as_new()
            following = await self._take(self._steps[self._s.step])
            if following is Halt.ENDED:
                break
            if following is Halt.SUSPEND:
                if self._migration is not None:
                    continue
                await self._continue_as_new()
            if self._interrupt is not None:
                break
            self._s.deadline = None
            self._s.step = following
            if following is not None and not self._entered_by_send:
                self._trace(following, "entered")
            self._entered_by_send = False
        if self._interrupt is not None:
            return await self._end(*self._interrupt)
        return await self._end("completed", self._s.reason)

    async def _begin(self) -> str | None:
        self._s.step = self._journey.steps[0].id
        admission = self._input.admission
        if admission is not None and admission.entered_at is not None:
            # Recorded by the starter, at its moment: kept, not recorded again.
            first = TraceEntry(
                seq=FIRST_SEQ, at=admission.entered_at, step=self._s.step, kind="entered"
            )
            self._keep(first)
        else:
            self._trace(self._s.step, "entered")
        if admission is not None:
            # Checked and recorded by the starter; "entered" goes out with the next progress
            # unless the starter recorded it too.
            self._s.contact = admission.contact
            return None
        result = await self._local(
            BEGIN_ENROLLMENT,
            BeginEnrollmentInput(
                **self._ref(),
                correlation=self._input.correlation,
                re_entry=self._journey.re_entry,
                started_at=self._s.started_at,
                entries=self._s.unrecorded,
            ),
            BeginEnrollmentResult,
        )
        self._s.unrecorded = []
        if not result.allowed:
            self._s.trace = []
            return result.reason or "not allowed"
        self._s.contact = result.contact
        return None

    async def _end(self, status: str, reason: str | None) -> JourneyResult:
        recorded = status == self._s.status  # by the run's last send (``RunEnd``)
        self._s.status, self._s.reason = status, reason
        if status != "skipped" and not recorded:
            self._trace(self._s.step, status, reason)
            await self._flush()
        workflow.upsert_search_attributes([sa.STATUS.value_set(status)])
        workflow.set_current_details(f"{status}" + (f": {reason}" if reason else ""))
        self._waiting_for, self._until = None, None
        if status == "failed":
            raise ApplicationError(reason or "failed", type="JourneyFailed", non_retryable=True)
        return JourneyResult(
            status=status, reason=reason, step=self._s.step, variant=self._s.variant
        )

    async def _continue_as_new(self) -> None:
        await self._flush()
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._s.seen_ids = self._s.seen_ids[-SEEN_IDS_LIMIT:]
        carried = self._input.model_copy(update={"state": self._s})
        if self._input.has(Behaviour.STATE_BOUNDED_BY_BYTES) and not self._fit(carried):
            await self._end("failed", f"its state outgrew the {CARRY_BYTES_LIMIT} bytes it carries")
        workflow.continue_as_new(carried)

    def _fit(self, carried: JourneyInput) -> bool:
        """Trim the run's state (``carried.state``) until the input fits ``CARRY_BYTES_LIMIT``:
        the oldest buffered events first (each traced), then the oldest half of the seen ids,
        then of the trace. False when only the journey and the trigger are left over it."""
        while (excess := size_of(carried) - CARRY_BYTES_LIMIT) > 0:
            if self._s.buffer:
                while excess > 0 and self._s.buffer:
                    oldest = self._s.buffer.pop(0)
                    excess -= self._size(oldest)
                    self._dropped(oldest, f"over the {CARRY_BYTES_LIMIT} bytes a run carries")
            elif len(self._s.seen_ids) > 1:
                forgotten = self._s.seen_ids[: len(self._s.seen_ids) // 2]
                del self._s.seen_ids[: len(forgotten)]
                self._seen.difference_update(forgotten)
                self._trace(self._s.step, "dropped", f"the {len(forgotten)} oldest event ids")
            elif len(self._s.trace) > 1:
                del self._s.trace[: len(self._s.trace) // 2]
            else:
                return False
        return True

    def _continue_as_new_due(self) -> bool:
        limit = self._input.continue_as_new_after
        info = workflow.info()
        if limit is not None and info.get_current_history_length() >= limit:
            return True
        return info.is_continue_as_new_suggested()

    # --- step handlers: one per kind --------------------------------------------------------

    async def _take(self, step: Step) -> Next:
        match step:
            case WaitStep():
                return await self._wait(step)
            case WaitForStep():
                return await self._wait_for(step)
            case BranchStep():
                return await self._branch(step)
            case SplitStep():
                return self._split(step)
            case SendStep():
                return await self._send(step)
            case UpdateStep():
                return await self._update(step)
            case EnterStep():
                return await self._enter(step)
            case ExitStep():
                return self._exit(step)
            case _:
                assert_never(step)

    async def _wait(self, step: WaitStep) -> Next:
        now, wait = workflow.now(), step.wait
        if isinstance(wait, timedelta):
            target: datetime | None = now + wait
        elif isinstance(wait, WaitUntil):
            target = next_local_time(now, self._tz(), wait.until, wait.weekdays)
        else:
            target = self._date_target(wait, now)
            if target is None:
                self._trace(step.id, "skipped", f"no date in `{wait.date_attribute}`")
                return self._after(step)
        match await self._block(step.id, target, f"waiting on step {step.id}"):
            case Waited.TIMEOUT:
                self._trace(step.id, "waited")
                return self._after(step)
            case Waited.SUSPENDED:
                return Halt.SUSPEND
            case _:
                return None  # interrupted: the loop ends the run

    async def _wait_for(self, step: WaitForStep) -> Next:
        spec = step.wait_for
        about = f" (message {spec.message})" if spec.message else ""
        outcome = await self._block(
            step.id,
            workflow.now() + spec.timeout,
            f"waiting for {spec.event}{about} on step {step.id}",
            ready=lambda: self._match(spec) is not None,
        )
        match outcome:
            case Waited.READY:
                found = self._match(spec)
                assert found is not None
                found.consumed = True
                self._trace(step.id, "event", f"{found.event.name} ({found.event.id})")
                return self._after(step)
            case Waited.TIMEOUT:
                self._trace(step.id, "timeout", f"no {spec.event} in time")
                return step.on_timeout or self._after(step)
            case Waited.SUSPENDED:
                return Halt.SUSPEND
            case Waited.INTERRUPTED:
                return None

    async def _branch(self, step: BranchStep) -> Next:
        data = await self._condition_data([case.when for case in step.branch.cases])
        context, seen = self._context(), self._seen_events()
        for index, case in enumerate(step.branch.cases):
            if evaluate(case.when, context, data.history, seen):
                self._trace(step.id, "branched", f"case {index + 1} -> {case.next}")
                return case.next
        target = step.branch.default or self._after(step)
        self._trace(step.id, "branched", f"default -> {target or 'exit'}")
        return target

    def _split(self, step: SplitStep) -> Next:
        # Keyed by what started this entry, never by run ids or workflow.random(): a reset
        # or a replay must land the contact in the same arm.
        trigger = self._input.trigger
        entry = trigger.id if trigger is not None else workflow.info().workflow_id
        assignment = choose_variant(
            step.split, f"{self._journey.key}/{step.id}", self._input.contact_id, entry
        )
        self._s.variant = assignment.variant
        self._trace(step.id, "variant", assignment.variant)
        if assignment.holdout:
            self._s.reason = "holdout"
            return assignment.next
        return assignment.next or step.next or self._journey.following(step.id)

    async def _send(self, step: SendStep) -> Next:
        sent = await self._send_when_allowed(step)
        if not isinstance(sent, _Sent):
            return sent
        result, after = sent
        if result.run_ended_at is not None:
            assert isinstance(after, RunEnd)
            self._ended_with(after, result, result.run_ended_at)
            return Halt.ENDED
        if result.wait_recorded_at is not None:
            assert isinstance(after, WaitAhead)
            return self._waiting_with(after, result, result.wait_recorded_at)
        if result.status == "failed":
            self._trace(step.id, "failed", result.reason)
            if step.on_failure:
                return step.on_failure
            self._interrupt = ("failed", f"step {step.id}: {result.reason}")
            return None
        # The reason says why a send was skipped, or that its outcome is unknown.
        self._trace(step.id, result.status, result.reason)
        return self._after(step)

    async def _update(self, step: UpdateStep) -> Next:
        self._s.contact = await workflow.execute_activity(
            UPDATE_CONTACT,
            UpdateContactInput(
                operation_key=self._operation_key(step.id),
                contact_id=self._input.contact_id,
                update=step.update,
            ),
            result_type=ContactSnapshot,
            start_to_close_timeout=OPTIONS.side_effect_timeout,
            retry_policy=OPTIONS.retry,
            summary=f"{step.id}: update contact",
        )
        self._trace(step.id, "updated", _describe_update(step))
        return self._after(step)

    async def _enter(self, step: EnterStep) -> Next:
        result = await workflow.execute_activity(
            ENTER_JOURNEY,
            EnterJourneyInput(
                contact_id=self._input.contact_id,
                journey_key=step.enter.journey,
                from_journey=self._journey.key,
            ),
            result_type=EnterJourneyResult,
            start_to_close_timeout=OPTIONS.side_effect_timeout,
            retry_policy=OPTIONS.retry,
            summary=f"{step.id}: enter {step.enter.journey}",
        )
        if result.entered:
            self._trace(step.id, "handed_off", f"{step.enter.journey} ({result.workflow_id})")
        else:
            self._trace(step.id, "skipped", result.reason)
        return self._after(step)

    def _exit(self, step: ExitStep) -> Next:
        self._s.reason = step.exit.reason
        return None

    # --- sending ----------------------------------------------------------------------------

    async def _send_when_allowed(self, step: SendStep) -> _Sent | Halt | None:
        """The send, made once nothing holds it back: the journey's quiet hours are waited out
        before the first attempt, a channel guard's deferral (daily cap, channel quiet hours)
        after the attempt it answered; both wait in ``_hold``. ``Halt.SUSPEND`` or None when
        the run must continue as new or was interrupted while the send was held."""
        quiet_end = self._quiet_hours_until(step)
        if quiet_end is not None:
            # A deadline already set is a hold resumed after a continue-as-new, traced before.
            traced = self._s.deadline is None
            held = await self._hold(step, "quiet hours", quiet_end, traced=traced)
            if held is Waited.SUSPENDED:
                return Halt.SUSPEND
        if self._interrupt is not None:
            return None
        # A send held back keeps its key across the wait and a continue-as-new, so the retried
        # attempt is the same message, not a second one.
        key = self._s.pending_send or self._operation_key(step.id)
        self._s.pending_send = key
        message_id = "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]
        self._s.messages[step.id] = message_id
        while True:
            after = self._planned_after(step)
            result = await self._attempt(step, key, message_id, after)
            if result.status != "deferred":
                self._s.pending_send = None
                return _Sent(result, after)
            assert result.until is not None
            held = await self._hold(step, result.reason, result.until, traced=True)
            if held is Waited.SUSPENDED:
                return Halt.SUSPEND
            if self._interrupt is not None:
                return None
            # Only a deferral's deadline is cleared here. The journey's quiet hours leave theirs,
            # spent, so a deferral right after them times out at once and the send is tried
            # again; clearing it too would change the commands of running sends.
            self._s.deadline = None

    def _quiet_hours_until(self, step: SendStep) -> datetime | None:
        """When the journey's quiet hours let this send go, if they hold it now."""
        window = self._journey.quiet_hours
        if window is None or (window.channels and step.send.channel not in window.channels):
            return None
        if self._s.deadline is not None and self._s.deadline <= workflow.now():
            return None  # deferred already, and the window is over
        return self._s.deadline or quiet_until(workflow.now(), self._tz(), window.start, window.end)

    async def _hold(
        self, step: SendStep, reason: str | None, until: datetime, *, traced: bool
    ) -> Waited:
        """Hold the send back until ``until``; ``traced``: the trace shows it deferred."""
        if traced:
            self._trace(step.id, "deferred", f"{reason} until {_when(until)}")
        return await self._block(step.id, until, f"{reason}: {step.send.channel} deferred")

    def _planned_after(self, step: SendStep) -> RunEnd | WaitAhead | None:
        """What the send's activity records once it goes out, so the run needs no local
        activity after it: the run's end, when only an exit (or nothing) follows the send; the
        wait entered, when a wait or a wait_for does (recorded before its timer starts)."""
        following = self._after(step)
        then = self._steps[following] if following is not None else None
        recorded = {
            **self._ref(),
            "earlier": list(self._s.unrecorded),
            "seq": self._s.trace_seq + 1,
            "step": step.id,
            "variant": self._s.variant,
        }
        if then is None or isinstance(then, ExitStep):
            reason = then.exit.reason if then is not None else self._s.reason
            return RunEnd(**recorded, exit_step=following, reason=reason)
        if isinstance(then, WaitStep | WaitForStep) and not _short(then):
            return WaitAhead(**recorded, wait_step=then.id, reason=self._s.reason)
        return None

    def _waiting_with(self, ahead: WaitAhead, result: SendMessageResult, at: datetime) -> str:
        """The send's outcome and the wait entered, as the activity recorded them; the wait's
        step, which the loop then does not enter a second time."""
        self._s.unrecorded = []
        for entry in ahead.entries(result, at):
            self._keep(entry)
        # The database says the run is at the wait: an interrupt or a migration that came
        # during the send is taken there.
        self._s.step, self._entered_by_send = ahead.wait_step, True
        return ahead.wait_step

    def _ended_with(self, end: RunEnd, result: SendMessageResult, at: datetime) -> None:
        """The run as the send recorded it: its entries, completed. An interrupt that came
        during the send still ends it as that (converted, exited), recorded after these."""
        self._s.unrecorded = []
        for entry in end.entries(result, at):
            self._keep(entry)
        self._s.status, self._s.step, self._s.reason = "completed", None, end.reason
        if self._migration is not None:
            # Too late to move: ``migrate`` answers that the run ended.
            self._migration, self._migrated_to = None, None

    async def _attempt(
        self, step: SendStep, key: str, message_id: str, after: RunEnd | WaitAhead | None
    ) -> SendMessageResult:
        send = step.send
        self._show(step.id, f"sending {send.channel} {send.template} on step {step.id}", None)
        return await workflow.execute_activity(
            SEND_MESSAGE,
            SendMessageInput(
                idempotency_key=key,
                message_id=message_id,
                contact_id=self._input.contact_id,
                journey_key=self._journey.key,
                version=self._input.version,
                step_id=step.id,
                workflow_id=workflow.info().workflow_id,
                channel=send.channel,
                template=send.template,
                data=send.data,
                trigger=self._input.trigger,
                now=workflow.now(),
                if_capped=send.if_capped,
                # Fields of the input, not commands: replaying older histories is unchanged.
                run_end=after if isinstance(after, RunEnd) else None,
                wait_ahead=after if isinstance(after, WaitAhead) else None,
                topic=send.topic,
                variant=self._s.variant,
            ),
            result_type=SendMessageResult,
            start_to_close_timeout=OPTIONS.send_timeout,
            heartbeat_timeout=OPTIONS.send_heartbeat,
            retry_policy=OPTIONS.retry,
            summary=f"{step.id}: {send.channel} {send.template}",
        )

    # --- waiting ----------------------------------------------------------------------------

    async def _block(
        self,
        step_id: str,
        until: datetime,
        words: str,
        ready: Callable[[], bool] | None = None,
    ) -> Waited:
        """Wait for ``ready``, an interrupt, a continue-as-new point or ``until``.

        The deadline is kept in the run state, so a run that continues as new mid-wait
        resumes the same wait instead of starting it over."""
        if self._s.deadline is None:
            self._s.deadline = until
        until = self._s.deadline
        if ready is not None and ready():
            return Waited.READY
        remaining = until - workflow.now()
        if remaining <= timedelta(0):
            return Waited.TIMEOUT
        words = f"{words} until {_when(until)}"
        if remaining < SHORT_WAIT:
            # Over before anyone could look: progress is recorded at the next durable wait or
            # at the end, and the search attributes stay where they were.
            self._name_the_short_wait_patch()
            self._show(step_id, words, until)
        else:
            await self._show_blocked(step_id, words, until)
        try:
            await workflow.wait_condition(
                lambda: (
                    self._interrupt is not None
                    or (ready is not None and ready())
                    or self._migration is not None
                    or self._continue_as_new_due()
                ),
                timeout=remaining,
                timeout_summary=f"{step_id}: until {_when(until)}",
            )
        except TimeoutError:
            return Waited.TIMEOUT
        if self._interrupt is not None:
            return Waited.INTERRUPTED
        if ready is not None and ready():
            return Waited.READY
        return Waited.SUSPENDED

    def _name_the_short_wait_patch(self) -> None:
        # Interpreter-1 runs of the patch era recorded its marker at their first short wait,
        # and replay fails on a non-deprecated marker that code no longer asks about; asking
        # with ``deprecate_patch`` meets it (the table at ``Behaviour`` in ``types``).
        if not self._input.has(Behaviour.SHORT_WAITS_UNMARKED):
            workflow.deprecate_patch(SHORT_WAIT_PATCH)

    def _match(self, spec: WaitFor) -> BufferedEvent | None:
        """The oldest buffered event this wait can use that no earlier wait used; events that
        came while the run was busy (sending, updating) count as much as those that come now."""
        message_id = self._s.messages.get(spec.message) if spec.message else None
        if spec.message and message_id is None:
            return None  # that message was never sent in this run: only the timeout remains
        for buffered in self._s.buffer:
            event = buffered.event
            if buffered.consumed or event.name != spec.event:
                continue
            if message_id is not None and event.properties.get("message_id") != message_id:
                continue
            if spec.where is None or evaluate(spec.where, self._context(event)):
                return buffered
        return None

    # --- events -----------------------------------------------------------------------------

    @workflow.signal(name=EVENT_SIGNAL)
    def on_event(self, raw: RawValue) -> None:
        """Events carry their id; Temporal does not deduplicate signals, so the run does.

        The argument is decoded here rather than by the SDK, so that one the worker cannot
        decode is seen (and, on 3, traced) as it is dropped."""
        event = self._received(raw)
        if event is None or event.id in self._seen:
            return
        self._remember(event.id)
        if self._interrupt is None and self._s.status == "running":
            goal = self._journey.goal
            if goal is not None and self._matches(goal, event):
                self._interrupt = ("converted", f"goal {event.name}")
            elif any(self._matches(rule, event) for rule in self._journey.exit_on):
                self._interrupt = ("exited", f"exit event {event.name}")
        self._s.arrivals += 1
        self._s.buffer.append(BufferedEvent(seq=self._s.arrivals, event=event))
        del self._s.buffer[: -self._input.buffer_size]
        if self._input.has(Behaviour.STATE_BOUNDED_BY_BYTES):
            self._bound_buffer()

    def _received(self, raw: RawValue) -> JourneyEvent | None:
        """The signal's event, or None when the run cannot take it: undecodable (nested past
        what the decoder reads), or on 3 nested too deep to carry across a continue-as-new."""
        try:
            event = workflow.payload_converter().from_payload(raw.payload, JourneyEvent)
        except Exception as exc:  # whatever the converter raises: the SDK dropped these too
            # The class only: the error's text quotes the event, which may hold personal data.
            workflow.logger.warning(
                "dropped an event that could not be decoded (%s)", type(exc).__name__
            )
            if self._input.has(Behaviour.STATE_BOUNDED_BY_BYTES):
                self._trace(self._s.step, "dropped", "an event that could not be decoded")
            return None
        if not self._input.has(Behaviour.STATE_BOUNDED_BY_BYTES):
            return event
        if too_deep(event.properties):
            why = f"properties nested over {EVENT_DEPTH_LIMIT} levels"
            self._trace(self._s.step, "dropped", f"{event.name} ({event.id}): {why}")
            return None
        return event

    def _bound_buffer(self) -> None:
        """Drop the oldest buffered events until the buffer fits ``BUFFER_BYTES_LIMIT``; the
        newest alone may be over it, and goes too (a goal or exit in it has counted already)."""
        kept = {buffered.seq for buffered in self._s.buffer}
        self._sizes = {seq: size for seq, size in self._sizes.items() if seq in kept}
        total = sum(self._size(buffered) for buffered in self._s.buffer)
        while total > BUFFER_BYTES_LIMIT:
            oldest = self._s.buffer.pop(0)
            total -= self._size(oldest)
            self._dropped(oldest, f"the buffer keeps {BUFFER_BYTES_LIMIT} bytes")

    def _size(self, buffered: BufferedEvent) -> int:
        if buffered.seq not in self._sizes:
            self._sizes[buffered.seq] = size_of(buffered)
        return self._sizes[buffered.seq]

    def _dropped(self, buffered: BufferedEvent, why: str) -> None:
        self._sizes.pop(buffered.seq, None)
        event = buffered.event
        self._trace(self._s.step, "dropped", f"{event.name} ({event.id}): {why}")

    def _matches(self, rule: EventMatch, event: JourneyEvent) -> bool:
        if rule.event != event.name:
            return False
        return rule.where is None or evaluate(rule.where, self._context(event))

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._s.seen_ids.append(event_id)
        if len(self._s.seen_ids) > 2 * SEEN_IDS_LIMIT:
            dropped = self._s.seen_ids[:-SEEN_IDS_LIMIT]
            self._s.seen_ids = self._s.seen_ids[-SEEN_IDS_LIMIT:]
            self._seen.difference_update(dropped)

    # --- versions ---------------------------------------------------------------------------

    @workflow.update(name=MIGRATE_UPDATE)
    async def migrate(self, request: MigrateRun) -> str:
        """Move this run onto a newer version at the step the mapping names for where it is."""
        self._migration = request
        await workflow.wait_condition(lambda: self._migration is None)
        if self._migrated_to is None:
            where = (
                f"moved on to step {self._s.step!r}, which the mapping does not name"
                if self._s.status == "running"
                else f"{self._s.status} before it could move"
            )
            raise ApplicationError(f"the run {where}", type="MigrationRejected")
        return self._migrated_to

    @migrate.validator
    def _validate_migrate(self, request: MigrateRun) -> None:
        if self._s.status != "running" or self._interrupt is not None:
            raise ValueError(f"the run is {self._s.status}, not running")
        if request.version <= self._input.version:
            raise ValueError(f"the run is on version {self._input.version} already")
        target = request.steps.get(self._s.step or "")
        if target is None:
            raise ValueError(f"the mapping does not name the run's step {self._s.step!r}")
        if target not in request.journey.step_map():
            raise ValueError(f"version {request.version} has no step {target!r}")

    async def _migrate(self) -> None:
        request, self._migration = self._migration, None
        assert request is not None
        target = request.steps.get(self._s.step or "")
        if target is None or target not in request.journey.step_map():
            self._migrated_to = None
            return
        before = f"v{self._input.version} {self._s.step}"
        self._input = self._input.model_copy(
            update={"journey": request.journey, "version": request.version}
        )
        self._journey = request.journey
        self._steps = request.journey.step_map()
        self._s.step, self._s.deadline, self._migrated_to = target, None, target
        self._s.pending_send = None  # a send held back on the old version is not made
        self._trace(target, "migrated", f"{before} -> v{request.version} {target}")
        workflow.upsert_search_attributes(
            [sa.JOURNEY_VERSION.value_set(request.version), sa.STEP.value_set(target)]
        )
        self._shown_step = target

    @workflow.update(name=EXIT_UPDATE)
    def exit_run(self, reason: str) -> str:
        """End the run now (an operator's decision, or the contact's erasure)."""
        self._interrupt = ("exited", reason)
        return self._s.step or ""

    @exit_run.validator
    def _validate_exit(self, reason: str) -> None:
        if self._s.status != "running" or self._interrupt is not None:
            raise ValueError(f"the run is {self._s.status}, not running")

    # --- operators --------------------------------------------------------------------------

    @workflow.query(name=STATE_QUERY)
    def state(self) -> RunView:
        return RunView(
            journey=self._journey.key,
            version=self._input.version,
            contact_id=self._input.contact_id,
            status=self._s.status,
            step=self._s.step,
            variant=self._s.variant,
            waiting_for=self._waiting_for,
            until=self._until,
            trace=self._s.trace,
        )

    def _show(self, step_id: str, words: str, until: datetime | None) -> None:
        self._waiting_for, self._until = words, until
        workflow.set_current_details(f"{self._journey.key} v{self._input.version}: {words}")

    async def _show_blocked(self, step_id: str, words: str, until: datetime) -> None:
        """Before a durable wait: record progress and point the search attributes at the step.
        Only waits update them: a send is over in seconds, and every upsert costs history."""
        self._show(step_id, words, until)
        await self._flush()
        if self._shown_step != step_id:
            workflow.upsert_search_attributes([sa.STEP.value_set(step_id)])
            self._shown_step = step_id

    # --- bookkeeping ------------------------------------------------------------------------

    def _trace(self, step_id: str | None, kind: str, detail: str | None = None) -> None:
        entry = TraceEntry(
            seq=self._s.trace_seq + 1, at=workflow.now(), step=step_id, kind=kind, detail=detail
        )
        self._keep(entry)
        self._s.unrecorded.append(entry)

    def _keep(self, entry: TraceEntry) -> None:
        self._s.trace_seq = entry.seq
        self._s.trace.append(entry)
        del self._s.trace[:-TRACE_LIMIT]

    async def _flush(self) -> None:
        entries = list(self._s.unrecorded)
        if not entries:
            return
        await self._local(
            RECORD_PROGRESS,
            RecordProgressInput(
                **self._ref(),
                entries=entries,
                status=self._s.status if self._interrupt is None else self._interrupt[0],
                step=self._s.step,
                variant=self._s.variant,
                reason=self._s.reason,
            ),
            None,
        )
        self._s.unrecorded = self._s.unrecorded[len(entries) :]

    async def _local(self, name: str, arg: Any, result_type: type | None) -> Any:
        return await workflow.execute_local_activity(
            name,
            arg,
            result_type=result_type,
            start_to_close_timeout=OPTIONS.bookkeeping_timeout,
            retry_policy=OPTIONS.retry,
        )

    async def _condition_data(self, conditions: list[Any]) -> ConditionData:
        queries = [query for c in conditions for query in history_conditions(c)]
        data: ConditionData = await self._local(
            LOAD_CONDITION_DATA,
            LoadConditionDataInput(
                contact_id=self._input.contact_id, history=queries, now=workflow.now()
            ),
            ConditionData,
        )
        self._s.contact = data.contact
        return data

    def _ref(self) -> dict[str, Any]:
        return {
            "enrollment_id": self._s.entry_id,
            "workflow_id": workflow.info().workflow_id,
            "journey_key": self._journey.key,
            "version": self._input.version,
            "contact_id": self._input.contact_id,
        }

    def _operation_key(self, step_id: str) -> str:
        """Stable across retries, replays and continue-as-new, and on 3 across resets too
        (``_entry_id``); distinct for each visit of a step."""
        visit = self._s.visits.get(step_id, 0) + 1
        self._s.visits[step_id] = visit
        return f"{workflow.info().workflow_id}/{self._s.entry_id}/{step_id}/{visit}"

    def _context(self, event: JourneyEvent | None = None) -> dict[str, Any]:
        contact = self._s.contact or ContactSnapshot(id=self._input.contact_id)
        return {
            **contact.condition_context(),
            "trigger": self._input.trigger.properties if self._input.trigger else {},
            "event": event.properties if event else {},
            "variant": self._s.variant,
        }

    def _seen_events(self) -> list[dict[str, Any]]:
        return [{"name": b.event.name, "properties": b.event.properties} for b in self._s.buffer]

    def _tz(self) -> str:
        return self._s.contact.timezone if self._s.contact else "UTC"

    def _date_target(self, wait: WaitForDate, now: datetime) -> datetime | None:
        traits = self._s.contact.traits if self._s.contact else {}
        value = traits.get(wait.date_attribute)
        if value is None:
            return None
        return next_date_occurrence(now, self._tz(), value, wait.offset, wait.at, wait.yearly)

    def _after(self, step: Step) -> str | None:
        return step.next or self._journey.following(step.id)


def _short(step: WaitStep | WaitForStep) -> bool:
    """A wait known to be short before it begins: it records nothing (``SHORT_WAIT``), so the
    send before it has nothing to record for it either."""
    length = step.wait if isinstance(step, WaitStep) else step.wait_for.timeout
    return isinstance(length, timedelta) and length < SHORT_WAIT


def _describe_update(step: UpdateStep) -> str:
    update, parts = step.update, []
    if update.attributes:
        parts.append("set " + ", ".join(sorted(update.attributes)))
    if update.add_tags:
        parts.append("tag " + ", ".join(update.add_tags))
    if update.remove_tags:
        parts.append("untag " + ", ".join(update.remove_tags))
    parts.extend(f"{name} {points:+g}" for name, points in update.score.items())
    return "; ".join(parts)
