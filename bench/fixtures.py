"""Rows the benchmarks need before they start: contacts, a template, journeys, an API key."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import func, insert, select
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import keys
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Enrollment, OutboxEntry, StepEvent


def contacts(db: Database, ids: list[str], chunk: int = 5000) -> None:
    """Contacts with an email address; every other one on the ``pro`` plan."""
    for start in range(0, len(ids), chunk):
        rows = [
            {
                "id": contact_id,
                "email": f"{contact_id}@example.com",
                "traits": {"plan": "pro" if n % 2 == 0 else "free"},
            }
            for n, contact_id in enumerate(ids[start : start + chunk], start)
        ]
        with db.transaction() as session:
            session.execute(insert(Contact), rows)


def journey(db: Database, document: dict[str, Any]) -> tuple[int, Any]:
    """Publish ``document`` (its email templates are created as ``bench``)."""
    parsed = parse_journey(document)
    with db.transaction() as session:
        templates_store.put(session, "bench", "email", subject="Hello", text="Hello")
        return journeys_store.publish(session, parsed), parsed


def admin_key(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        return {"Authorization": "Bearer " + keys.create(session, "bench", "admin")}


def pending(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(OutboxEntry)) or 0


def enrollments(db: Database, journey_key: str, **where: Any) -> int:
    """Enrollments of a journey, filtered by column values (status, current_step, ...)."""
    query = (
        select(func.count()).select_from(Enrollment).where(Enrollment.journey_key == journey_key)
    )
    for column, value in where.items():
        query = query.where(getattr(Enrollment, column) == value)
    with db.transaction() as session:
        return session.scalar(query) or 0


def entered(db: Database, journey_key: str, step: str) -> int:
    """Runs whose trace recorded entering ``step``. For the first step, an admitting starter
    records it (Postgres) before the run's first task: ``queued_tasks`` tells when those ran."""
    query = select(func.count(func.distinct(StepEvent.enrollment_id))).where(
        StepEvent.journey_key == journey_key,
        StepEvent.step_id == step,
        StepEvent.kind == "entered",
    )
    with db.transaction() as session:
        return session.scalar(query) or 0


async def queued_tasks(client: Client, queue: str) -> int:
    """Workflow tasks waiting on ``queue`` for a worker (the server's approximate count): a run
    started but not yet run once has its first one there."""
    response = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
            report_stats=True,
        )
    )
    return response.stats.approximate_backlog_count


async def until_no_queued_tasks(client: Client, queue: str, seconds: float = 3600) -> float:
    """Until the server counts no workflow task waiting on ``queue`` twice, a second apart (its
    count is approximate); answers the ``perf_counter`` of the first of the two."""
    deadline = time.monotonic() + seconds
    quiet_since = None
    while True:
        if time.monotonic() > deadline:
            raise TimeoutError(f"workflow tasks still queued on {queue} after {seconds:.0f} s")
        now = time.perf_counter()
        if await queued_tasks(client, queue) > 0:
            quiet_since = None
        elif quiet_since is not None:
            return quiet_since
        else:
            quiet_since = now
        await asyncio.sleep(1 if quiet_since is not None else 0.2)


async def until(
    check: Callable[[], bool], what: str, seconds: float = 600, every: float = 0.05
) -> None:
    """Poll ``check`` every ``every`` seconds; TimeoutError naming ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {seconds:.0f} s")
        await asyncio.sleep(every)


def reactions(db: Database, journey_key: str) -> dict[str, float]:
    """Event id -> when a run of the journey took it (its trace line ``name (id)``)."""
    query = select(StepEvent.detail, StepEvent.at).where(
        StepEvent.journey_key == journey_key, StepEvent.kind == "event"
    )
    with db.transaction() as session:
        rows = session.execute(query).all()
    return {detail.rsplit("(", 1)[1].rstrip(")"): at.timestamp() for detail, at in rows}
