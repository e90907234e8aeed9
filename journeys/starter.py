"""Putting a contact into a journey: one run per (journey, contact[, correlation])."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from journeys import search_attributes as sa
from journeys.records import JourneyEvent
from journeys.spec import EventTrigger, Journey
from workflows.types import INTERPRETER, Admission, JourneyInput

WORKFLOW_NAME = "Journey"
EVENT_SIGNAL = "event"


class CannotEnroll(ValueError):
    """The event lacks what the journey needs to key its run."""


def workflow_id(journey_key: str, contact_id: str, correlation: str | None = None) -> str:
    base = f"journey/{journey_key}/{contact_id}"
    return f"{base}/{correlation}" if correlation is not None else base


def correlation_of(journey: Journey, event: JourneyEvent | None) -> str | None:
    trigger = journey.trigger
    if not isinstance(trigger, EventTrigger) or trigger.correlate is None:
        return None
    value = (event.properties if event else {}).get(trigger.correlate)
    if value is None or value == "":
        raise CannotEnroll(f"journey {journey.key} is keyed by `{trigger.correlate}`, not given")
    return str(value)


async def start_run(
    client: Client,
    *,
    journey: Journey,
    version: int,
    contact_id: str,
    task_queue: str,
    event: JourneyEvent | None = None,
    buffer_size: int = 100,
    continue_as_new_after: int | None = None,
    rpc_timeout: timedelta | None = None,
    admission: Admission | None = None,
) -> WorkflowHandle:
    """Signal-with-start: a second trigger while the run is alive reaches it as an event,
    so two concurrent triggers make one run; after it ended, a new run begins and applies
    the journey's re-entry rule itself, unless the starter admitted it
    (``journeys.admission``)."""
    correlation = correlation_of(journey, event)
    run_input = JourneyInput(
        journey=journey,
        version=version,
        contact_id=contact_id,
        trigger=event,
        correlation=correlation,
        buffer_size=buffer_size,
        continue_as_new_after=continue_as_new_after,
        admission=admission,
        interpreter=INTERPRETER,
    )
    return await client.start_workflow(
        WORKFLOW_NAME,
        run_input,
        id=workflow_id(journey.key, contact_id, correlation),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.JOURNEY_KEY, journey.key),
                SearchAttributePair(sa.JOURNEY_VERSION, version),
                SearchAttributePair(sa.CONTACT_ID, contact_id),
                SearchAttributePair(sa.STEP, journey.steps[0].id),
                SearchAttributePair(sa.STATUS, "running"),
            ]
        ),
        static_summary=f"{journey.name} (v{version}) for contact {contact_id}",
        start_signal=EVENT_SIGNAL if event is not None else None,
        start_signal_args=[event] if event is not None else [],
        rpc_timeout=rpc_timeout,
    )
