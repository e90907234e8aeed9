"""Contacts as the API shows them, where they are in journeys, and erasure."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import NotFound
from api.schemas import ContactOut, EnrollmentOut
from store.db import Database
from store.models import Contact, Enrollment, Event, Message, OutboxEntry, StepEvent, utcnow
from workflows.types import RunView


def _contact(session: Session, contact_id: str) -> Contact:
    contact = session.get(Contact, contact_id)
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
    )


async def _end_run(client: Client, workflow_id: str) -> None:
    """Ask the run to exit, so it records its end; terminate it if it cannot answer."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        await handle.execute_update("exit", "contact erased", rpc_timeout=timedelta(seconds=10))
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
    with db.transaction() as session:
        _contact(session, contact_id)
        rows = list(
            session.scalars(
                select(Enrollment)
                .where(Enrollment.contact_id == contact_id)
                .order_by(Enrollment.started_at)
            )
        )
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


async def _live(client: Client, item: EnrollmentOut) -> None:
    """Best effort: what the live run says it waits for (needs a worker to answer)."""
    try:
        view = await client.get_workflow_handle(item.workflow_id).query(
            "state", result_type=RunView, rpc_timeout=timedelta(seconds=2)
        )
    except Exception:  # no worker, or the run just ended: the stored row stands
        return
    item.step, item.waiting_for, item.until = view.step, view.waiting_for, view.until


async def erase(db: Database, client: Client | None, contact_id: str) -> int:
    """End the contact's runs and remove their personal data; funnel counts stay, unlinked."""
    with db.transaction() as session:
        _contact(session, contact_id)
        running = list(
            session.scalars(
                select(Enrollment.workflow_id).where(
                    Enrollment.contact_id == contact_id, Enrollment.status == "running"
                )
            )
        )
    if running and client is None:
        raise RPCError(
            "Temporal is unreachable; cannot end the contact's runs", RPCStatusCode.UNAVAILABLE, b""
        )
    for workflow_id in running:
        await _end_run(client, workflow_id)  # type: ignore[arg-type]
    pseudonym = "erased:" + hashlib.sha256(contact_id.encode()).hexdigest()[:16]
    with db.transaction() as session:
        session.execute(delete(OutboxEntry).where(OutboxEntry.contact_id == contact_id))
        session.execute(delete(Event).where(Event.contact_id == contact_id))
        session.execute(delete(Message).where(Message.contact_id == contact_id))
        session.execute(
            update(StepEvent).where(StepEvent.contact_id == contact_id).values(contact_id=pseudonym)
        )
        session.execute(
            update(Enrollment)
            .where(Enrollment.contact_id == contact_id, Enrollment.status == "running")
            .values(status="exited", exit_reason="contact erased", ended_at=utcnow())
        )
        session.execute(
            update(Enrollment)
            .where(Enrollment.contact_id == contact_id)
            .values(contact_id=pseudonym)
        )
        session.execute(delete(Contact).where(Contact.id == contact_id))
    return len(running)
