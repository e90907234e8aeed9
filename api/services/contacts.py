"""Contacts as the API shows them, where they are in journeys, and erasure."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.errors import NotFound
from temporal_journeys.api.schemas import ContactOut, EnrollmentOut, ErasureOut
from temporal_journeys.api.services import consent
from temporal_journeys.journeys import topics
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import outbox
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Enrollment, utcnow
from temporal_journeys.workflows.codec import EncryptionCodec
from temporal_journeys.workflows.contract import EXIT_UPDATE, STATE_QUERY
from temporal_journeys.workflows.starter import names_of
from temporal_journeys.workflows.types import RunView


def _contact(session: Session, contact_id: str) -> Contact:
    contact = contacts_store.get(session, contact_id)
    if contact is None:
        raise NotFound(f"contact {contact_id!r}")
    return contact


def get(session: Session, contact_id: str) -> ContactOut:
    c = _contact(session, contact_id)
    return ContactOut(
        id=c.id,
        email=c.email,
        phone=c.phone,
        timezone=c.timezone,
        traits=c.traits or {},
        tags=c.tags or [],
        scores=c.scores or {},
        unsubscribed=c.unsubscribed or [],
        created_at=c.created_at,
        subscriptions={t.key: t.subscribed for t in consent.topic_choices(session, c.id)},
    )


def set_topics(session: Session, contact_id: str, body: object) -> ContactOut:
    """Record choices given as ``{topic: true|false}`` (support staff acting on a request);
    422 naming ``$.<topic>`` for a topic nobody defined."""
    choices = topics.parse_choices(body, "$", topics_store.keys(session))
    contact = contacts_store.get(session, contact_id, for_update=True)
    if contact is None:
        raise NotFound(f"contact {contact_id!r}")
    consent.set_topics(session, contact.id, choices, "api", utcnow())
    return get(session, contact_id)


async def _end_run(client: Client, workflow_id: str) -> None:
    """Ask the run to exit, so it records its end; terminate it if it cannot answer."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.execute_update(
            EXIT_UPDATE, "contact erased", rpc_timeout=timedelta(seconds=10)
        )
        return
    except WorkflowUpdateFailedError:
        return  # it was ending already
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return
    try:
        await handle.terminate(reason="contact erased")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def journeys_of(db: Database, client: Client | None, contact_id: str) -> list[EnrollmentOut]:
    rows = await db.run(_enrollments, contact_id)
    out = [
        EnrollmentOut(
            journey=r.journey_key,
            version=r.version,
            workflow_id=r.workflow_id,
            status=r.status,
            step=r.current_step,
            variant=r.variant,
            converted=r.converted,
            reason=r.exit_reason,
            started_at=r.started_at,
            ended_at=r.ended_at,
        )
        for r in rows
    ]
    if client is not None:
        await asyncio.gather(*(_live(client, item) for item in out if item.status == "running"))
    return out


def _enrollments(session: Session, contact_id: str) -> list[Enrollment]:
    _contact(session, contact_id)
    return enrollments_store.of_contact(session, contact_id)


def _running(session: Session, contact_id: str) -> list[str]:
    _contact(session, contact_id)
    return [e.workflow_id for e in enrollments_store.running_for(session, [contact_id])]


async def _live(client: Client, item: EnrollmentOut) -> None:
    """Best effort: what the live run says it waits for (needs a worker to answer)."""
    try:
        view = await client.get_workflow_handle(item.workflow_id).query(
            STATE_QUERY, result_type=RunView, rpc_timeout=timedelta(seconds=2)
        )
    except Exception:  # no worker, or the run just ended: the stored row stands
        return
    item.step, item.waiting_for, item.until = view.step, view.waiting_for, view.until


async def erase(
    db: Database, client: Client | None, codec: EncryptionCodec | None, contact_id: str
) -> ErasureOut:
    """End the contact's runs and remove their personal data; funnel counts stay, unlinked.
    With encryption on, the contact's data key goes too, and with it what Temporal's histories
    hold of the contact. The key goes before the rows: should deleting them fail, the contact is
    still there to erase again."""
    running = await db.run(_running, contact_id)
    if running and client is None:
        raise RPCError(
            "Temporal is unreachable; cannot end the contact's runs", RPCStatusCode.UNAVAILABLE, b""
        )
    for workflow_id in running:
        await _end_run(client, workflow_id)  # type: ignore[arg-type]
    key_destroyed = False
    if codec is not None and codec.contact_keys is not None:
        contact = names_of(codec).shown(contact_id)
        key_destroyed = await asyncio.to_thread(codec.contact_keys.destroy, contact)
    pseudonym = "erased:" + hashlib.sha256(contact_id.encode()).hexdigest()[:16]
    deleted = await db.run(_remove_all, contact_id, pseudonym)
    return ErasureOut(runs_ended=len(running), rows_deleted=deleted, key_destroyed=key_destroyed)


def _remove_all(session: Session, contact_id: str, pseudonym: str) -> dict[str, int]:
    """The contact's rows, and its enrollments unlinked (the funnel counts stay)."""
    deleted = {
        "outbox": outbox.remove_for_contact(session, contact_id),
        "events": events_store.remove_for_contact(session, contact_id),
        # Before the messages: their per-device records are found through them.
        "devices": devices_store.remove_for_contact(session, contact_id),
        "messages": messages_store.remove_for_contact(session, contact_id),
        "topics": topics_store.remove_for_contact(session, contact_id),
        "segments": segments_store.remove_for_contact(session, contact_id),
        "broadcasts": broadcasts_store.remove_for_contact(session, contact_id),
    }
    enrollments_store.unlink_contact(session, contact_id, pseudonym, utcnow())
    deleted["contact"] = contacts_store.remove(session, contact_id)
    return deleted
