"""Entries their starter admits: the re-entry rule checked and the enrollment recorded in the
starter's transaction, so the run begins without a local activity of its own."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection
from temporalio.client import Client, WorkflowHandle

from journeys.records import ContactSnapshot, JourneyEvent
from journeys.spec import Journey
from journeys.starter import correlation_of, start_run, workflow_id
from store import enrollments as enrollments_store
from workflows.types import Admission


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
    run_workflow_id = workflow_id(journey.key, contact.id, correlation)
    admitted = enrollments_store.admissible(connection, run_workflow_id, journey.re_entry, now)
    handle = await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact.id,
        task_queue=task_queue,
        event=event,
        admission=Admission(contact=contact) if admitted else None,
        **options,
    )
    assert handle.result_run_id is not None  # a start answers the run it began or reached
    enrollments_store.record_start(
        connection,
        enrollment_id=handle.result_run_id,
        workflow_id=handle.id,
        journey_key=journey.key,
        version=version,
        contact_id=contact.id,
        correlation=correlation,
        step=journey.steps[0].id,
        at=now,
    )
    return handle
