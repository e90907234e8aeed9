"""The Temporal Schedule ``journeys-retention``: the retention workflow once a day.

It exists while either retention setting is on (``retention_events_days``,
``retention_message_bodies_days``) and is deleted when both are off. Every worker (``journeys
worker``, ``journeys dev``) and every API process with the relay puts it in line with its
settings when it reaches Temporal; the days themselves are read by the activities from the
worker's settings at each run, so changing them needs no schedule change.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from temporalio.service import RPCError

from temporal_journeys.api.services import schedules
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import partitions
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import utcnow
from temporal_journeys.workflows.retention import (
    RETENTION_WORKFLOW,
    SCHEDULE_ID,
    RetentionInput,
)

log = logging.getLogger("journeys.api.retention")

EVERY = timedelta(days=1)
AT = timedelta(hours=3)  # 03:00 UTC, a quiet hour for most senders
CATCHUP_WINDOW = timedelta(hours=12)
"""A fire missed while Temporal was down runs when it is back within this; later, the next
day's pass does the same work."""


def wanted(settings: Settings) -> bool:
    return settings.retention_events_days is not None or (
        settings.retention_message_bodies_days is not None
    )


def build(settings: Settings) -> Schedule:
    """Daily at 03:00 UTC. Overlap SKIP: a pass still running (a first pass over years of rows)
    makes the next one pointless, as it would walk the same rows."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            RETENTION_WORKFLOW,
            RetentionInput(),
            id=SCHEDULE_ID,
            task_queue=settings.task_queue,
            static_summary="Retention: old events and message contents",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=EVERY, offset=AT)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(
            note=f"events kept {_days(settings.retention_events_days)}, message contents "
            f"{_days(settings.retention_message_bodies_days)} (the worker's settings decide "
            "at each run)"
        ),
    )


def _days(days: int | None) -> str:
    return "forever" if days is None else f"{days} days"


async def sync(client: Client, settings: Settings) -> bool:
    """The schedule created or updated when retention is on, deleted when it is off; answers
    whether it exists now."""
    if not wanted(settings):
        await schedules.remove(client, SCHEDULE_ID)
        return False
    await schedules.put(client, SCHEDULE_ID, build(settings))
    return True


async def sync_logged(client: Client, settings: Settings) -> None:
    """``sync`` at a process's start: Temporal refusing it is logged, not raised (the next
    start of a worker or API process tries again)."""
    try:
        await sync(client, settings)
    except RPCError as exc:
        log.warning("schedule %s not put in line with the settings: %s", SCHEDULE_ID, exc)


async def prepare_months(db: Database) -> None:
    """The coming months' partitions of ``events`` at a worker's start (Postgres), besides
    each day's pass, so ingest finds them even with retention off; a failure is logged (rows
    of a month without a partition go to the default one, and the next start tries again)."""
    try:
        created = await db.run(partitions.ensure_months, utcnow())
    except SQLAlchemyError as exc:
        log.warning("the partitions of the coming months of events were not made: %s", exc)
        return
    if created:
        log.info("partitions of events made: %s", ", ".join(created))


async def sync_when_connected(connection: TemporalConnection, settings: Settings) -> None:
    """``sync`` once the API's client reaches Temporal (started with the relay)."""
    while connection.client is None:  # noqa: ASYNC110 (the connection has no event to wait on)
        await asyncio.sleep(0.5)
    await sync_logged(connection.client, settings)
