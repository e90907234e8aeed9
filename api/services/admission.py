"""Entries their starter admits: the re-entry rule checked and the enrollment recorded in the
starter's transaction, so the run begins without a local activity of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from temporalio.client import Client, WorkflowHandle

# The batch form lives with the activities, whose bulk entries (dates) use it too.
from temporal_journeys.activities.batch_admission import (
    STARTS_IN_FLIGHT as STARTS_IN_FLIGHT,
)
from temporal_journeys.activities.batch_admission import UNREACHABLE as UNREACHABLE
from temporal_journeys.activities.batch_admission import Entry as Entry
from temporal_journeys.activities.batch_admission import (
    in_held_transaction as in_held_transaction,
)
from temporal_journeys.activities.batch_admission import start_entries as start_entries
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.workflows.starter import (
    correlation_of,
    entry_id_of,
    run_names,
    start_run,
)
from temporal_journeys.workflows.types import Admission


async def start_entry(
    client: Client,
    connection: Connection,
    *,
    journey: Journey,
    version: int,
    contact: ContactSnapshot,
    task_queue: str,
    event: JourneyEvent | None = None,
    **options: Any,
) -> WorkflowHandle:
    """``start_run``, admitting the entry here when the database can vouch for the rule.

    The caller commits ``connection`` after the start: the advisory lock taken by
    ``admissible`` lasts until then, and the enrollment row is written before it goes."""
    now = datetime.now(UTC)
    correlation = correlation_of(journey, event)
    run_workflow_id = run_names(client).workflow_id(journey.key, contact.id, correlation)
    admitted = enrollments_store.admissible(connection, run_workflow_id, journey.re_entry, now)
    handle = await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact.id,
        task_queue=task_queue,
        event=event,
        admission=Admission(contact=contact, entered_at=now) if admitted else None,
        **options,
    )
    enrollments_store.record_start(
        connection,
        enrollment_id=entry_id_of(handle),
        workflow_id=handle.id,
        journey_key=journey.key,
        version=version,
        contact_id=contact.id,
        correlation=correlation,
        step=journey.steps[0].id,
        at=now,
        entered=admitted,
    )
    return handle
