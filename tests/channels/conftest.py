"""Channel tests: the real SendGrid and Twilio SDKs and httpx against a fake provider server on
127.0.0.1, with journeys run by a second worker on the shared time-skipping server.

``channel_client`` is that worker's client and ``CHANNEL_QUEUE`` its task queue; tests that need
other channel settings (quiet hours, caps) start their own worker with ``channel_worker``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from store.db import Database
from tests.support.fake_providers import FakeProviders

CHANNEL_QUEUE = "journeys-channels-test"
SECRET_KEY = "channel-tests-secret-key-0123456789"
WEBHOOK_SECRET = "whsec-channel-tests"
PUBLIC_URL = "https://journeys.example.test"
TWILIO_SID = "AC" + "0" * 32


def channel_settings(postgres_url: str, fake: FakeProviders, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": postgres_url,
        "task_queue": CHANNEL_QUEUE,
        "sendgrid_api_key": "SG.test",
        "sendgrid_base_url": fake.url,
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": "twilio-test-token",
        "twilio_from_number": "+15005550006",
        "twilio_base_url": fake.url,
        "secret_key": SECRET_KEY,
        "webhook_signing_secret": WEBHOOK_SECRET,
        "public_url": PUBLIC_URL,
        "unsubscribe_mailto": "unsubscribe@journeys.example.test",
        # Short, so a slow answer times out in about a second of real time.
        "provider_timeout_seconds": 1.0,
        "sms_quiet_hours": "",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def fake_providers_server() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake_providers(fake_providers_server: FakeProviders) -> FakeProviders:
    """The fake server, with nothing recorded or scripted when the test starts."""
    fake_providers_server.reset()
    return fake_providers_server


@asynccontextmanager
async def channel_worker(
    env: WorkflowEnvironment, db: Database, settings: Settings
) -> AsyncIterator[str]:
    """A worker with ``settings`` on a task queue of its own; yields the queue's name."""
    queue = f"{settings.task_queue}-{uuid.uuid4().hex[:8]}"
    plugin = JourneysPlugin(settings.model_copy(update={"task_queue": queue}), db=db)
    async with Worker(env.client, task_queue=queue, plugins=[plugin]):
        yield queue


@pytest_asyncio.fixture(scope="session")
async def channel_client(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    fake_providers_server: FakeProviders,
) -> AsyncIterator[Client]:
    """The shared time-skipping client, with a worker on ``CHANNEL_QUEUE`` whose providers
    are the real SDKs pointed at the fake server."""
    settings = channel_settings(postgres_url, fake_providers_server)
    plugin = JourneysPlugin(settings, db=engine_db)
    async with Worker(time_env.client, task_queue=CHANNEL_QUEUE, plugins=[plugin]):
        yield client
