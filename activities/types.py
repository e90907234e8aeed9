"""Activity names and payloads; pure, so workflow code imports them without the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from journeys.conditions import History
from journeys.records import ContactSnapshot, JourneyEvent, TraceEntry
from journeys.spec import Channel, ReEntry, Update

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


class SendMessageResult(BaseModel):
    status: Literal["sent", "skipped", "failed", "deferred"]
    message_id: str
    reason: str | None = None
    until: datetime | None = Field(
        default=None, description="For a deferred send: the next moment it is allowed."
    )


class EnterJourneyInput(BaseModel):
    contact_id: str
    journey_key: str
    from_journey: str


class EnterJourneyResult(BaseModel):
    entered: bool
    workflow_id: str | None = None
    reason: str | None = None
