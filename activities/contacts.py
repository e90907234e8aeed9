"""Activities that read and change contacts and their journeys' bookkeeping."""

from __future__ import annotations

import asyncio
from datetime import datetime

from temporalio import activity

from temporal_journeys.activities.progress import ProgressWriter
from temporal_journeys.journeys.records import ContactSnapshot
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.activity_types import (
    BEGIN_ENROLLMENT,
    LOAD_CONDITION_DATA,
    RECORD_PROGRESS,
    UPDATE_CONTACT,
    BeginEnrollmentInput,
    BeginEnrollmentResult,
    ConditionData,
    LoadConditionDataInput,
    RecordProgressInput,
    UpdateContactInput,
)


class ContactActivities:
    def __init__(self, db: Database, progress: ProgressWriter | None = None) -> None:
        self._db = db
        self._progress = progress or ProgressWriter(db)

    @activity.defn(name=BEGIN_ENROLLMENT)
    async def begin_enrollment(self, request: BeginEnrollmentInput) -> BeginEnrollmentResult:
        return await asyncio.to_thread(self._begin, request)

    def _begin(self, request: BeginEnrollmentInput) -> BeginEnrollmentResult:
        # Core statements on one connection: the ORM's unit of work cost more CPU than the
        # statements themselves on this hot path (about four calls per contact).
        with self._db.connection() as connection:
            refusal = enrollments_store.re_entry_refusal(
                connection,
                request.workflow_id,
                request.enrollment_id,
                request.re_entry,
                request.started_at,
            )
            if refusal is not None:
                enrollments_store.mark_skipped(
                    connection, request.enrollment_id, refusal, request.started_at
                )
                return BeginEnrollmentResult(allowed=False, reason=refusal)
            contact = contacts_store.load_snapshot(connection, request.contact_id)
            enrollments_store.write_progress(
                connection,
                **request.ref(),
                correlation=request.correlation,
                started_at=request.started_at,
                entries=request.entries,
                status="running",
                step=request.entries[-1].step if request.entries else None,
                variant=None,
                reason=None,
            )
            return BeginEnrollmentResult(allowed=True, contact=contact)

    @activity.defn(name=RECORD_PROGRESS)
    async def record_progress(self, request: RecordProgressInput) -> None:
        await self._progress.record(request)

    @activity.defn(name=LOAD_CONDITION_DATA)
    async def load_condition_data(self, request: LoadConditionDataInput) -> ConditionData:
        return await asyncio.to_thread(self._load, request)

    def _load(self, request: LoadConditionDataInput) -> ConditionData:
        with self._db.connection() as connection:
            contact = contacts_store.load_snapshot(connection, request.contact_id)
            # Branches may ask `{segment: KEY}`: the memberships as of now, recorded with the rest.
            segments = segments_store.keys_of(connection, request.contact_id)
            contact = contact.model_copy(update={"segments": segments})
            counts: dict[str, int] = {}
            for query in request.history:
                counts[query.cache_key()] = events_store.count(
                    connection,
                    request.contact_id,
                    query.event,
                    request.now - query.within if query.within else None,
                )
            return ConditionData(contact=contact, history=counts)

    @activity.defn(name=UPDATE_CONTACT)
    async def update_contact(self, request: UpdateContactInput) -> ContactSnapshot:
        # The server's clock (the run's, under time skipping too): segment windows end there
        # and the segment events carry it.
        now = activity.info().current_attempt_scheduled_time
        return await asyncio.to_thread(self._update, request, now)

    def _update(self, request: UpdateContactInput, now: datetime) -> ContactSnapshot:
        with self._db.transaction() as session:
            contact = contacts_store.apply_update(
                session, request.contact_id, request.update, request.operation_key
            )
            # Segments the step can move the contact in or out of, in the write's transaction
            # (as identify and track do): the contact is locked by apply_update, and a retry
            # whose first attempt committed finds nothing left to change.
            update = request.update
            session.flush()
            segments_store.react(
                session,
                profile={request.contact_id: set(update.attributes)},
                events=(),
                now=now,
                state=[request.contact_id]
                if update.add_tags or update.remove_tags or update.score
                else (),
            )
            return contacts_store.snapshot(contact)
