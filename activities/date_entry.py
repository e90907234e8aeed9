"""The activity behind each fire of a journey's date schedule: find who is due, enter them.

One set-based query narrows the contacts to the days a window can concern; each candidate's
exact moment is then decided in its own zone (``timing.date_occurrences_between``); due
contacts are started in batches, each batch in one transaction that holds its runs' locks,
admits the entries (``activities/batch_admission.py``: the re-entry rule checked for the whole
batch, the runs started concurrently, the enrollments recorded in one INSERT).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, datetime

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
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import DateAttributeTrigger, Journey
from temporal_journeys.journeys.timing import date_keys_between, date_occurrences_between, zone
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import date_entry as date_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.date_entry import (
    ADMIT_DATE_ENTRIES,
    DATE_EVENT,
    AdmitDatesInput,
    AdmitDatesResult,
)
from temporal_journeys.workflows.starter import run_names

log = logging.getLogger("journeys.date_entry")
BATCH = 50
"""Contacts started per transaction: a commit per batch, and no lock held for a whole fire."""


@dataclass(frozen=True)
class Due:
    contact: ContactSnapshot
    date: str
    occurrence: date
    moment: datetime


def contact_zone(stored: str | None, default: str) -> str:
    """The contact's zone when it names one, else the settings' default."""
    if stored and zone(stored).key == stored:
        return stored
    return default


def find_due(
    connection: Connection,
    trigger: DateAttributeTrigger,
    after: datetime,
    until: datetime,
    default_zone: str,
) -> list[Due]:
    """Every contact whose date's moment falls in ``(after, until]`` in their own zone."""
    keys = date_keys_between(after, until, trigger.at, trigger.offset, trigger.yearly)
    rows = date_store.candidates(connection, trigger.date_attribute, keys, yearly=trigger.yearly)
    due = []
    for row in rows:
        tz = contact_zone(row.timezone, default_zone)
        for occurrence, moment in date_occurrences_between(
            row.date, tz, trigger.at, trigger.offset, trigger.yearly, after, until
        ):
            contact = contacts_store.snapshot(row).model_copy(update={"timezone": tz})
            due.append(Due(contact, str(row.date), occurrence, moment))
    return due


def entry_event(journey: Journey, trigger: DateAttributeTrigger, due: Due) -> JourneyEvent:
    """The run's trigger: its id is the same for every fire that finds this occurrence, so a
    start that reaches the running run is dropped there as a duplicate."""
    return JourneyEvent(
        id=f"date:{journey.key}:{due.occurrence.isoformat()}:{due.contact.id}",
        name=DATE_EVENT,
        properties={
            "date_attribute": trigger.date_attribute,
            "date": due.date,
            "occurrence": due.occurrence.isoformat(),
            "moment": due.moment.isoformat(),
        },
        timestamp=due.moment,
    )


class DateEntryActivities:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @activity.defn(name=ADMIT_DATE_ENTRIES)
    async def admit_date_entries(self, request: AdmitDatesInput) -> AdmitDatesResult:
        live = await asyncio.to_thread(live_journey, self._db, request.journey_key)
        if live is None:
            return AdmitDatesResult(reason=f"journey {request.journey_key} is not live")
        version, journey = live
        trigger = journey.trigger
        if not isinstance(trigger, DateAttributeTrigger):
            return AdmitDatesResult(
                reason=f"journey {journey.key} v{version} does not enter by a date attribute"
            )
        due = await asyncio.to_thread(self._find, trigger, request.after, request.until)
        result = AdmitDatesResult(due=len(due))
        # A retried attempt goes on after the last batch the previous one committed (all
        # earlier contacts would be found entered anyway; this only saves the lookups).
        details = activity.info().heartbeat_details
        start = int(details[0]) if details else 0
        client = activity.client()
        for first in range(start, len(due), BATCH):
            await self._enter(client, journey, version, trigger, due[first : first + BATCH], result)
            activity.heartbeat(first + BATCH)
        return result

    def _find(self, trigger: DateAttributeTrigger, after: datetime, until: datetime) -> list[Due]:
        with self._db.connection() as connection:
            return find_due(connection, trigger, after, until, self._settings.default_timezone)

    async def _enter(
        self,
        client: Client,
        journey: Journey,
        version: int,
        trigger: DateAttributeTrigger,
        batch: list[Due],
        result: AdmitDatesResult,
    ) -> None:
        """The batch in one transaction that holds its runs' locks: a concurrent fire for the
        same occurrences waits for it, then finds their rows and starts nothing. Entries are
        admitted for the whole batch at once (``start_entries``)."""
        names = run_names(client)
        ids = {
            names.workflow_id(journey.key, d.contact.id, d.occurrence.isoformat()): d for d in batch
        }
        existing = await asyncio.to_thread(runs_begun, self._db, list(ids))
        result.already += len(existing & ids.keys())
        due = {w: d for w, d in ids.items() if w not in existing}
        if not due:
            return
        async with self._db.held_connection() as connection:
            fresh = await in_held_transaction(connection, lock_fresh, list(due))
            result.already += len(due) - len(fresh)
            entries = [
                Entry(d.contact, entry_event(journey, trigger, d))
                for w, d in due.items()
                if w in fresh
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


def lock_fresh(connection: Connection, workflow_ids: list[str]) -> set[str]:
    """Those of ``workflow_ids`` no entry was recorded under, once their locks are held (they
    are until the transaction ends). Shared with scheduled entry."""
    enrollments_store.lock_all(connection, workflow_ids)
    return set(workflow_ids) - date_store.existing_runs(connection, workflow_ids)
