"""History events per abandoned-cart run, next to a minimal hand-written workflow.

    .venv/bin/python -m bench.history_size [--server postgresql+psycopg://...]

Runs the journey and the minimal workflow on one time-skipping test server (no action: the
longest path, three sends). The journey is entered as the relay enters it (``start_entry``)
twice: on a fresh Postgres database, where the starter admits the entry, and on an embedded
SQLite store, where the run checks its entry itself (one local activity more). Prints the event
counts and the ratio of the Postgres run to the minimal one (issue 18's goal: at most 1.10).
"""

from __future__ import annotations

import argparse
import asyncio
import os
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
from temporal_journeys.api.services.admission import start_entry
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows import search_attributes
from tests.support.postgres import DEFAULT_URL, fresh_database

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
CONTACT = "bench-contact"


def _kinds(events: list) -> Counter[str]:
    return Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in events)


def _setup(plugin: JourneysPlugin) -> tuple[Journey, int]:
    with plugin.db.transaction() as session:
        templates_store.put(session, "cart", "email", subject="Your cart", text="Come back")
        version = journeys_store.publish(session, parse_journey(CART))
        contacts_store.upsert(session, CONTACT, {"email": "bench@example.com"})
    return parse_journey(CART), version


async def journey_run(client: Client, plugin: JourneysPlugin) -> list:
    """One cart through the path the relay takes: on Postgres the starter admits the entry
    (``start_entry``: re-entry checked and the first step recorded in its transaction); on
    SQLite, which cannot vouch for the rule, the run checks its entry itself."""
    journey, version = _setup(plugin)
    queue = plugin.settings.task_queue
    event = JourneyEvent(id=str(uuid.uuid4()), name="cart.abandoned", properties={"cart_id": "1"})
    async with Worker(client, task_queue=queue, plugins=[plugin]):
        async with plugin.db.held_connection() as connection:
            handle = await start_entry(
                client,
                connection,
                journey=journey,
                version=version,
                contact=contacts_store.load_snapshot(connection, CONTACT),
                task_queue=queue,
                event=event,
            )
        await handle.result()
        return [e async for e in handle.fetch_history_events()]


async def minimal_run(client: Client) -> list:
    async with Worker(
        client, task_queue="bench-minimal", workflows=[MinimalAbandonedCart], activities=[send]
    ):
        minimal = await client.start_workflow(
            MinimalAbandonedCart.run, id=f"minimal-{uuid.uuid4()}", task_queue="bench-minimal"
        )
        await minimal.result()
        return [e async for e in minimal.fetch_history_events()]


async def main(server: str) -> int:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
        data_converter=pydantic_data_converter,
    )
    runs: dict[str, list] = {}
    try:
        await search_attributes.register(env.client, env.client.namespace)
        with fresh_database(server) as url:
            upgrade(url)
            plugin = JourneysPlugin(Settings(database_url=url, task_queue="bench-postgres"))
            runs["postgres"] = await journey_run(env.client, plugin)
            plugin.db.dispose()
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{Path(folder) / 'bench.db'}"
            upgrade(url)
            plugin = JourneysPlugin(Settings(database_url=url, task_queue="bench-sqlite"))
            runs["sqlite"] = await journey_run(env.client, plugin)
            plugin.db.dispose()
        runs["minimal"] = await minimal_run(env.client)
    finally:
        await env.shutdown()
    kinds = {name: _kinds(events) for name, events in runs.items()}
    print(f"{'event type':40} {'postgres':>8} {'sqlite':>8} {'minimal':>8}")
    for kind in sorted(set().union(*kinds.values())):
        print(f"{kind:40} " + " ".join(f"{kinds[name][kind]:>8}" for name in runs))
    count = {name: len(events) for name, events in runs.items()}
    print(f"{'total':40} " + " ".join(f"{count[name]:>8}" for name in runs))
    # Serialized size of the events as the server hands them out: what the spec in an input
    # (or in a local activity's result) weighs.
    size = {name: sum(e.ByteSize() for e in events) for name, events in runs.items()}
    ratio = count["postgres"] / count["minimal"]
    print(
        f"history events per abandoned-cart run: journey {count['postgres']} on Postgres "
        f"({count['sqlite']} on SQLite, where the run checks its own entry), minimal "
        f"{count['minimal']}, ratio {ratio:.2f} (goal <= 1.10; "
        f"SQLite {count['sqlite'] / count['minimal']:.2f})"
    )
    print(
        f"history bytes per abandoned-cart run: journey {size['postgres']} "
        f"(SQLite {size['sqlite']}), minimal {size['minimal']}"
    )
    return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--server", default=os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    raise SystemExit(asyncio.run(main(parser.parse_args().server)))
