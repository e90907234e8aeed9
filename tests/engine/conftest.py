"""The engine tests use the shared Temporal fixtures of tests/conftest.py; the few that need what
only a real server does (resets, payload size limits) use ``dev_engine``: a Temporal dev server
with a journeys worker whose providers are the real SDKs pointed at a fake server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from temporal_journeys.store.db import Database
from tests.support.dev_engine import DevEngine, running_dev_engine


@pytest_asyncio.fixture(scope="module")
async def dev_engine(
    tmp_path_factory: pytest.TempPathFactory, engine_db: Database, postgres_url: str
) -> AsyncIterator[DevEngine]:
    async with running_dev_engine(
        tmp_path_factory.mktemp("dev-engine"), engine_db, postgres_url
    ) as engine:
        yield engine
