"""Input, carried state and answers of the journey workflow."""

from __future__ import annotations

from datetime import datetime
from enum import IntEnum

from pydantic import BaseModel, Field

from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent, TraceEntry
from temporal_journeys.journeys.spec import Journey

TRACE_LIMIT = 200
SEEN_IDS_LIMIT = 2000
BUFFER_BYTES_LIMIT = 512 * 1024
"""Serialized events a run keeps for its waits (on 3); the oldest go first, traced."""
CARRY_BYTES_LIMIT = 1024 * 1024
"""The continue-as-new input (on 3): Temporal refuses a payload over 2 MB, and the journey and
the trigger travel in it too."""
EVENT_DEPTH_LIMIT = 128
"""How deep an event's properties may nest (``{}`` is 1) for a run on 3 to take it in, and for
the starter to take it as a trigger. The payload decoder (pydantic's JSON parser) stops at about
200 levels for a whole payload, and a buffered event's properties sit 5 levels down in a
continue-as-new input: deeper events would stick the run there."""


class Behaviour(IntEnum):
    """Workflow-code changes that alter what a run records, each valued at the interpreter
    number that brought it. A run has a behaviour when its entry started on that number or a
    later one (``JourneyInput.has``); the number is kept across continue-as-new and migration,
    so a run never changes behaviour halfway. This is the one mechanism for such changes: a new
    one gets a member here, a row below, ``INTERPRETER`` raised, and recorded histories of both
    sides kept in ``tests/engine/histories``.

    ======  ==============================================================================
    number  what runs started on it do (a row names what changed since the row above)
    ======  ==============================================================================
    1       Inputs older than the field. Waits under ``SHORT_WAIT`` skip the bookkeeping
            before them (no progress write, no search-attribute upsert), and name the
            retired patch ``short-waits-skip-bookkeeping`` with ``workflow.deprecate_patch``:
            runs of the patch era recorded its marker, and replay must meet it; a short
            wait now records the marker (deprecated) and its ``TemporalChangeVersion``
            upsert, as the patch did. Runs that passed a short wait before the patch
            (a107579, 2026-11-25; no release before it) did the bookkeeping there and no
            longer replay.
    2       ``SHORT_WAITS_UNMARKED``: short waits skip the bookkeeping without naming the
            patch, so no marker and no ``TemporalChangeVersion`` upsert (two history events
            and a visibility write less per run).
    3       ``ENTRY_OF_THE_FIRST_RUN``: the entry id (the enrollment's id, and part of every
            send and update key) is the first execution's run id, which a reset keeps, not
            the current run's: a reset run finds its sends made and its entry its own.
            ``STATE_BOUNDED_BY_BYTES``: the event buffer is bounded by serialized bytes
            (``BUFFER_BYTES_LIMIT``) as well as by count; events nested deeper than
            ``EVENT_DEPTH_LIMIT`` or that cannot be decoded are dropped; the continue-as-new
            input is fitted under ``CARRY_BYTES_LIMIT`` (oldest buffered events, then seen
            ids, then trace lines); each drop is a ``dropped`` trace line.
    ======  ==============================================================================
    """

    SHORT_WAITS_UNMARKED = 2
    ENTRY_OF_THE_FIRST_RUN = 3
    STATE_BOUNDED_BY_BYTES = 3  # the same number: both came together


INTERPRETER: int = max(Behaviour).value
"""What new entries are started on (the starter sets it in every input): the latest row."""


class BufferedEvent(BaseModel):
    seq: int
    event: JourneyEvent
    consumed: bool = False


class RunState(BaseModel):
    """Everything a run carries across continue-as-new."""

    entry_id: str = Field(
        description="Run id of the first run of this entry (on 1 and 2: of the run that began "
        "it, which a reset replaces); keys idempotency."
    )
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
    entered_at: datetime | None = Field(
        default=None,
        description="When the starter recorded the run's first entry (its first step "
        "entered, trace seq 1): the run keeps it in its trace and does not record it again. "
        "None from starters older than the field: the run records it.",
    )


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
        description="Interpreter behaviour this entry was started on (``Behaviour``); inputs "
        "older than the field are 1. Kept across continue-as-new and migration, so a run "
        "never changes it.",
    )

    def has(self, behaviour: Behaviour) -> bool:
        """Whether this run was started on an interpreter with ``behaviour``."""
        return self.interpreter >= behaviour


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
