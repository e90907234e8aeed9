"""Push and WhatsApp tests: FCM through google-auth and requests against a fake FCM (token
endpoint included), WhatsApp through the real Twilio SDK against the fake provider server, with
journeys run by a worker of their own on the module's time-skipping server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_providers import FakeProviders


@pytest.fixture(scope="session")
def fake_fcm_server() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


@pytest.fixture
def fake_fcm(fake_fcm_server: FakeFcm) -> FakeFcm:
    """The fake FCM, with nothing recorded, scripted or unregistered when the test starts."""
    fake_fcm_server.reset()
    return fake_fcm_server


@pytest.fixture(scope="session")
def push_fake_providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture
def fake_twilio(push_fake_providers: FakeProviders) -> FakeProviders:
    push_fake_providers.reset()
    return push_fake_providers


@pytest.fixture(scope="session")
def push_settings(
    postgres_url: str,
    fake_fcm_server: FakeFcm,
    push_fake_providers: FakeProviders,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """Channel settings with FCM (its service-account file's token_uri at the fake) and a
    WhatsApp sender."""
    key_file = fake_fcm_server.service_account_file(
        Path(tmp_path_factory.mktemp("fcm")) / "service-account.json"
    )
    return channels.channel_settings(
        postgres_url,
        push_fake_providers,
        fcm_service_account_file=str(key_file),
        fcm_base_url=fake_fcm_server.url,
        twilio_whatsapp_from_number="+14155238886",
        task_queue="journeys-push-test",
    )


@pytest_asyncio.fixture(scope="module")
async def push_queue(
    client: Client, time_env: WorkflowEnvironment, engine_db: Database, push_settings: Settings
) -> AsyncIterator[str]:
    """The task queue of a worker whose providers are FCM and Twilio at the fakes."""
    async with channels.channel_worker(time_env, engine_db, push_settings) as queue:
        yield queue
