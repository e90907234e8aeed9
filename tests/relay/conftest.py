"""The relay under test with a worker of its own, on the backend under test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.store.db import Database
from tests.support.own_worker import own_worker


@pytest_asyncio.fixture
async def relay(
    db: Database, database_url: str, time_env: WorkflowEnvironment
) -> AsyncIterator[OutboxRelay]:
    """A worker of its own on the backend under test, and a relay on a ``Database`` of its own
    (so the statements counted are the relay's alone, not the worker's)."""
    async with own_worker(time_env.client, database_url, "relay") as (settings, own):
        yield OutboxRelay(own, TemporalConnection(settings, time_env.client), settings)
