"""The same migrations build the models' schema on Postgres and SQLite, and take it down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from store.db import make_engine
from store.migrate import downgrade, upgrade
from store.models import Base
from tests.support.postgres import fresh_database


@pytest.fixture(params=["postgres", "sqlite"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


def _tables(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _differences(url: str) -> list:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_head_builds_exactly_the_models(empty_url: str):
    upgrade(empty_url)

    assert _tables(empty_url) == set(Base.metadata.tables)
    assert _differences(empty_url) == []


def test_downgrade_base_removes_everything_and_upgrade_rebuilds(empty_url: str):
    upgrade(empty_url)
    downgrade(empty_url)
    assert _tables(empty_url) == set()

    upgrade(empty_url)
    assert _tables(empty_url) == set(Base.metadata.tables)
