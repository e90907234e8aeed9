"""Broadcasts: checked, stored, and run by the workflow ``broadcast/<id>``.

Creating one stores its row and starts its workflow in the same transaction (a start Temporal
refuses leaves no row behind). Pause, resume and cancel are updates of that workflow, answered
once the run has recorded them; what GET shows comes from the database: the row's status and
the snapshot's recipients counted by outcome.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.errors import Conflict, NotFound
from temporal_journeys.api.schemas import (
    BroadcastIn,
    BroadcastOut,
    BroadcastRecipientOut,
    BroadcastRecipientsPage,
)
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Broadcast
from temporal_journeys.workflows.broadcast import (
    BROADCAST_WORKFLOW,
    CANCEL,
    PAUSE,
    RESUME,
    BroadcastInput,
    BroadcastPlan,
    Progress,
    workflow_id,
)

MAX_PAGE = 1000
PAST_TOLERANCE = timedelta(minutes=1)
"""A ``send_at`` this little in the past (clock skew, a slow client) means now."""


def _utc(moment: datetime | None) -> datetime | None:
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment


def _problems(session: Session, body: BroadcastIn, now: datetime) -> list[Problem]:
    """Every problem with ``body``, each at its JSON path."""
    problems = []
    if segments_store.get(session, body.segment) is None:
        problems.append(Problem("$.segment", f"unknown segment {body.segment!r}"))
    if (body.template is None) == (body.journey is None):
        problems.append(Problem("$.template", "give either a template or a journey"))
    if body.template is not None:
        template = templates_store.get(session, body.template)
        if template is None:
            problems.append(Problem("$.template", f"unknown template {body.template!r}"))
        elif body.channel is not None and body.channel != template.channel:
            problems.append(
                Problem(
                    "$.channel",
                    f"template {body.template!r} is for {template.channel}, not {body.channel}",
                )
            )
    elif body.channel is not None:
        problems.append(Problem("$.channel", "a channel goes with a template"))
    if body.journey is not None and journeys_store.live_version(session, body.journey) is None:
        problems.append(
            Problem("$.journey", f"journey {body.journey!r} is not published and active")
        )
    if body.topic is not None:
        if body.journey is not None:
            problems.append(
                Problem("$.topic", "a journey's sends name their own topics; give it a template")
            )
        elif topics_store.get(session, body.topic) is None:
            problems.append(Problem("$.topic", f"unknown topic {body.topic!r}"))
    if body.send_at is not None:
        if body.send_at.tzinfo is None:
            problems.append(Problem("$.send_at", "needs a UTC offset, e.g. 2026-12-24T09:00:00Z"))
        elif body.send_at < now - PAST_TOLERANCE:
            problems.append(Problem("$.send_at", f"{body.send_at.isoformat()} is in the past"))
    return problems


async def create(db: Database, client: Client, body: BroadcastIn, task_queue: str) -> BroadcastOut:
    """Refused (422, naming each field) for an unknown segment, template, journey or topic, or
    a ``send_at`` without an offset or in the past."""
    now = datetime.now(UTC)
    broadcast_id = "bc_" + uuid.uuid4().hex[:20]
    async with db.held_transaction() as session:
        problems = _problems(session, body, now)
        if problems:
            raise SpecInvalid(problems)
        channel = body.channel
        if body.template is not None and channel is None:
            template = templates_store.get(session, body.template)
            assert template is not None
            channel = template.channel
        row = broadcasts_store.add(
            session,
            Broadcast(
                id=broadcast_id,
                segment_key=body.segment,
                channel=channel,
                template=body.template,
                journey_key=body.journey,
                topic=body.topic,
                data=body.data,
                send_at=body.send_at,
                local_time=body.local_time,
                rate_per_minute=body.rate_per_minute,
                status="scheduled" if body.send_at is not None else "sending",
                created_at=now,
            ),
        )
        plan = BroadcastPlan(
            id=broadcast_id,
            segment=body.segment,
            channel=channel,  # type: ignore[arg-type]
            template=body.template,
            journey=body.journey,
            topic=body.topic,
            data=body.data,
            send_at=body.send_at,
            local_time=body.local_time,
            rate_per_minute=body.rate_per_minute,
            batch_size=body.batch_size,
        )
        what = f"journey {body.journey}" if body.journey else f"template {body.template}"
        # Started before the row commits: a start Temporal refuses rolls the row back.
        await client.start_workflow(
            BROADCAST_WORKFLOW,
            BroadcastInput(plan=plan),
            id=workflow_id(broadcast_id),
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            static_summary=f"Broadcast {broadcast_id}: {what} to segment {body.segment}",
        )
        return _out(session, row)


def get(session: Session, broadcast_id: str) -> BroadcastOut:
    return _out(session, _row(session, broadcast_id))


def list_all(session: Session, status: str | None, limit: int) -> list[BroadcastOut]:
    return [
        _out(session, row) for row in broadcasts_store.listing(session, status=status, limit=limit)
    ]


def recipients(
    session: Session, broadcast_id: str, after: str | None, limit: int
) -> BroadcastRecipientsPage:
    _row(session, broadcast_id)
    rows = broadcasts_store.recipients(session, broadcast_id, after=after, limit=limit)
    return BroadcastRecipientsPage(
        recipients=[
            BroadcastRecipientOut(
                userId=r.contact_id, status=r.status, due_at=r.due_at, message_id=r.message_id
            )
            for r in rows
        ],
        next=rows[-1].contact_id if len(rows) == limit else None,
    )


async def control(db: Database, client: Client, broadcast_id: str, action: str) -> BroadcastOut:
    """``pause``, ``resume`` or ``cancel``: an update of the run, answered once it holds; 409
    for a broadcast that is over."""
    assert action in (PAUSE, RESUME, CANCEL)
    status = (await db.run(_row, broadcast_id)).status
    if status not in broadcasts_store.LIVE:
        raise Conflict(f"cannot {action}: broadcast {broadcast_id} is {status}")
    handle = client.get_workflow_handle(workflow_id(broadcast_id))
    try:
        await handle.execute_update(action, result_type=Progress)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause.message if exc.cause is not None else str(exc)  # type: ignore[attr-defined]
        raise Conflict(cause) from exc
    except RPCError as exc:
        if exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise Conflict(
                f"cannot {action}: broadcast {broadcast_id} has no running workflow"
            ) from exc
        raise
    return await db.run(get, broadcast_id)


def _row(session: Session, broadcast_id: str) -> Broadcast:
    row = broadcasts_store.get(session, broadcast_id)
    if row is None:
        raise NotFound(f"broadcast {broadcast_id!r}")
    return row


def _out(session: Session, row: Broadcast) -> BroadcastOut:
    return BroadcastOut(
        id=row.id,
        workflow_id=workflow_id(row.id),
        segment=row.segment_key,
        template=row.template,
        channel=row.channel,
        journey=row.journey_key,
        topic=row.topic,
        send_at=_utc(row.send_at),
        local_time=row.local_time,
        rate_per_minute=row.rate_per_minute,
        status=row.status,
        total=row.total,
        counts=broadcasts_store.counts(session, row.id),
        reasons=broadcasts_store.skip_reasons(session, row.id),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
