"""Databases for the whole suite: a fresh, migrated Postgres database and SQLite file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from sqlalchemy import delete

from store.db import Database
from store.migrate import upgrade
from store.models import Base
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
    """A migrated database on each backend; emptied after each test."""
    database = Database(database_url)
    with ExitStack() as cleanup:
        cleanup.callback(database.dispose)
        yield database
        with database.transaction() as session:
            for table in reversed(Base.metadata.sorted_tables):
                session.execute(delete(table))
