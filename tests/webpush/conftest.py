"""Web push tests: pywebpush against a fake push service on 127.0.0.1 that checks the VAPID
JWT and decrypts each message, with FCM (a fake of its own) beside it behind channel push, and
journeys run by a worker of their own on the module's time-skipping server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support.api import Api
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_providers import FakeProviders
from tests.support.fake_webpush import FakeWebPush, vapid_keys

VAPID_SUBJECT = "mailto:push-ops@journeys.example.test"


@pytest.fixture(scope="session")
def vapid() -> tuple[str, str]:
    """(private, public): the operator's VAPID key pair."""
    return vapid_keys()


@pytest.fixture(scope="session")
def fake_webpush_server() -> Iterator[FakeWebPush]:
    with FakeWebPush() as fake:
        yield fake


@pytest.fixture
def fake_webpush(fake_webpush_server: FakeWebPush) -> FakeWebPush:
    """The fake push service, nothing recorded or scripted when the test starts."""
    fake_webpush_server.reset()
    return fake_webpush_server


@pytest.fixture(scope="session")
def webpush_fcm_server() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


@pytest.fixture
def webpush_fcm(webpush_fcm_server: FakeFcm) -> FakeFcm:
    webpush_fcm_server.reset()
    return webpush_fcm_server


@pytest.fixture(scope="session")
def webpush_providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest.fixture(scope="session")
def webpush_settings(
    postgres_url: str,
    vapid: tuple[str, str],
    webpush_fcm_server: FakeFcm,
    webpush_providers: FakeProviders,
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """VAPID keys, the fake push service's loopback host allowed, and FCM beside it."""
    key_file = webpush_fcm_server.service_account_file(
        Path(tmp_path_factory.mktemp("fcm")) / "service-account.json"
    )
    return channels.channel_settings(
        postgres_url,
        webpush_providers,
        vapid_private_key=vapid[0],
        vapid_subject=VAPID_SUBJECT,
        webpush_endpoint_hosts="127.0.0.1",
        webpush_ttl_seconds=3600,
        fcm_service_account_file=str(key_file),
        fcm_base_url=webpush_fcm_server.url,
        task_queue="journeys-webpush-test",
    )


@pytest_asyncio.fixture(scope="module")
async def webpush_queue(
    client: Client, time_env: WorkflowEnvironment, engine_db: Database, webpush_settings: Settings
) -> AsyncIterator[str]:
    async with channels.channel_worker(time_env, engine_db, webpush_settings) as queue:
        yield queue


@pytest_asyncio.fixture
async def webpush_api(
    client: Client, engine_db: Database, webpush_settings: Settings
) -> AsyncIterator[Api]:
    """The API with the web push settings (the fake's loopback host allowed)."""
    app = create_app(webpush_settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = keys.create(session, "webpush admin", "admin")
        track = keys.create(session, "webpush app", "track")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(
            app,
            http,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {track}"},
        )
