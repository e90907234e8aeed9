"""The chaos tests' own world: a fresh Postgres database, a real dev server, one worker and the
API (over ASGI) with its outbox relay running, all torn down afterwards."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from api.app import create_app
from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from store import keys
from store.db import Database
from store.migrate import upgrade
from tests.api.test_outbox import DevServer
from tests.engine import harness as h
from tests.support.postgres import fresh_database


@dataclass
class Stack:
    server: DevServer
    db: Database
    url: str
    client: Client
    app: FastAPI
    http: httpx.AsyncClient
    admin: dict[str, str]
    track: dict[str, str]

    async def publish(self, key: str, spec: dict) -> None:
        response = await self.http.put(f"/v1/journeys/{key}", json=spec, headers=self.admin)
        assert response.status_code == 200, response.text
        response = await self.http.post(f"/v1/journeys/{key}/publish", headers=self.admin)
        assert response.status_code == 200, response.text


@pytest.fixture
def chaos_url(postgres_server_url: str) -> Iterator[str]:
    with fresh_database(postgres_server_url) as url:
        upgrade(url)
        yield url


@pytest_asyncio.fixture
async def stack(tmp_path: Path, chaos_url: str) -> AsyncIterator[Stack]:
    server = DevServer(tmp_path)
    db = Database(chaos_url)
    queue = h.unique("chaos")
    settings = Settings(
        database_url=chaos_url,
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
            yield Stack(server, db, chaos_url, client, app, http, admin, track)
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay
    finally:
        server.stop()
        db.dispose()
