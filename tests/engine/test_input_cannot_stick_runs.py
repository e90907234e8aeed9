"""No event can stick a run: what a run takes in stays within what Temporal carries and decodes
(issue 14, item 2). The API's door limits keep such events out; these tests go around the door,
signalling the workflow with the Temporal client, on the dev server, whose size limits are the
real ones (the time-skipping test server has none)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle

from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.contract import EVENT_SIGNAL, STATE_QUERY
from temporal_journeys.workflows.starter import CannotEnroll, start_run
from temporal_journeys.workflows.types import (
    BUFFER_BYTES_LIMIT,
    EVENT_DEPTH_LIMIT,
    JourneyResult,
    RunView,
)
from tests.support import harness as h
from tests.support.dev_engine import DevEngine

SPEC = """
key: {key}
name: Waits for the order
trigger: {{event: cart.abandoned}}
steps:
  - id: ordered?
    wait_for: {{event: order.completed, timeout: PT1H}}
  - id: thanks
    send: {{channel: email, template: stuck-thanks}}
  - id: done
    exit: {{}}
"""


def nested(levels: int) -> dict[str, Any]:
    """Properties nested ``levels`` deep: ``{"a": {"a": ... {}}}``."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


async def _start(
    dev_engine: DevEngine, engine_db: Database, **options: Any
) -> tuple[WorkflowHandle, str]:
    h.template(engine_db, "stuck-thanks", subject="Thanks", text="Thanks")
    version, journey = h.publish(engine_db, SPEC.format(key=h.unique("stuck")))
    contact = h.contact(engine_db)
    handle = await start_run(
        dev_engine.client,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=dev_engine.task_queue,
        event=h.event("cart.abandoned"),
        **options,
    )
    await _until_waiting(handle)
    return handle, contact


async def _until_waiting(handle: WorkflowHandle) -> None:
    await _until_seen(handle, lambda view: view.waiting_for is not None, "began its wait")


async def _until_seen(handle: WorkflowHandle, check: Callable[[RunView], Any], what: str) -> None:
    """Until the run's state, as its last finished task left it, passes ``check``."""
    for _ in range(200):
        view = await handle.query(STATE_QUERY, result_type=RunView)
        if check(view):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the run never {what}: {view}")


async def _ended(
    client: Client, handle: WorkflowHandle, seconds: float
) -> tuple[JourneyResult, RunView]:
    """The run's result, or a failure naming why it never came (the run is terminated then,
    so a stuck run does not keep the worker busy)."""
    latest = client.get_workflow_handle(handle.id)
    try:
        raw = await asyncio.wait_for(latest.result(), seconds)
    except TimeoutError as timeout:
        failures = await _task_failures(latest)
        await latest.terminate("stuck: the test gave up on it")
        raise AssertionError(
            f"the run did not end in {seconds} s; its task failed: {failures}"
        ) from timeout
    view = await latest.query(STATE_QUERY, result_type=RunView)
    return JourneyResult.model_validate(raw), view


async def _task_failures(handle: WorkflowHandle) -> list[str]:
    history = await handle.fetch_history()
    return [
        e.workflow_task_failed_event_attributes.failure.message
        for e in history.events
        if e.HasField("workflow_task_failed_event_attributes")
    ][:1]


async def test_fourteen_480_kb_events_to_a_waiting_run_do_not_stop_it(
    dev_engine: DevEngine, engine_db: Database
):
    """They used to fill the buffer past what a continue-as-new can carry (2 MB): the run
    froze. Now the buffer keeps what fits its bytes, drops the oldest (traced) and goes on."""
    handle, contact = await _start(dev_engine, engine_db)
    big = [h.event("cart.updated", blob="x" * 480_000) for _ in range(14)]
    for event in big:
        await handle.signal(EVENT_SIGNAL, event)
    await dev_engine.client.get_workflow_handle(handle.id).signal(
        EVENT_SIGNAL, h.event("order.completed")
    )

    result, view = await _ended(dev_engine.client, handle, 90)

    assert result.status == "completed"
    assert [m.status for m in h.messages(engine_db, contact)] == ["sent"]
    dropped = [entry.detail or "" for entry in h.at(view, "dropped")]
    assert [detail.split(" ")[1] for detail in dropped] == [f"({e.id}):" for e in big[:13]]
    assert all(str(BUFFER_BYTES_LIMIT) in detail for detail in dropped)
    latest = await dev_engine.client.get_workflow_handle(handle.id).describe()
    assert latest.run_id != handle.result_run_id, "the run never continued as new"


