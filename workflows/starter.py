"""Putting a contact into a journey: one run per (journey, contact[, correlation])."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.converter import PayloadCodec
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.spec import (
    DateAttributeTrigger,
    EventTrigger,
    Journey,
    ScheduleTrigger,
)
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.codec import EncryptionCodec
from temporal_journeys.workflows.contract import EVENT_SIGNAL, WORKFLOW_NAME
from temporal_journeys.workflows.date_entry import occurrence_of
from temporal_journeys.workflows.limits import too_big_to_carry

# Callers name and read runs through the starter: RunId and parse_workflow_id are re-exported.
from temporal_journeys.workflows.run_ids import RunId as RunId
from temporal_journeys.workflows.run_ids import parse_workflow_id as parse_workflow_id
from temporal_journeys.workflows.run_ids import workflow_id
from temporal_journeys.workflows.scheduled_entry import fire_of
from temporal_journeys.workflows.types import INTERPRETER, Admission, JourneyInput


class CannotEnroll(ValueError):
    """The event lacks what the journey needs to key its run."""


# Starts that may each meet a run ending under them before one begins or reaches a run.
START_ATTEMPTS = 5

HASH_HEX_CHARS = 32  # 128 bits of HMAC-SHA256: collisions are out of reach at any scale


@dataclass(frozen=True)
class RunNames:
    """What runs show of a contact: in workflow ids, ``JourneyContactId`` and the start's
    summary. Verbatim without a key; with one (encryption on), a keyed hash, so that nothing
    Temporal indexes or lists unencrypted holds a userId (often an email) or a correlation
    value. The hash is stable for a given key, which keeps a second trigger reaching the run
    alive, and re-entry, working: the same contact always reaches the same workflow id."""

    key: bytes | None = field(default=None, repr=False)  # a secret: kept out of logs

    def shown(self, value: str, *, kind: Literal["contact", "correlation"] = "contact") -> str:
        if self.key is None:
            return value
        # The kind keeps a correlation value from hashing like the same string as a userId.
        digest = hmac.new(self.key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()
        return digest[:HASH_HEX_CHARS]

    def workflow_id(self, journey_key: str, contact_id: str, correlation: str | None = None) -> str:
        shown = None if correlation is None else self.shown(correlation, kind="correlation")
        return workflow_id(journey_key, self.shown(contact_id), shown)


def run_names(client: Client) -> RunNames:
    """Hashed exactly when ``client`` encrypts payloads, with the codec's id key
    (``JOURNEYS_ID_HASH_KEY``), so every starter of a deployment names a contact's runs alike."""
    return names_of(client.data_converter.payload_codec)


def names_of(codec: PayloadCodec | None) -> RunNames:
    return RunNames(codec.id_key) if isinstance(codec, EncryptionCodec) else RunNames()


def correlation_of(journey: Journey, event: JourneyEvent | None) -> str | None:
    trigger = journey.trigger
    if isinstance(trigger, DateAttributeTrigger):
        # One run per occurrence of the date (journey/<key>/<contact>/<occurrence>), so each
        # birthday enters once; an entry by API carries none and keys the run by contact.
        return occurrence_of(event)
    if isinstance(trigger, ScheduleTrigger):
        # One run per fire (journey/<key>/<contact>/<fire>), so a retried fire enters once.
        return fire_of(event)
    if not isinstance(trigger, EventTrigger) or trigger.correlate is None:
        return None
    value = (event.properties if event else {}).get(trigger.correlate)
    if value is None or value == "":
        raise CannotEnroll(f"journey {journey.key} is keyed by `{trigger.correlate}`, not given")
    return str(value)


def entry_id_of(handle: WorkflowHandle) -> str:
    """The id the entry a start began or reached is recorded under: the first run's of its
    chain (``JourneyWorkflow._entry_id``), not the latest one's, which a run alive for a while
    may have continued as new into."""
    run_id = handle.first_execution_run_id or handle.result_run_id
    assert run_id is not None  # a start answers the run it began or reached
    return run_id


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
    """Start the run, or hand the event to the one alive under its workflow id: a second
    trigger while the run is alive reaches it as an event, so two concurrent triggers make one
    run; after it ended, a new run begins and applies the journey's re-entry rule itself,
    unless the starter admitted it (``journeys.admission``).

    Not signal-with-start: the event that begins a run is in its input already, and a start
    signal would put it in every run's history a second time (an event, and a signal the run
    drops as seen). A plain start that finds a run alive signals that run instead; if it ended
    meanwhile, the start is tried again and begins a new one."""
    correlation = correlation_of(journey, event)
    names = run_names(client)
    shown = names.shown(contact_id)
    if event is not None and (refusal := too_big_to_carry(event)) is not None:
        # It travels in the run's input: one the worker cannot decode would stick the run.
        raise CannotEnroll(f"event {event.id} cannot begin a run: {refusal}")
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
    target = names.workflow_id(journey.key, contact_id, correlation)
    for _ in range(START_ATTEMPTS):
        try:
            return await client.start_workflow(
                WORKFLOW_NAME,
                run_input,
                id=target,
                task_queue=task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                search_attributes=TypedSearchAttributes(
                    [
                        SearchAttributePair(sa.JOURNEY_KEY, journey.key),
                        SearchAttributePair(sa.JOURNEY_VERSION, version),
                        SearchAttributePair(sa.CONTACT_ID, shown),
                        SearchAttributePair(sa.STEP, journey.steps[0].id),
                        SearchAttributePair(sa.STATUS, "running"),
                    ]
                ),
                static_summary=f"{journey.name} (v{version}) for contact {shown}",
                rpc_timeout=rpc_timeout,
            )
        except WorkflowAlreadyStartedError as alive:
            # The run alive may have continued as new: its chain's first run keys the entry.
            handle = client.get_workflow_handle(
                target, run_id=alive.run_id, first_execution_run_id=alive.first_run_id
            )
            if event is None:
                return handle
            try:
                await handle.signal(EVENT_SIGNAL, event, rpc_timeout=rpc_timeout)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
                continue  # it ended between the start and the signal: start again
            return handle
    raise RuntimeError(f"{target}: each of {START_ATTEMPTS} starts met a run that then ended")
