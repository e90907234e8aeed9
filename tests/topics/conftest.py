"""Topic tests: a worker whose SendGrid and Twilio are the real SDKs against a fake provider
server of these tests' own, on a task queue of its own (``topic_queue``), beside the API."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from tests.support.channels import channel_settings, channel_worker
from tests.support.fake_providers import FakeProviders


@pytest.fixture(scope="session")
def topic_providers_server() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def topic_providers(topic_providers_server: FakeProviders) -> FakeProviders:
    """The fake server, with nothing recorded when the test starts."""
    topic_providers_server.reset()
    return topic_providers_server


@pytest_asyncio.fixture(scope="module")
async def topic_queue(
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    topic_providers_server: FakeProviders,
) -> AsyncIterator[str]:
    settings = channel_settings(postgres_url, topic_providers_server)
    async with channel_worker(time_env, engine_db, settings) as queue:
        yield queue
