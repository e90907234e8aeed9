"""Rows as runs leave them, for stats tests that need exact counts per variant (a split assigns
variants at random): an enrollment as the workflow records it and its send step's message as
the send activity leaves it once the provider took it, keyed as the workflow keys them
(``{workflow id}/{entry id}/{step}/{visit}``). What then happens to the messages comes from
signed SendGrid webhooks posted to the API, as in production."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from tests.support import signed_webhooks as sw


@dataclass(frozen=True)
class Sent:
    message_id: str
    contact_id: str
    email: str


def sent(
    db: Database,
    journey_key: str,
    step: str,
    variant: str | None,
    *,
    version: int = 1,
    at: datetime | None = None,
    status: str = "sent",
    error: str | None = None,
    test: bool = False,
    converted: bool = False,
) -> Sent:
    """One run of ``journey_key`` in ``variant`` that entered ``step`` and sent its message
    (or had it ``skipped``/``failed`` with ``error``) at ``at``."""
    moment = at or datetime.now(UTC)
    contact = f"stats-{uuid.uuid4().hex[:10]}"
    entry = str(uuid.uuid4())
    workflow_id = f"journey/{journey_key}/{contact}"
    message_id = "msg_" + uuid.uuid4().hex[:24]
    # The enrollment and its funnel rows as the run's progress write leaves them (with the
    # step counters it keeps); the message as the send activity does.
    entries = [TraceEntry(seq=1, at=moment, step=step, kind="entered")]
    if converted:
        entries.append(TraceEntry(seq=2, at=moment, step=step, kind="converted"))
    with db.connection() as connection:
        enrollments_store.write_progress(
            connection,
            enrollment_id=entry,
            workflow_id=workflow_id,
            journey_key=journey_key,
            version=version,
            contact_id=contact,
            correlation=None,
            started_at=moment,
            entries=entries,
            status="converted" if converted else "running",
            step=None if converted else step,
            variant=variant,
            reason=None,
        )
    with db.transaction() as session:
        message = Message(
            id=message_id,
            idempotency_key=f"{workflow_id}/{entry}/{step}/1",
            contact_id=contact,
            journey_key=journey_key,
            version=version,
            step_id=step,
            workflow_id=workflow_id,
            channel="email",
            template="stats-template",
            provider="sendgrid",
            to_address=f"{contact}@example.com",
            provider_message_id=uuid.uuid4().hex[:22],
            status_history=[],
            sent_at=moment if status == "sent" else None,
            created_at=moment,
            error=error,
            test=test,
            variant=variant,
        )
        messages_store.add_status(message, "pending", moment)
        messages_store.add_status(message, status, moment)
        session.add(message)
    return Sent(message_id, contact, f"{contact}@example.com")


async def post_sendgrid(
    http: httpx.AsyncClient,
    signer: sw.SendGridSigner,
    events: Iterable[tuple[Sent, str]],
    **fields: Any,
) -> dict[str, int]:
    """Post SendGrid Event Webhook events (``(message, "open")`` ...) in one signed batch;
    each gets an sg_event_id of its own, so two opens of one message are two events."""
    body = sw.sendgrid_body(
        [
            sw.sendgrid_event(kind, message.message_id, email=message.email, **fields)
            for message, kind in events
        ]
    )
    response = await http.post("/v1/webhooks/sendgrid", content=body, headers=signer.headers(body))
    assert response.status_code == 200, response.text
    return response.json()
