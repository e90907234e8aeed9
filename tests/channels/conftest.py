"""Channel tests: the real SendGrid and Twilio SDKs and httpx against a fake provider server on
127.0.0.1, with journeys run by a second worker on the module's time-skipping server.

``channel_client`` is that worker's client; tests/support/channels.py holds its settings, task
queue and the helpers that run one-send journeys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from tests.support.channels import CHANNEL_QUEUE, channel_settings
from tests.support.fake_providers import FakeProviders


@pytest.fixture(scope="session")
def fake_providers_server() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake_providers(fake_providers_server: FakeProviders) -> FakeProviders:
    """The fake server, with nothing recorded or scripted when the test starts."""
    fake_providers_server.reset()
    return fake_providers_server


@pytest_asyncio.fixture(scope="module")
async def channel_client(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers_server: FakeProviders,
) -> AsyncIterator[Client]:
    """The module's time-skipping client, with a worker on ``CHANNEL_QUEUE`` whose providers
    are the real SDKs pointed at the fake server."""
    settings = channel_settings(postgres_url, fake_providers_server)
    plugin = JourneysPlugin(settings, db=engine_db)
    async with Worker(time_env.client, task_queue=CHANNEL_QUEUE, plugins=[plugin]):
        yield client
