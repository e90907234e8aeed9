"""An operator's ``temporal workflow reset`` replays a run from an earlier workflow task in a new
run: what it did after that point it does again, so its sends must find their first attempt's
message by a key the reset keeps (issue 14, item 4). On the dev server: the time-skipping test
server does not reset."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, StepEvent
from temporal_journeys.workflows.contract import EXIT_UPDATE, STATE_QUERY
from temporal_journeys.workflows.starter import start_run
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h
from tests.support.dev_engine import DevEngine

SPEC = """
key: {key}
name: Hello, then a pause
trigger: {{event: user.signed_up}}
re_entry: {re_entry}
steps:
  - id: hello
    send: {{channel: email, template: reset-hello}}
  - id: pause
    wait: PT1H
  - id: done
    exit: {{}}
"""


async def _waiting(handle: WorkflowHandle) -> RunView:
    """The run's state once it waits in ``pause`` (after its send)."""
    views: list[RunView] = []

    def paused() -> bool:
        return bool(views) and views[-1].step == "pause" and views[-1].until is not None

    for _ in range(300):
        views.append(await handle.query(STATE_QUERY, result_type=RunView))
        if paused() or views[-1].status != "running":
            break
        await asyncio.sleep(0.1)
    return views[-1]


async def _reset_to_first_workflow_task(client: Client, handle: WorkflowHandle) -> str:
    """Reset the run to its first completed workflow task: everything after it (the begin,
    the send, the wait) is done again by a new run. Answers the new run's id."""
    history = await handle.fetch_history()
    first_task = next(
        e.event_id
        for e in history.events
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=handle.id, run_id=handle.result_run_id
            ),
            reason="test: an operator resets the run after its first send",
            workflow_task_finish_event_id=first_task,
            request_id=uuid.uuid4().hex,
        )
    )
    return response.run_id


def _recorded(db: Database, handle: WorkflowHandle) -> list[tuple[int, str | None, str]]:
    """The funnel rows of the run's one enrollment, which is keyed by its first run. The reset
    run's lines repeat the first run's with later times: the rows keep the first times."""
    with db.transaction() as session:
        [enrollment] = session.scalars(
            select(Enrollment).where(Enrollment.workflow_id == handle.id)
        )
        assert enrollment.id == handle.result_run_id
        rows = session.scalars(select(StepEvent).where(StepEvent.enrollment_id == enrollment.id))
        return sorted((int(r.id.rsplit(":", 1)[1]), r.step_id, r.kind) for r in rows)


@pytest.mark.parametrize("re_entry", ["always", "never"])
async def test_a_reset_after_the_first_send_does_not_send_it_again(
    dev_engine: DevEngine, engine_db: Database, re_entry: str
):
    """With ``always``, the reset run used to send the welcome again under a new key (a second
    message row, a second provider call); with ``never`` it met its own first entry as another
    and ended skipped. Both keep the one message and the one entry, and wait on."""
    client, fake = dev_engine.client, dev_engine.fake
    fake.reset()
    h.template(engine_db, "reset-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SPEC.format(key=h.unique("reset"), re_entry=re_entry))
    contact = h.contact(engine_db)
    handle = await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=dev_engine.task_queue,
        event=h.event("user.signed_up"),
    )
    before = await _waiting(handle)
    assert (before.status, before.step) == ("running", "pause"), before
    assert len(fake.accepted("sendgrid")) == 1

    new_run = await _reset_to_first_workflow_task(client, handle)
    reset = client.get_workflow_handle(handle.id, run_id=new_run)
    after = await _waiting(reset)

    try:
        assert (after.status, after.step) == ("running", "pause"), after.trace
        assert len(fake.accepted("sendgrid")) == 1
        assert [m.status for m in h.messages(engine_db, contact)] == ["sent"]
        assert _recorded(engine_db, handle) == [(e.seq, e.step, e.kind) for e in after.trace]
    finally:
        await _exit(reset)
    await h.record_history(reset)


async def _exit(handle: WorkflowHandle) -> None:
    """End the test's run (an hour's wait is not waited out in real time)."""
    status = (await handle.query(STATE_QUERY, result_type=RunView)).status
    if status == "running":
        await handle.execute_update(EXIT_UPDATE, "test over")
        await handle.result()
