"""``start_run``: the event that begins a run travels in its input only; a second trigger
reaches the run alive as a signal; once the run has ended, a trigger begins a new one."""

from __future__ import annotations

import asyncio

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from temporal_journeys.store.db import Database
from temporal_journeys.workflows.contract import EVENT_SIGNAL
from tests.support import harness as h

CART = """
key: {key}
name: Waits for a purchase
trigger: {{event: cart.abandoned, correlate: cart_id}}
re_entry: always
steps:
  - id: bought?
    wait_for: {{event: order.completed, timeout: P1D}}
  - id: done
    exit: {{}}
"""


async def _signals(handle: WorkflowHandle) -> list[str]:
    return [
        event.workflow_execution_signaled_event_attributes.signal_name
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]


async def test_the_event_that_begins_a_run_is_not_signalled_to_it(
    client: Client, engine_db: Database
):
    version, journey = h.publish(engine_db, CART.format(key=h.unique("cart")))
    contact = h.contact(engine_db)

    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )
    await h.signal(handle, "order.completed")
    result, _ = await h.finish(handle)

    assert result.status == "completed"
    assert await _signals(handle) == [EVENT_SIGNAL], "only the purchase came as a signal"


async def test_a_second_trigger_reaches_the_run_alive_and_makes_no_second_run(
    client: Client, engine_db: Database
):
    version, journey = h.publish(engine_db, CART.format(key=h.unique("cart")))
    contact = h.contact(engine_db)
    first = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )

    again = h.event("cart.abandoned", cart_id="c1")
    # Two at once: one start finds the run alive, or both do; neither begins another.
    second, third = await asyncio.gather(
        h.start(client, journey, version, contact, again),
        h.start(client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")),
    )

    assert second.id == third.id == first.id
    assert second.result_run_id == third.result_run_id == first.result_run_id
    await h.signal(first, "order.completed")
    assert (await h.finish(first))[0].status == "completed"
    # Both triggers and the purchase (signals that come during a workflow task are written
    # to the history after it, so it is read once the run is over).
    assert await _signals(first) == [EVENT_SIGNAL] * 3


async def test_a_trigger_after_the_run_ended_begins_a_new_run(client: Client, engine_db: Database):
    version, journey = h.publish(engine_db, CART.format(key=h.unique("cart")))
    contact = h.contact(engine_db)
    first = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )
    await h.signal(first, "order.completed")
    await h.finish(first)

    later = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="c1")
    )

    assert later.id == first.id
    assert later.result_run_id != first.result_run_id
    result, _ = await h.finish(later)  # its wait times out: a run of its own, not skipped
    assert result.status == "completed"
    assert await _signals(later) == []
