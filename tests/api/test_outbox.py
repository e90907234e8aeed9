"""With Temporal down, events are still accepted; once it is back each reaches its run, in
order per contact, once."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from api.app import create_app
from api.services.relay import OutboxRelay
from journeys.devserver import start_dev_server, stop
from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from store import keys
from store.db import Database
from store.models import OutboxEntry
from tests.engine import harness as h
from workflows.types import RunView

CONTACTS, TICKS = 50, 19  # 50 starts and 950 ticks: 1,000 events


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevServer:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.file = folder / "temporal.db"
        self.log = folder / "temporal.log"
        self.process = start_dev_server(self.file, self.port, None, self.log)

    def stop(self) -> None:
        stop(self.process)

    def restart(self) -> None:
        self.process = start_dev_server(self.file, self.port, None, self.log)


@pytest_asyncio.fixture
async def dev_server(tmp_path: Path) -> AsyncIterator[DevServer]:
    server = DevServer(tmp_path)
    yield server
    server.stop()


async def test_events_wait_in_the_outbox_while_temporal_is_down(
    dev_server: DevServer, engine_db: Database, postgres_url: str
):
    queue = h.unique("outbox-queue")
    settings = Settings(
        database_url=postgres_url,
        temporal_address=f"127.0.0.1:{dev_server.port}",
        task_queue=queue,
    )
    client = await Client.connect(settings.temporal_address, data_converter=pydantic_data_converter)
    plugin = JourneysPlugin(settings, db=engine_db)
    app = create_app(settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = {"Authorization": "Bearer " + keys.create(session, "admin", "admin")}
        track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
    key = h.unique("outbox")
    spec = listener(key)
    contacts = [h.unique("listener") for _ in range(CONTACTS)]
    transport = httpx.ASGITransport(app=app)
    async with (
        Worker(client, task_queue=queue, plugins=[plugin]),
        httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
    ):
        assert (await http.put(f"/v1/journeys/{key}", json=spec, headers=admin)).status_code == 200
        assert (await http.post(f"/v1/journeys/{key}/publish", headers=admin)).status_code == 200

        dev_server.stop()
        statuses = []
        for tick in range(TICKS + 1):
            for contact in contacts:
                name = f"{key}.start" if tick == 0 else f"{key}.tick"
                body = {"userId": contact, "event": name, "messageId": f"{contact}-{tick:03}"}
                statuses.append(
                    (await http.post("/v1/track", json=body, headers=track)).status_code
                )
        assert statuses == [202] * CONTACTS * (TICKS + 1)
        await app.state.relay.deliver_once()  # nothing of theirs gets through while it is down
        assert pending(engine_db, contacts) == CONTACTS * (TICKS + 1)

        dev_server.restart()
        # Two relays, as two API processes would run them: per-contact locks keep them apart.
        second_db = Database(postgres_url)
        second = OutboxRelay(second_db, app.state.temporal, settings)
        relays = [
            asyncio.create_task(relay.run(poll_seconds=0.2)) for relay in (app.state.relay, second)
        ]
        try:
            await h.wait_until(
                lambda: pending(engine_db, contacts) == 0, "the outbox to drain", 120
            )
            for contact in contacts:
                ticks = [f"{contact}-{tick:03}" for tick in range(1, TICKS + 1)]
                await assert_in_order_once(client, f"journey/{key}/{contact}", ticks)
        finally:
            for relay in relays:
                relay.cancel()
            second_db.dispose()


def listener(key: str) -> dict:
    """A journey that takes every ``<key>.tick`` for a day: each event shows in its trace."""
    return {
        "name": "Listener",
        "trigger": {"event": f"{key}.start"},
        "steps": [
            {
                "id": "listen",
                "wait_for": {"event": f"{key}.tick", "timeout": "P1D"},
                "next": "listen",
                "on_timeout": "done",
            },
            {"id": "done", "exit": {}},
        ],
    }


def pending(db: Database, contacts: list[str]) -> int:
    """Outbox entries of these contacts still waiting for Temporal."""
    with db.transaction() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.contact_id.in_(contacts))
        )


async def assert_in_order_once(client: Client, workflow_id: str, ticks: list[str]) -> None:
    """The run took exactly ``ticks`` (event ids), in that order, and was signalled once for
    each of them and once for the event that started it."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(100):
        view = await handle.query("state", result_type=RunView)
        received = [e.detail.split("(")[1].rstrip(")") for e in h.at(view, "event") if e.detail]
        if len(received) >= len(ticks):
            break
        await asyncio.sleep(0.2)
    assert received == ticks
    signals = [
        event
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) == len(ticks) + 1, "an event reached the run twice"
