"""Results tests: a fake SendGrid/Twilio server for the real SDKs, an API whose test sends and
worker go through them (``channel_api``), and the API served over HTTP for the CLI."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support.api import Api
from tests.support.channels import channel_settings, channel_worker
from tests.support.fake_providers import FakeProviders


@pytest.fixture(scope="session")
def results_fake_server() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake(results_fake_server: FakeProviders) -> FakeProviders:
    """The fake provider server, with nothing recorded when the test starts."""
    results_fake_server.reset()
    return results_fake_server


@pytest.fixture
def channel_overrides() -> dict[str, object]:
    """Settings a test changes for its API and worker (a daily cap, ...)."""
    return {}


@pytest_asyncio.fixture
async def channel_api(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake: FakeProviders,
    channel_overrides: dict[str, object],
) -> AsyncIterator[Api]:
    """The API over ASGI and a worker of its own, both with SendGrid and Twilio (the real SDKs)
    pointed at the fake server: runs its relay starts send there, and so do its test sends."""
    settings: Settings = channel_settings(postgres_url, fake, **channel_overrides)
    async with channel_worker(time_env, engine_db, settings) as queue:
        app = create_app(
            settings.model_copy(update={"task_queue": queue}),
            temporal=client,
            db=engine_db,
            relay=False,
        )
        with engine_db.transaction() as session:
            admin = keys.create(session, "results admin", "admin")
            track = keys.create(session, "results app", "track")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
            yield Api(
                app,
                http,
                {"Authorization": f"Bearer {admin}"},
                {"Authorization": f"Bearer {track}"},
            )


@pytest_asyncio.fixture
async def served_api(
    client: Client, engine_db: Database, plugin: JourneysPlugin
) -> AsyncIterator[dict[str, str]]:
    """The API over real HTTP on a free port, in this event loop, for the CLI: the environment
    (`JOURNEYS_API_URL`, an admin `JOURNEYS_API_KEY`) a command needs to reach it."""
    app = create_app(plugin.settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "preview cli", "admin")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        yield {"JOURNEYS_API_URL": f"http://127.0.0.1:{port}", "JOURNEYS_API_KEY": key}
    finally:
        server.should_exit = True
        await task
