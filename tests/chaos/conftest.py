"""The chaos tests' own world: a fresh Postgres database, a real dev server, one worker and the
API (over ASGI) with its outbox relay running, all torn down afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support import harness as h
from tests.support.dev_server import DevServer, DevStack


@pytest_asyncio.fixture
async def stack(tmp_path: Path, own_postgres_url: str) -> AsyncIterator[DevStack]:
    server = DevServer(tmp_path)
    db = Database(own_postgres_url)
    queue = h.unique("chaos")
    settings = Settings(
        database_url=own_postgres_url,
        temporal_address=f"127.0.0.1:{server.port}",
        task_queue=queue,
        sms_quiet_hours="",
    )
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=pydantic_data_converter
        )
        app = create_app(settings, temporal=client, db=db, relay=False)
        with db.transaction() as session:
            admin = {"Authorization": "Bearer " + keys.create(session, "admin", "admin")}
            track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
        # A 500 must come back as a response the test can see, not as an exception.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        relay = asyncio.create_task(app.state.relay.run(poll_seconds=0.2))
        async with (
            Worker(client, task_queue=queue, plugins=[JourneysPlugin(settings, db=db)]),
            httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
        ):
            yield DevStack(server, db, own_postgres_url, client, app, http, admin, track)
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
    finally:
        server.stop()
        db.dispose()
