"""Shared fixtures: a fresh, migrated Postgres database and SQLite file; a time-skipping
Temporal server with one journeys worker on the Postgres database."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy import delete
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys import search_attributes
from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from store.db import Database
from store.migrate import upgrade
from store.models import Base
from tests.engine.harness import TASK_QUEUE
from tests.support.postgres import DEFAULT_URL, answers, fresh_database, throwaway_server


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


TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"


@pytest.fixture(scope="session")
def engine_db(postgres_url: str) -> Iterator[Database]:
    db = Database(postgres_url)
    yield db
    db.dispose()


@pytest_asyncio.fixture(scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    await search_attributes.register(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest.fixture(scope="session")
def plugin(engine_db: Database, postgres_url: str) -> JourneysPlugin:
    # No channel quiet hours: the time-skipping clock starts at the wall clock, so a default
    # SMS window would make tests depend on the hour they run at. Tests of quiet hours set them.
    settings = Settings(database_url=postgres_url, task_queue=TASK_QUEUE, sms_quiet_hours="")
    return JourneysPlugin(settings, db=engine_db)


@pytest_asyncio.fixture(scope="session")
async def client(time_env: WorkflowEnvironment, plugin: JourneysPlugin) -> AsyncIterator[Client]:
    async with Worker(time_env.client, task_queue=TASK_QUEUE, plugins=[plugin]):
        yield time_env.client
