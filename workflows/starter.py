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


HASH_HEX_CHARS = 32  # 128 bits of HMAC-SHA256: collisions are out of reach at any scale


@dataclass(frozen=True)
class RunNames:
    """What runs show of a contact: in workflow ids, ``JourneyContactId`` and the start's
    summary. Verbatim without a key; with one (encryption on), a keyed hash, so that nothing
    Temporal indexes or lists unencrypted holds a userId (often an email) or a correlation
    value. The hash is stable for a given key, which keeps signal-with-start and re-entry
    working: the same contact always reaches the same workflow id."""

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
    return await client.start_workflow(
        WORKFLOW_NAME,
        run_input,
        id=names.workflow_id(journey.key, contact_id, correlation),
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
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
        start_signal=EVENT_SIGNAL if event is not None else None,
        start_signal_args=[event] if event is not None else [],
        rpc_timeout=rpc_timeout,
    )
