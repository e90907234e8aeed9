"""Activity names and payloads; pure, so workflow code imports them without the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from temporal_journeys.journeys.conditions import History
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent, TraceEntry
from temporal_journeys.journeys.spec import Channel, ReEntry, Update

BEGIN_ENROLLMENT = "journeys.begin_enrollment"
RECORD_PROGRESS = "journeys.record_progress"
LOAD_CONDITION_DATA = "journeys.load_condition_data"
UPDATE_CONTACT = "journeys.update_contact"
SEND_MESSAGE = "journeys.send_message"
ENTER_JOURNEY = "journeys.enter_journey"


class EnrollmentRef(BaseModel):
    enrollment_id: str
    workflow_id: str
    journey_key: str
    version: int
    contact_id: str

    def ref(self) -> dict[str, Any]:
        """These key fields alone, as ``write_progress`` and the models built on them take them."""
        return {
            "enrollment_id": self.enrollment_id,
            "workflow_id": self.workflow_id,
            "journey_key": self.journey_key,
            "version": self.version,
            "contact_id": self.contact_id,
        }


class BeginEnrollmentInput(EnrollmentRef):
    correlation: str | None
    re_entry: ReEntry
    started_at: datetime
    entries: list[TraceEntry] = Field(description="Recorded only if the entry is allowed.")


class BeginEnrollmentResult(BaseModel):
    allowed: bool
    reason: str | None = None
    contact: ContactSnapshot | None = None


class RecordProgressInput(EnrollmentRef):
    entries: list[TraceEntry]
    status: str
    step: str | None
    variant: str | None
    reason: str | None = None


class LoadConditionDataInput(BaseModel):
    contact_id: str
    history: list[History] = Field(default_factory=list)
    now: datetime


class ConditionData(BaseModel):
    contact: ContactSnapshot
    history: dict[str, int] = Field(default_factory=dict)


class UpdateContactInput(BaseModel):
    operation_key: str
    contact_id: str
    update: Update


class _AfterTheSend(EnrollmentRef):
    """What the run records once its send goes out (sent or skipped) and nothing interrupts
    it, handed to the send activity, which records it right after the message: the run then
    goes on without a local activity of its own. Both sides build the entries here, so the
    database and the run's own trace say the same, at the moment the activity gives (the
    attempt that sent)."""

    earlier: list[TraceEntry] = Field(description="The run's entries not recorded yet.")
    seq: int = Field(description="Of the send's own entry; the entries after it follow.")
    step: str = Field(description="The send step.")
    variant: str | None
    reason: str | None

    def _entries(
        self,
        result: SendMessageResult,
        at: datetime,
        following: list[tuple[str | None, str, str | None]],
    ) -> list[TraceEntry]:
        """The send's outcome, then ``following`` (step, kind, detail), numbered after
        ``earlier``."""
        kinds = [(self.step, result.status, result.reason), *following]
        return [
            TraceEntry(seq=self.seq + n, at=at, step=step, kind=kind, detail=detail)
            for n, (step, kind, detail) in enumerate(kinds)
        ]

    def _progress(
        self, entries: list[TraceEntry], status: str, step: str | None
    ) -> RecordProgressInput:
        return RecordProgressInput(
            **self.ref(),
            entries=[*self.earlier, *entries],
            status=status,
            step=step,
            variant=self.variant,
            reason=self.reason,
        )


class RunEnd(_AfterTheSend):
    """How the run ends if its last send goes out: the exit entered (if there is one), then
    ``completed``; the run closes as recorded."""

    exit_step: str | None = Field(description="The exit step after the send, if there is one.")

    def entries(self, result: SendMessageResult, at: datetime) -> list[TraceEntry]:
        entered = [(self.exit_step, "entered", None)] if self.exit_step is not None else []
        return self._entries(result, at, [*entered, (None, "completed", self.reason)])

    def progress(self, result: SendMessageResult, at: datetime) -> RecordProgressInput:
        return self._progress(self.entries(result, at), "completed", None)


class WaitAhead(_AfterTheSend):
    """The wait that follows the send, entered once it goes out: the run begins that wait with
    nothing left to record (no local activity before its timer)."""

    wait_step: str = Field(description="The wait or wait_for step after the send.")

    def entries(self, result: SendMessageResult, at: datetime) -> list[TraceEntry]:
        return self._entries(result, at, [(self.wait_step, "entered", None)])

    def progress(self, result: SendMessageResult, at: datetime) -> RecordProgressInput:
        return self._progress(self.entries(result, at), "running", self.wait_step)


RUN_ENDING_SENDS = ("sent", "skipped")
"""Outcomes after which a send step goes on to the step after it (a failure may not)."""


class SendMessageInput(BaseModel):
    idempotency_key: str
    message_id: str
    contact_id: str
    journey_key: str
    version: int
    step_id: str
    workflow_id: str
    channel: Channel
    template: str
    data: dict[str, Any] = Field(default_factory=dict)
    trigger: JourneyEvent | None = None
    now: datetime | None = Field(
        default=None,
        description="The workflow's clock at the send: frequency caps and quiet hours use it "
        "(None in histories recorded before caps existed: the activity's clock then).",
    )
    if_capped: Literal["defer", "skip"] = "defer"
    run_end: RunEnd | None = Field(
        default=None, description="Set when nothing but an exit follows this send."
    )
    wait_ahead: WaitAhead | None = Field(
        default=None, description="Set when a wait or a wait_for follows this send."
    )
    topic: str | None = Field(
        default=None,
        description="The send's subscription topic: the guards skip contacts not subscribed "
        "to it and the unsubscribe link names it (None in histories recorded before topics).",
    )
    variant: str | None = Field(
        default=None,
        description="The run's variant when it sends (None before a split, and in histories "
        "recorded before the field): kept on the message so its stats need no join to runs.",
    )


class SendMessageResult(BaseModel):
    status: Literal["sent", "skipped", "failed", "deferred"]
    message_id: str
    reason: str | None = None
    until: datetime | None = Field(
        default=None, description="For a deferred send: the next moment it is allowed."
    )
    run_ended_at: datetime | None = Field(
        default=None,
        description="Set when the activity recorded the input's ``run_end``, to the moment its "
        "entries carry (Temporal's clock: when the attempt that settled the send started): the "
        "run closes as recorded. None from workers older than the field, which leave the end "
        "to the run.",
    )
    wait_recorded_at: datetime | None = Field(
        default=None,
        description="Set when the activity recorded the input's ``wait_ahead``, to the moment "
        "its entries carry (as ``run_ended_at``): the run begins the wait with nothing to "
        "record. None from workers older than the field, which leave it to the run.",
    )


class EnterJourneyInput(BaseModel):
    contact_id: str
    journey_key: str
    from_journey: str


class EnterJourneyResult(BaseModel):
    entered: bool
    workflow_id: str | None = None
    reason: str | None = None
