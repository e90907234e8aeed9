"""A time-skipping Temporal server and one journeys worker for the engine tests."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys import search_attributes
from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from store.db import Database
from tests.engine.harness import TASK_QUEUE

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
    return JourneysPlugin(Settings(database_url=postgres_url, task_queue=TASK_QUEUE), db=engine_db)


@pytest_asyncio.fixture(scope="session")
async def client(time_env: WorkflowEnvironment, plugin: JourneysPlugin) -> AsyncIterator[Client]:
    async with Worker(time_env.client, task_queue=TASK_QUEUE, plugins=[plugin]):
        yield time_env.client
