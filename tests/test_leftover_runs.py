"""Runs a test leaves behind on a time-skipping server are ended when their worker stops
(``channel_worker``): otherwise a later test's clock wakes them on a queue nobody polls and
time skipping stops for good, for the rest of the module (each module has a server of its own).

These tests run on a server of their own: what they check is that the clock still moves
afterwards, which a lock leaked by an earlier test of the module would hide."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest_asyncio
from temporalio import activity, workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from tests.support.leftovers import end_open_runs
from tests.support.time_server import start_test_server


@pytest_asyncio.fixture(scope="module")
async def own_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await start_test_server()
    yield env
    await env.shutdown()


@workflow.defn(sandboxed=False)
class Waiter:
    @workflow.run
    async def run(self, seconds: int) -> None:
        await workflow.sleep(seconds)


@activity.defn
async def a_second() -> None:
    await asyncio.sleep(1)


@workflow.defn(sandboxed=False)
class Sender:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(a_second, start_to_close_timeout=timedelta(seconds=30))
        await workflow.sleep(3600)


async def test_a_run_is_ended_once_its_activity_is_done_so_the_clock_still_moves(
    own_server: WorkflowEnvironment,
):
    # The test server never unlocks the clock for an activity whose run ends under it.
    client = own_server.client
    queue = f"busy-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[Sender, Waiter], activities=[a_second]):
        busy = await client.start_workflow(Sender.run, id=queue, task_queue=queue)

        assert await end_open_runs(client, queue=queue, reason="test") == 1

        assert (await busy.describe()).raw_description.pending_activities == []
        two_hours = client.execute_workflow(Waiter.run, 7200, id=f"{queue}-2h", task_queue=queue)
        await asyncio.wait_for(two_hours, timeout=30)


async def test_the_runs_left_on_a_queue_are_ended_and_those_on_other_queues_kept(
    own_server: WorkflowEnvironment,
):
    client = own_server.client
    gone, live = f"gone-{uuid.uuid4().hex[:8]}", f"live-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=gone, workflows=[Waiter]):
        left = await client.start_workflow(Waiter.run, 3600, id=gone, task_queue=gone)
        await _until_waiting(left)
    async with Worker(client, task_queue=live, workflows=[Waiter]):
        kept = await client.start_workflow(Waiter.run, 3600, id=live, task_queue=live)

        assert await end_open_runs(client, queue=gone, reason="test") == 1

        assert (await left.describe()).status == WorkflowExecutionStatus.TERMINATED
        assert (await kept.describe()).status == WorkflowExecutionStatus.RUNNING
        await kept.terminate()


async def _until_waiting(handle: WorkflowHandle) -> None:
    """Until the run waits on its timer: a run whose first task never ran stays busy."""
    while True:
        kinds = [event.event_type async for event in handle.fetch_history_events()]
        if EventType.EVENT_TYPE_TIMER_STARTED in kinds:
            return
        await asyncio.sleep(0.05)
