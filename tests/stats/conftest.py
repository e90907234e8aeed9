"""Stats tests: the API (over ASGI, and over real HTTP for the CLI) taking signed SendGrid
webhooks, and a worker whose SendGrid is the real SDK pointed at a fake server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from tests.support import signed_webhooks as sw
from tests.support.api import Api
from tests.support.channels import channel_settings, channel_worker
from tests.support.fake_providers import FakeProviders


@pytest.fixture
def signer(api: Api) -> sw.SendGridSigner:
    """The key pair SendGrid signs with; the test API checks its webhooks against it."""
    signer = sw.SendGridSigner()
    sw.configure(api.app, signer)
    return signer


@pytest.fixture(scope="session")
def stats_fake_server() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@dataclass
class SendGridWorker:
    queue: str
    fake: FakeProviders


@pytest_asyncio.fixture
async def sendgrid_worker(
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    stats_fake_server: FakeProviders,
) -> AsyncIterator[SendGridWorker]:
    """A worker on a queue of its own whose email goes through the real SendGrid SDK to the
    fake server (which answers 202 as SendGrid does)."""
    stats_fake_server.reset()
    settings = channel_settings(postgres_url, stats_fake_server)
    async with channel_worker(time_env, engine_db, settings) as queue:
        yield SendGridWorker(queue, stats_fake_server)


@pytest_asyncio.fixture
async def served(api: Api) -> AsyncIterator[dict[str, str]]:
    """The test API over real HTTP on a free port, in this event loop: the environment
    (``JOURNEYS_API_URL``, ``JOURNEYS_API_KEY``) a CLI command needs to reach it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        key = api.admin["Authorization"].removeprefix("Bearer ")
        yield {"JOURNEYS_API_URL": f"http://127.0.0.1:{port}", "JOURNEYS_API_KEY": key}
    finally:
        server.should_exit = True
        await task