async def test_an_event_the_worker_cannot_decode_is_dropped_and_traced(
    dev_engine: DevEngine, engine_db: Database
):
    """Nested 220 deep, it encodes but does not decode (Temporal's decoder stops at 200): the
    signal is dropped with a trace line, and the run takes the next event."""
    handle, _ = await _start(dev_engine, engine_db)
    await handle.signal(EVENT_SIGNAL, h.event("order.completed", cart=nested(220)))
    await handle.signal(EVENT_SIGNAL, h.event("order.completed", cart={"id": "c1"}))

    result, view = await _ended(dev_engine.client, handle, 60)

    assert result.status == "completed"
    [dropped] = h.at(view, "dropped")
    assert (dropped.step, dropped.detail) == ("ordered?", "an event that could not be decoded")
    [event] = h.at(view, "event")
    assert event.detail is not None and event.detail.startswith("order.completed")
    await h.record_history(handle)


async def test_an_event_nested_too_deep_to_carry_is_dropped_before_a_continue_as_new(
    dev_engine: DevEngine, engine_db: Database
):
    """Nested 198 deep, it decodes as a signal, but a continue-as-new input holds it 4 levels
    further down, where the decoder refuses it: the new run failed every task. Now an event
    nested deeper than ``EVENT_DEPTH_LIMIT`` is dropped on arrival."""
    handle, _ = await _start(dev_engine, engine_db, continue_as_new_after=12)
    deep = h.event("order.completed", cart=nested(198))
    await handle.signal(EVENT_SIGNAL, deep)
    # Taken in a task of its own before the order comes: two signals taken by one task would
    # keep the history under the continue-as-new length, and the run would end before it.
    await _until_seen(handle, lambda view: h.at(view, "dropped"), "dropped the deep event")
    latest = dev_engine.client.get_workflow_handle(handle.id)
    await latest.signal(
        EVENT_SIGNAL, h.event("order.completed", cart=nested(EVENT_DEPTH_LIMIT - 1))
    )

    result, view = await _ended(dev_engine.client, handle, 60)

    assert result.status == "completed"
    assert [entry.detail for entry in h.at(view, "dropped")] == [
        f"order.completed ({deep.id}): properties nested over {EVENT_DEPTH_LIMIT} levels"
    ]
    assert len(h.at(view, "event")) == 1
    latest_run = await latest.describe()
    assert latest_run.run_id != handle.result_run_id, "the run never continued as new"
    # The first run: the event dropped, the continue-as-new it made.
    await h.record_history(
        dev_engine.client.get_workflow_handle(handle.id, run_id=handle.result_run_id)
    )


async def test_event_ids_too_long_to_carry_are_forgotten_oldest_first(
    dev_engine: DevEngine, engine_db: Database
):
    """The ids a run has seen travel with it to deduplicate signals: 24 ids of 100 KB made a
    continue-as-new input of 2.4 MB, which Temporal refused, and the run froze. Now the input
    is fitted to ``CARRY_BYTES_LIMIT``: buffered events go first, then the oldest ids."""
    handle, contact = await _start(dev_engine, engine_db, continue_as_new_after=40)
    for number in range(24):
        long_id = f"{number:02d}-" + "i" * 100_000
        await handle.signal(EVENT_SIGNAL, JourneyEvent(id=long_id, name="cart.updated"))
    latest = dev_engine.client.get_workflow_handle(handle.id)
    await latest.signal(EVENT_SIGNAL, h.event("order.completed"))

    result, view = await _ended(dev_engine.client, handle, 90)

    assert result.status == "completed"
    assert [m.status for m in h.messages(engine_db, contact)] == ["sent"]
    forgotten = [e.detail for e in h.at(view, "dropped") if "oldest event ids" in (e.detail or "")]
    assert forgotten, [e.detail[:60] for e in h.at(view, "dropped") if e.detail]
    latest_run = await latest.describe()
    assert latest_run.run_id != handle.result_run_id, "the run never continued as new"


@pytest.mark.parametrize(
    ("properties", "why"),
    [
        ({"cart": nested(EVENT_DEPTH_LIMIT + 1)}, f"nested over {EVENT_DEPTH_LIMIT} levels"),
        ({"blob": "x" * BUFFER_BYTES_LIMIT}, f"over {BUFFER_BYTES_LIMIT} bytes"),
    ],
    ids=["too-deep", "too-large"],
)
async def test_the_starter_refuses_a_trigger_a_run_could_not_carry(
    dev_engine: DevEngine, engine_db: Database, properties: dict[str, Any], why: str
):
    """The trigger travels in the run's input: one nested 200 deep stuck the new run on
    "Failed decoding arguments" for good. The starter refuses it as it refuses an event without
    the journey's correlation key, and no run begins."""
    version, journey = h.publish(engine_db, SPEC.format(key=h.unique("refused")))
    contact = h.contact(engine_db)
    trigger = JourneyEvent(id=h.unique("evt"), name="cart.abandoned", properties=properties)

    with pytest.raises(CannotEnroll, match=why):
        handle = await start_run(
            dev_engine.client,
            journey=journey,
            version=version,
            contact_id=contact,
            task_queue=dev_engine.task_queue,
            event=trigger,
        )
        await handle.terminate("the starter should have refused it")
