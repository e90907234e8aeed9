"""A Temporal dev server with one journeys worker in this process, for the engine tests that
need what the time-skipping test server does not do: resets, and the real server's payload and
history limits. Its providers are the real SDKs pointed at a fake provider server.

Time is real here: runs in these tests wait only as long as a test can afford, or are ended
by the test (``exit_run``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from tests.support.channels import channel_settings
from tests.support.dev_server import DevServer
from tests.support.fake_providers import FakeProviders

DEV_QUEUE = "journeys-dev-engine-test"


@dataclass
class DevEngine:
    client: Client
    fake: FakeProviders
    task_queue: str
    server: DevServer


@asynccontextmanager
async def running_dev_engine(
    folder: Path, db: Database, postgres_url: str
) -> AsyncIterator[DevEngine]:
    server = DevServer(folder)
    try:
        client = await Client.connect(
            f"127.0.0.1:{server.port}", data_converter=pydantic_data_converter
        )
        with FakeProviders() as fake:
            settings = channel_settings(postgres_url, fake, task_queue=DEV_QUEUE)
            plugin = JourneysPlugin(settings, db=db)
            async with Worker(client, task_queue=DEV_QUEUE, plugins=[plugin]):
                yield DevEngine(client, fake, DEV_QUEUE, server)
    finally:
        server.stop()
