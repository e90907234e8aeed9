"""Scheduled entry: the workflow a journey's Temporal Schedule starts at each fire.

A journey whose trigger is ``schedule`` (``{schedule: {cron, timezone} | {at}, segment: KEY}``)
has one schedule, ``journey-schedule/<key>`` (``api/services/schedules.py``). Each fire runs
``ScheduledEntryWorkflow``, which asks one activity to enter the segment's members at that
moment. Entry is idempotent per (journey, contact, fire): the fire is the schedule's nominal
time (``TemporalScheduledStartTime``, the same for every attempt and every retry of that fire),
each run's workflow id carries it (``journey/<key>/<contact>/<fire>``) and the activity enters
nobody whose run for that fire exists, so a retried or repeated fire enters nobody twice.

Names here are on the wire (schedules and recorded histories carry them): they never change.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.workflows.date_entry import SCHEDULED_START

SCHEDULED_ENTRY_WORKFLOW = "ScheduledEntry"
"""The workflow type a scheduled journey's schedule starts."""

ADMIT_SCHEDULED_ENTRIES = "journeys.admit_scheduled_entries"
"""The activity that pages the segment's members and starts their runs."""

SCHEDULE_EVENT = "schedule.fired"
"""Name of the trigger event a scheduled entry gives its run; its properties name the
``segment`` and the ``fire`` (UTC, ISO 8601)."""

SCHEDULE_PREFIX = "journey-schedule/"
"""Schedule ids and the workflow ids of their fires: ``journey-schedule/<key>``."""


def schedule_id(journey_key: str) -> str:
    return SCHEDULE_PREFIX + journey_key


def fire_key(fire: datetime) -> str:
    """The fire as runs are keyed by it: UTC to the second (``2027-01-04T08:00:00Z``)."""
    return fire.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def fire_of(event: JourneyEvent | None) -> str | None:
    """The fire a scheduled entry's trigger event is for; None for any other event (an API
    enrolment of a scheduled journey has none and is keyed by the contact alone)."""
    if event is None or event.name != SCHEDULE_EVENT:
        return None
    value = event.properties.get("fire")
    return str(value) if value else None


class ScheduledEntryInput(BaseModel):
    """What the schedule's action carries: the journey."""

    journey_key: str
    fire_at: datetime | None = Field(
        default=None,
        description="The fire's moment; None: the schedule's TemporalScheduledStartTime (or "
        "the workflow's clock when started by hand). Tests and operators repeating a fire "
        "set it.",
    )


class AdmitScheduledInput(BaseModel):
    journey_key: str
    fire: datetime = Field(description="The fire's nominal moment: what keys its entries.")


class AdmitScheduledResult(BaseModel):
    members: int = Field(default=0, description="Members of the segment looked at.")
    entered: int = Field(default=0, description="Runs started by this fire.")
    already: int = Field(default=0, description="Members whose run for this fire existed already.")
    skipped: int = Field(
        default=0,
        description="Members the journey's re_entry rule refused, or still in an earlier run.",
    )
    refused: list[str] = Field(
        default_factory=list, description="Members whose run could not start, with why."
    )
    reason: str | None = Field(default=None, description="Why nobody was looked for.")


@workflow.defn(name=SCHEDULED_ENTRY_WORKFLOW)
class ScheduledEntryWorkflow:
    @workflow.run
    async def run(self, request: ScheduledEntryInput) -> AdmitScheduledResult:
        fire = request.fire_at or workflow.info().typed_search_attributes.get(SCHEDULED_START)
        fire = fire or workflow.now()
        workflow.set_current_details(
            f"Entering the segment's members into journey {request.journey_key} for the fire "
            f"of {fire.isoformat()}"
        )
        return await workflow.execute_activity(
            ADMIT_SCHEDULED_ENTRIES,
            AdmitScheduledInput(journey_key=request.journey_key, fire=fire),
            result_type=AdmitScheduledResult,
            start_to_close_timeout=timedelta(hours=1),
            heartbeat_timeout=timedelta(minutes=2),
            # Until the database and Temporal answer: every member of a fire is looked at.
            retry_policy=RetryPolicy(maximum_interval=timedelta(minutes=1)),
            summary=f"scheduled entries of {fire.isoformat()}",
        )
