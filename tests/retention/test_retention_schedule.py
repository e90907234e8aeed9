"""The schedule ``journeys-retention`` on a real Temporal dev server (the time-skipping server
has no schedules): a worker's start creates it, a fire runs the pass with the worker's
settings, and with retention off a start deletes it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client, ScheduleHandle
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.services import retention
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import utcnow
from temporal_journeys.worker import run_worker
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.retention import RETENTION_WORKFLOW, SCHEDULE_ID
from tests.support import harness as h
from tests.support.dev_server import DevServer
from tests.support.retention import add_event, event_ids

pytestmark = pytest.mark.slow


@contextlib.asynccontextmanager
async def worker_running(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(run_worker(settings, stop))
    try:
        yield
    finally:
        stop.set()
        await task


async def described(handle: ScheduleHandle):  # type: ignore[no-untyped-def]
    for _ in range(200):
        try:
            return await handle.describe()
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.1)
    raise AssertionError(f"schedule {handle.id} never appeared")


async def test_a_worker_start_puts_the_schedule_and_a_fire_runs_the_pass(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    upgrade(url)
    db = Database(url)
    server = DevServer(tmp_path)
    settings = Settings(
        database_url=url,
        temporal_address=f"127.0.0.1:{server.port}",
        task_queue=h.unique("retention"),
        retention_events_days=30,
    )
    try:
        old = add_event(db, utcnow(), "page.viewed", 40)
        recent = add_event(db, utcnow(), "page.viewed", 2)
        client = await Client.connect(
            settings.temporal_address, data_converter=data_converter(settings)
        )
        handle = client.get_schedule_handle(SCHEDULE_ID)
        async with worker_running(settings):
            description = await described(handle)
            action = description.schedule.action
            assert action.workflow == RETENTION_WORKFLOW  # type: ignore[attr-defined]
            assert action.task_queue == settings.task_queue  # type: ignore[attr-defined]
            assert description.schedule.spec.intervals[0].every == timedelta(days=1)

            await handle.trigger()
            for _ in range(300):
                actions = (await handle.describe()).info.recent_actions
                if actions:
                    run = client.get_workflow_handle(actions[-1].action.workflow_id)
                    result = await run.result()
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the schedule did not fire")
        assert result["events"]["deleted"] == 1
        assert event_ids(db) == {recent} and old not in event_ids(db)

        # Both retention settings off: the next start deletes the schedule.
        off = settings.model_copy(
            update={"retention_events_days": None, "retention_message_bodies_days": None}
        )
        assert await retention.sync(client, off) is False
        with pytest.raises(RPCError):
            await handle.describe()
    finally:
        server.stop()
        db.dispose()
