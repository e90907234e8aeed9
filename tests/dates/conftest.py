"""The date tests' world: a real Temporal dev server (the time-skipping server has no
schedules), a Postgres database of their own, one worker with the plugin and the API over
ASGI, shared by the module's tests and torn down afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows import search_attributes
from temporal_journeys.workflows.codec import data_converter
from tests.support import harness as h
from tests.support.dev_server import DevServer, DevStack
from tests.support.postgres import fresh_database


@pytest.fixture(scope="module")
def dates_postgres_url(postgres_server_url: str):
    with fresh_database(postgres_server_url) as url:
        upgrade(url)
        yield url


@pytest_asyncio.fixture(scope="module")
async def dates(
    tmp_path_factory: pytest.TempPathFactory, dates_postgres_url: str
) -> AsyncIterator[DevStack]:
    server = DevServer(tmp_path_factory.mktemp("dates"))
    db = Database(dates_postgres_url)
    settings = Settings(
        database_url=dates_postgres_url,
        temporal_address=f"127.0.0.1:{server.port}",
        task_queue=h.unique("dates"),
        sms_quiet_hours="",
    )
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=data_converter(settings)
        )
        await search_attributes.register(client, client.namespace)
        app = create_app(settings, temporal=client, db=db, relay=False)
        with db.transaction() as session:
            admin = {"Authorization": "Bearer " + keys.create(session, "admin", "admin")}
            track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with (
            Worker(
                client, task_queue=settings.task_queue, plugins=[JourneysPlugin(settings, db=db)]
            ),
            httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
        ):
            yield DevStack(server, db, dates_postgres_url, client, app, http, admin, track)
    finally:
        server.stop()
        db.dispose()
