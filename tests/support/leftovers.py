"""Ending the runs a test leaves open on its module's time-skipping server.

The test server locks time skipping while any workflow or activity task is outstanding. A run
left waiting on a task queue whose worker has gone wakes up when some later test moves the
clock past its timer, and its task, which nobody will ever poll, then stops the clock for every
test after it: they hang until their timeout, far from the test that caused it.

A run is ended only once it is idle (no activity and no workflow task pending), and one that
does not become idle is left alone: the test server never releases the lock of an activity or
workflow task whose run is terminated or cancelled under it, which would stop the clock for
good, while a run left alone on a live worker's queue still finishes its task.
"""

from __future__ import annotations

import asyncio
import time

from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ListOpenWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError

# How long a run's pending tasks may take to finish before the run is left as it is.
SETTLE_SECONDS = 10.0


async def end_open_runs(client: Client, *, queue: str | None = None, reason: str) -> int:
    """Terminate the open runs (on ``queue`` only, when given) that are idle or become so
    within ``SETTLE_SECONDS``; returns how many."""
    ended = 0
    token = b""
    while True:
        page = await client.workflow_service.list_open_workflow_executions(
            ListOpenWorkflowExecutionsRequest(
                namespace=client.namespace, maximum_page_size=1000, next_page_token=token
            )
        )
        for info in page.executions:
            handle = client.get_workflow_handle(
                info.execution.workflow_id, run_id=info.execution.run_id
            )
            try:
                if not await _settled(handle, queue):
                    continue
                await handle.terminate(reason=reason)
            except RPCError:
                continue  # it ended on its own in the meantime
            ended += 1
        token = page.next_page_token
        if not token:
            return ended


async def _settled(handle: WorkflowHandle, queue: str | None) -> bool:
    """Waits until the run has no task pending; False when it is not on ``queue`` or does not
    become idle in time."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        # The history first, then the describe: a task finishing between the two schedules
        # its activities before the describe, which then shows them. In the other order, the
        # describe could miss an activity that the task then scheduled.
        due = await _task_due(handle)
        # The test server's listing leaves the task queue out; a describe has it.
        described = await handle.describe()
        if queue is not None and described.task_queue != queue:
            return False
        idle = not due and not described.raw_description.pending_activities
        if idle:
            return True
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)


async def _task_due(handle: WorkflowHandle) -> bool:
    # The test server's describe leaves the pending workflow task out: the history tells.
    last = None
    async for event in handle.fetch_history_events():
        last = event.event_type
    return last in _WORKFLOW_TASK_DUE


_WORKFLOW_TASK_DUE = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED,
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED,
}
