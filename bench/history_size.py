"""History events per abandoned-cart run, next to a minimal hand-written workflow.

    .venv/bin/python -m bench.history_size

Runs both on one time-skipping test server (no action: the longest path, three sends) with an
embedded SQLite store, and prints the event counts and their ratio (goal: at most 1.25).
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.reference import MinimalAbandonedCart, send
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows import search_attributes
from temporal_journeys.workflows.starter import start_run

CART = {
    "key": "abandoned-cart",
    "name": "Abandoned cart recovery",
    "trigger": {"event": "cart.abandoned", "correlate": "cart_id"},
    "goal": {"event": "order.completed"},
    "steps": [
        {"id": "wait-1h", "wait": "PT1H"},
        {"id": "reminder", "send": {"channel": "email", "template": "cart"}},
        {
            "id": "opened?",
            "wait_for": {"event": "email.opened", "message": "reminder", "timeout": "P1D"},
            "on_timeout": "discount",
            "next": "done",
        },
        {"id": "discount", "send": {"channel": "email", "template": "cart"}},
        {"id": "wait-3d", "wait": "P3D"},
        {"id": "last-chance", "send": {"channel": "email", "template": "cart"}},
        {"id": "done", "exit": {}},
    ],
}


def _kinds(events: list) -> Counter[str]:
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)


async def measure(client: Client, plugin: JourneysPlugin) -> tuple[list, list]:
    with plugin.db.transaction() as session:
        templates_store.put(session, "cart", "email", subject="Your cart", text="Come back")
        version = journeys_store.publish(session, parse_journey(CART))
        journey = parse_journey(CART)
        from temporal_journeys.store import contacts

        contacts.upsert(session, "bench-contact", {"email": "bench@example.com"})
    async with Worker(
        client,
        task_queue="bench",
        plugins=[plugin],
        workflows=[MinimalAbandonedCart],
        activities=[send],
    ):
        handle = await start_run(
            client,
            journey=journey,
            version=version,
            contact_id="bench-contact",
            task_queue="bench",
            event=JourneyEvent(
                id=str(uuid.uuid4()), name="cart.abandoned", properties={"cart_id": "1"}
            ),
        )
        await handle.result()
        journey_events = [e async for e in handle.fetch_history_events()]
        minimal = await client.start_workflow(
            MinimalAbandonedCart.run, id=f"minimal-{uuid.uuid4()}", task_queue="bench"
        )
        await minimal.result()
        minimal_events = [e async for e in minimal.fetch_history_events()]
    return journey_events, minimal_events


async def main() -> int:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'bench.db'}"
        upgrade(url)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
            data_converter=pydantic_data_converter,
        )
        try:
            await search_attributes.register(env.client, env.client.namespace)
            plugin = JourneysPlugin(Settings(database_url=url, task_queue="bench"))
            journey_events, minimal_events = await measure(env.client, plugin)
            plugin.db.dispose()
        finally:
            await env.shutdown()
    journey, minimal = len(journey_events), len(minimal_events)
    journey_kinds, minimal_kinds = _kinds(journey_events), _kinds(minimal_events)
    print(f"{'event type':40} {'journey':>8} {'minimal':>8}")
    for kind in sorted(set(journey_kinds) | set(minimal_kinds)):
        print(f"{kind:40} {journey_kinds[kind]:>8} {minimal_kinds[kind]:>8}")
    ratio = journey / minimal
    # Serialized size of the events as the server hands them out: what the spec in an input
    # (or in a local activity's result) weighs.
    journey_bytes = sum(e.ByteSize() for e in journey_events)
    minimal_bytes = sum(e.ByteSize() for e in minimal_events)
    print(f"{'total':40} {journey:>8} {minimal:>8}")
    print(
        f"history events per abandoned-cart run: journey {journey}, minimal {minimal}, "
        f"ratio {ratio:.2f} (goal <= 1.25)"
    )
    print(f"history bytes per abandoned-cart run: journey {journey_bytes}, minimal {minimal_bytes}")
    return 0 if ratio <= 1.25 else 1


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
