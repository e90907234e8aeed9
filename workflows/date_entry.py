"""Date-based entry: the workflow a journey's Temporal Schedule starts at each fire.

A journey whose trigger is ``date_attribute`` has one schedule, ``journey-dates/<key>``
(``api/services/schedules.py``), firing every ``JOURNEYS_DATE_ENTRY_EVERY_MINUTES``. Each fire
runs ``DateEntryWorkflow``, which asks one activity to enter every contact whose local moment
(the date in their trait, at ``at`` in their zone, shifted by ``offset``) fell in
``(fire - every, fire]``. Fires tile time exactly: the schedule buffers fires that come while
one runs (a down worker delays them; none is skipped) and catches up on fires missed while
Temporal itself was down. Entry is idempotent per (journey, contact, occurrence): the run's
workflow id carries the occurrence (``journey/<key>/<contact>/<occurrence>``) and the activity
enters nobody whose run for that occurrence exists, so a retried or repeated fire enters
nobody twice.

Names here are on the wire (schedules and recorded histories carry them): they never change.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

from temporal_journeys.journeys.records import JourneyEvent

DATE_ENTRY_WORKFLOW = "DateEntry"
"""The workflow type a journey's schedule starts."""

ADMIT_DATE_ENTRIES = "journeys.admit_date_entries"
"""The activity that finds the contacts due in a window and starts their runs."""

DATE_EVENT = "date_attribute.reached"
"""Name of the trigger event a date entry gives its run; its properties name the trait
(``date_attribute``), its value (``date``), the ``occurrence`` and the ``moment``."""

SCHEDULE_PREFIX = "journey-dates/"
"""Schedule ids and the workflow ids of their fires: ``journey-dates/<key>``."""

SCHEDULED_START = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Set by Temporal on every workflow a schedule starts: the nominal time of the fire."""


def schedule_id(journey_key: str) -> str:
    return SCHEDULE_PREFIX + journey_key


def occurrence_of(event: JourneyEvent | None) -> str | None:
    """The occurrence (an ISO date) a date entry's trigger event is for; None for any other
    event (an API enrolment of a date journey has none)."""
    if event is None or event.name != DATE_EVENT:
        return None
    value = event.properties.get("occurrence")
    return str(value) if value else None


class DateEntryInput(BaseModel):
    """What the schedule's action carries: the journey and the fire interval."""

    journey_key: str
    every: timedelta = Field(description="The schedule's interval: each fire's window length.")
    fire_at: datetime | None = Field(
        default=None,
        description="The fire's moment; None: the schedule's TemporalScheduledStartTime (or "
        "the workflow's clock when started by hand). Tests and operators replaying a window "
        "set it.",
    )


class AdmitDatesInput(BaseModel):
    journey_key: str
    after: datetime = Field(description="The window's start, excluded.")
    until: datetime = Field(description="The window's end, included.")


class AdmitDatesResult(BaseModel):
    due: int = Field(default=0, description="Contacts whose moment fell in the window.")
    entered: int = Field(default=0, description="Runs started by this fire.")
    already: int = Field(
        default=0, description="Due contacts whose run for the occurrence existed already."
    )
    refused: list[str] = Field(
        default_factory=list, description="Contacts whose run could not start, with why."
    )
    reason: str | None = Field(default=None, description="Why nobody was looked for.")


@workflow.defn(name=DATE_ENTRY_WORKFLOW)
class DateEntryWorkflow:
    @workflow.run
    async def run(self, request: DateEntryInput) -> AdmitDatesResult:
        fire = request.fire_at or workflow.info().typed_search_attributes.get(SCHEDULED_START)
        fire = fire or workflow.now()
        after = fire - request.every
        workflow.set_current_details(
            f"Entering contacts of journey {request.journey_key} whose date comes round in "
            f"({after.isoformat()}, {fire.isoformat()}]"
        )
        return await workflow.execute_activity(
            ADMIT_DATE_ENTRIES,
            AdmitDatesInput(journey_key=request.journey_key, after=after, until=fire),
            result_type=AdmitDatesResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            # Until the database and Temporal answer: a fire's window is only covered once.
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"date entries until {fire.isoformat()}",
        )
