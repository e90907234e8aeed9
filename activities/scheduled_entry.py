"""The activity behind each fire of a journey's schedule (``trigger: {schedule, segment}``):
page the segment's members and enter each one once for this fire.

Members are read a page at a time by contact id (``store/segments.members``), so a fire over a
large segment holds no list of it and commits as it goes. Each page is admitted as a batch, as
date-based entry admits its due contacts: one transaction holds the page's run locks (keyed by
the fire), finds the runs this fire began already, asks the journey's ``re_entry`` rule over
every member's earlier runs of the journey in one statement, and hands the rest to
``start_entries`` (``activities/batch_admission.py``: admitted, started concurrently, recorded
in one INSERT).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import Connection
from temporalio import activity
from temporalio.client import Client

from temporal_journeys.activities.batch_admission import (
    Entry,
    in_held_transaction,
    live_journey,
    runs_begun,
    start_entries,
    tally,
)
from temporal_journeys.activities.date_entry import lock_fresh
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey, ScheduleTrigger
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.scheduled_entry import (
    ADMIT_SCHEDULED_ENTRIES,
    SCHEDULE_EVENT,
    AdmitScheduledInput,
    AdmitScheduledResult,
    fire_key,
)
from temporal_journeys.workflows.starter import run_names

PAGE = 200
"""Members read, and admitted in one transaction, per page."""


def entry_event(
    journey: Journey, trigger: ScheduleTrigger, contact_id: str, fire: str
) -> JourneyEvent:
    """The run's trigger: its id is the same for every attempt of this fire, so a start that
    reaches the running run is dropped there as a duplicate."""
    return JourneyEvent(
        id=f"schedule:{journey.key}:{fire}:{contact_id}",
        name=SCHEDULE_EVENT,
        properties={"segment": trigger.segment, "fire": fire},
        timestamp=datetime.fromisoformat(fire),
    )


class ScheduledEntryActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name=ADMIT_SCHEDULED_ENTRIES)
    async def admit_scheduled_entries(self, request: AdmitScheduledInput) -> AdmitScheduledResult:
        live = await asyncio.to_thread(live_journey, self._db, request.journey_key)
        if live is None:
            return AdmitScheduledResult(reason=f"journey {request.journey_key} is not live")
        version, journey = live
        trigger = journey.trigger
        if not isinstance(trigger, ScheduleTrigger):
            return AdmitScheduledResult(
                reason=f"journey {journey.key} v{version} does not enter by a schedule"
            )
        fire = fire_key(request.fire)
        result = AdmitScheduledResult()
        client = activity.client()
        # A retried attempt goes on after the last member the previous one got to (the
        # earlier ones would be found entered anyway; this only saves the lookups).
        details = activity.info().heartbeat_details
        after: str | None = str(details[0]) if details else None
        while True:
            page = await asyncio.to_thread(self._members, trigger.segment, after)
            if not page:
                return result
            await self._enter(client, journey, version, trigger, fire, page, result)
            after = page[-1]
            activity.heartbeat(after)

    def _members(self, segment: str, after: str | None) -> list[str]:
        with self._db.transaction() as session:
            return [c for c, _ in segments_store.members(session, segment, after=after, limit=PAGE)]

    async def _enter(
        self,
        client: Client,
        journey: Journey,
        version: int,
        trigger: ScheduleTrigger,
        fire: str,
        page: list[str],
        result: AdmitScheduledResult,
    ) -> None:
        names = run_names(client)
        ids = {names.workflow_id(journey.key, contact_id, fire): contact_id for contact_id in page}
        result.members += len(ids)
        # One query finds the members this fire entered already (a retry's common case).
        existing = await asyncio.to_thread(runs_begun, self._db, list(ids))
        result.already += len(existing & ids.keys())
        due = [w for w in ids if w not in existing]
        if not due:
            return
        async with self._db.held_connection() as connection:
            now = datetime.now(UTC)
            # Under the page's run locks: a concurrent attempt of this fire waits, then finds
            # these runs and starts nothing.
            fresh = await in_held_transaction(connection, lock_fresh, due)
            result.already += len(due) - len(fresh)
            members = [ids[w] for w in due if w in fresh]
            refusals, contacts = await in_held_transaction(
                connection, _refusals_and_contacts, journey, members, now
            )
            result.skipped += len(refusals)
            entries = [
                Entry(contacts[c], entry_event(journey, trigger, c, fire))
                for c in members
                if c not in refusals
            ]
            outcomes = await start_entries(
                client,
                connection,
                journey=journey,
                version=version,
                entries=entries,
                task_queue=self._settings.task_queue,
                buffer_size=self._settings.event_buffer_size,
            )
        entered, refused = tally(entries, outcomes)
        result.entered += entered
        result.refused.extend(refused)


def _refusals_and_contacts(
    connection: Connection, journey: Journey, members: list[str], now: datetime
) -> tuple[dict[str, str], dict[str, ContactSnapshot]]:
    """The members the journey's re-entry rule turns away (over all their runs of it), and
    the snapshots of the others, read in the page's transaction."""
    refusals = enrollments_store.journey_re_entry_refusals(
        connection, journey.key, members, journey.re_entry, now
    )
    entering = [c for c in members if c not in refusals]
    return refusals, contacts_store.load_snapshots(connection, entering)
