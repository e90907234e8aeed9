"""Activities that read and change contacts and their journeys' bookkeeping."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sqlalchemy.orm import Session
from temporalio import activity

from activities.types import (
    BEGIN_ENROLLMENT,
    LOAD_CONDITION_DATA,
    RECORD_PROGRESS,
    UPDATE_CONTACT,
    BeginEnrollmentInput,
    BeginEnrollmentResult,
    ConditionData,
    EnrollmentRef,
    LoadConditionDataInput,
    RecordProgressInput,
    UpdateContactInput,
)
from journeys.records import ContactSnapshot
from store import contacts as contacts_store
from store import enrollments as enrollments_store
from store import events as events_store
from store.db import Database
from store.models import Enrollment


class ContactActivities:
    def __init__(self, db: Database) -> None:
        self._db = db

    @activity.defn(name=BEGIN_ENROLLMENT)
    async def begin_enrollment(self, request: BeginEnrollmentInput) -> BeginEnrollmentResult:
        return await asyncio.to_thread(self._begin, request)

    def _begin(self, request: BeginEnrollmentInput) -> BeginEnrollmentResult:
        with self._db.transaction() as session:
            refusal = enrollments_store.re_entry_refusal(
                session,
                request.workflow_id,
                request.enrollment_id,
                request.re_entry,
                request.started_at,
            )
            if refusal is not None:
                enrollments_store.mark_skipped(
                    session, request.enrollment_id, refusal, request.started_at
                )
                return BeginEnrollmentResult(allowed=False, reason=refusal)
            contact = contacts_store.get_or_create(session, request.contact_id)
            enrollment = _enrollment(session, request, request.correlation, request.started_at)
            enrollments_store.record_progress(
                session,
                enrollment,
                request.entries,
                status="running",
                step=request.entries[-1].step if request.entries else None,
                variant=None,
                reason=None,
                version=request.version,
            )
            return BeginEnrollmentResult(allowed=True, contact=contacts_store.snapshot(contact))

    @activity.defn(name=RECORD_PROGRESS)
    async def record_progress(self, request: RecordProgressInput) -> None:
        await asyncio.to_thread(self._record, request)

    def _record(self, request: RecordProgressInput) -> None:
        with self._db.transaction() as session:
            started = request.entries[0].at if request.entries else activity.info().started_time
            enrollment = _enrollment(session, request, None, started)
            enrollments_store.record_progress(
                session,
                enrollment,
                request.entries,
                status=request.status,
                step=request.step,
                variant=request.variant,
                reason=request.reason,
                version=request.version,
            )

    @activity.defn(name=LOAD_CONDITION_DATA)
    async def load_condition_data(self, request: LoadConditionDataInput) -> ConditionData:
        return await asyncio.to_thread(self._load, request)

    def _load(self, request: LoadConditionDataInput) -> ConditionData:
        with self._db.transaction() as session:
            contact = contacts_store.get_or_create(session, request.contact_id)
            counts = {
                query.cache_key(): events_store.count(
                    session,
                    request.contact_id,
                    query.event,
                    request.now - query.within if query.within else None,
                )
                for query in request.history
            }
            return ConditionData(contact=contacts_store.snapshot(contact), history=counts)

    @activity.defn(name=UPDATE_CONTACT)
    async def update_contact(self, request: UpdateContactInput) -> ContactSnapshot:
        return await asyncio.to_thread(self._update, request)

    def _update(self, request: UpdateContactInput) -> ContactSnapshot:
        with self._db.transaction() as session:
            contact = contacts_store.apply_update(
                session, request.contact_id, request.update, request.operation_key
            )
            return contacts_store.snapshot(contact)


def _enrollment(
    session: Session, ref: EnrollmentRef, correlation: str | None, started_at: datetime
) -> Enrollment:
    """The enrollment row, written now if the run is the first to report."""
    return enrollments_store.begin(
        session,
        enrollment_id=ref.enrollment_id,
        workflow_id=ref.workflow_id,
        journey_key=ref.journey_key,
        version=ref.version,
        contact_id=ref.contact_id,
        correlation=correlation,
        started_at=started_at,
    )
