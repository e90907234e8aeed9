"""Input, carried state and answers of the journey workflow."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from journeys.records import ContactSnapshot, JourneyEvent, TraceEntry
from journeys.spec import Journey

TRACE_LIMIT = 200
SEEN_IDS_LIMIT = 2000
INTERPRETER = 2
"""What new entries are started on. 2: waits under a few seconds skip the bookkeeping before
them, decided by the input instead of a patch marker (a marker costs every run two history
events and a visibility write)."""


class BufferedEvent(BaseModel):
    seq: int
    event: JourneyEvent
    consumed: bool = False


class RunState(BaseModel):
    """Everything a run carries across continue-as-new."""

    entry_id: str = Field(description="Run id of the first run of this entry; keys idempotency.")
    started_at: datetime
    step: str | None = None
    status: str = "running"
    reason: str | None = None
    variant: str | None = None
    contact: ContactSnapshot | None = None
    visits: dict[str, int] = Field(default_factory=dict)
    messages: dict[str, str] = Field(default_factory=dict, description="send step -> message id")
    seen_ids: list[str] = Field(default_factory=list)
    buffer: list[BufferedEvent] = Field(default_factory=list)
    arrivals: int = 0
    deadline: datetime | None = Field(default=None, description="Of the wait in progress.")
    pending_send: str | None = Field(
        default=None, description="Idempotency key of a send held back until a later moment."
    )
    trace: list[TraceEntry] = Field(default_factory=list)
    trace_seq: int = 0
    unrecorded: list[TraceEntry] = Field(default_factory=list)


class Admission(BaseModel):
    """A starter's word that it checked the journey's re-entry rule under a lock and recorded
    the enrollment: the run takes the contact from here instead of asking the database."""

    contact: ContactSnapshot


class JourneyInput(BaseModel):
    journey: Journey
    version: int
    contact_id: str
    trigger: JourneyEvent | None = None
    correlation: str | None = None
    buffer_size: int = 100
    continue_as_new_after: int | None = Field(
        default=None, description="History length that forces continue-as-new (tests, tuning)."
    )
    state: RunState | None = None
    admission: Admission | None = Field(
        default=None, description="Set when the starter admitted the entry itself."
    )
    interpreter: int = Field(
        default=1,
        description="Interpreter behaviour this entry was started on; inputs older than the "
        "field are 1. Kept across continue-as-new and migration, so a run never changes it.",
    )


class RunView(BaseModel):
    """What the ``state`` query answers: where the contact is and how it got there."""

    journey: str
    version: int
    contact_id: str
    status: str
    step: str | None
    variant: str | None
    waiting_for: str | None
    until: datetime | None
    trace: list[TraceEntry]


class JourneyResult(BaseModel):
    status: str
    reason: str | None = None
    step: str | None = None
    variant: str | None = None


class MigrateRun(BaseModel):
    """Move a run to ``version``: ``steps`` maps old step ids to steps of the new version."""

    journey: Journey
    version: int
    steps: dict[str, str]
