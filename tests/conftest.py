"""Shared fixtures: a fresh, migrated Postgres database and SQLite file; a time-skipping
Temporal server per test module with one journeys worker on the Postgres database; the API
over ASGI on that database and server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import Base
from tests.support.api import Api
from tests.support.harness import TASK_QUEUE
from tests.support.postgres import DEFAULT_URL, answers, fresh_database, throwaway_server
from tests.support.time_server import start_test_server

# The API does not start without the key that signs unsubscribe links (it has no default):
# every app the tests build gets this one, unless a test sets or removes it.
os.environ.setdefault("JOURNEYS_SECRET_KEY", "tests-secret-key")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    url = os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)
    if answers(url):
        yield url
        return
    if os.environ.get("CI") == "true":
        pytest.fail(
            f"PostgreSQL does not answer at {url}; CI needs it (set JOURNEYS_TEST_POSTGRES_URL)"
        )
    with throwaway_server() as started:
        yield started


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    with fresh_database(postgres_server_url) as url:
        upgrade(url)
        yield url


@pytest.fixture
def own_postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A migrated Postgres database of this test's own, for stacks whose processes write to it
    while the test looks on (the shared one is emptied between tests, not shared with them)."""
    with fresh_database(postgres_server_url) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{Path(tmp_path_factory.mktemp('sqlite')) / 'journeys.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session", params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_url")


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated database on each backend, empty when the test starts and emptied after it."""
    database = Database(database_url)
    try:
        # Before too: session fixtures such as engine_db write to the same database.
        _empty(database)
        yield database
        _empty(database)
    finally:
        database.dispose()


def _empty(database: Database) -> None:
    with database.transaction() as session:
        for table in reversed(Base.metadata.sorted_tables):
            session.execute(delete(table))


@pytest.fixture(scope="session")
def engine_db(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    yield db
    db.dispose()


@pytest_asyncio.fixture(scope="module")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    # A server per module, not per session: the test server never releases the clock lock of a
    # task whose run was ended under it, and such a lock, leaked by one module, stopped the
    # skipped clock for every module after it (they hung until their timeout, far from the
    # cause). Starting one takes about 0.1 s.
    env = await start_test_server()
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def plugin(engine_db: Database, postgres_url: str) -> JourneysPlugin:
    # No channel quiet hours: the time-skipping clock starts at the wall clock, so a default
    # SMS window would make tests depend on the hour they run at. Tests of quiet hours set them.
    settings = Settings(database_url=postgres_url, task_queue=TASK_QUEUE, sms_quiet_hours="")
    return JourneysPlugin(settings, db=engine_db)


@pytest_asyncio.fixture(scope="module")
async def client(time_env: WorkflowEnvironment, plugin: JourneysPlugin) -> AsyncIterator[Client]:
    async with Worker(time_env.client, task_queue=TASK_QUEUE, plugins=[plugin]):
        yield time_env.client


# The API tests' app, shared with the template tests under tests/channels.
@pytest_asyncio.fixture
async def api(client: Client, engine_db: Database, plugin: JourneysPlugin) -> AsyncIterator[Api]:
    app = create_app(plugin.settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = keys.create(session, "test admin", "admin")
        track = keys.create(session, "test app", "track")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(
            app,
            http,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {track}"},
        )
