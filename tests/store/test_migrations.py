"""The same migrations build the models' schema on Postgres and SQLite, and take it down."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from temporal_journeys.store import partitions
from temporal_journeys.store.db import make_engine
from temporal_journeys.store.migrate import config, downgrade, migrations_dir, upgrade
from temporal_journeys.store.models import Base
from tests.support.postgres import fresh_database

MODEL_TABLES = set(Base.metadata.tables)


@contextmanager
def _empty_database(backend: str, request: pytest.FixtureRequest, name: str) -> Iterator[str]:
    """A database no other test uses (the session databases stay untouched)."""
    if backend == "sqlite":
        yield f"sqlite:///{request.getfixturevalue('tmp_path') / name}.db"
        return
    with fresh_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


@pytest.fixture(params=["postgres", "sqlite"])
def empty_url(request: pytest.FixtureRequest) -> Iterator[str]:
    with _empty_database(request.param, request, "empty") as url:
        yield url


@pytest.fixture
def created_url(empty_url: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """Another database on the same backend, built by ``create_all`` from the models."""
    backend = "sqlite" if empty_url.startswith("sqlite") else "postgres"
    with _empty_database(backend, request, "created") as url:
        engine = make_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url


def _schema(url: str) -> dict[str, Any]:
    """Everything the database reports about each table, in a comparable form."""
    engine = make_engine(url)
    try:
        found = inspect(engine)
        return {
            table: {
                "columns": [
                    (c["name"], str(c["type"]), c["nullable"], c["default"], c.get("autoincrement"))
                    for c in found.get_columns(table)
                ],
                "primary key": found.get_pk_constraint(table),
                "unique": sorted(
                    (u["name"], u["column_names"]) for u in found.get_unique_constraints(table)
                ),
                "indexes": sorted(
                    (i["name"], i["column_names"], i["unique"]) for i in found.get_indexes(table)
                ),
            }
            for table in found.get_table_names()
            if table != "alembic_version" and not partitions.is_partition(table)
        }
    finally:
        engine.dispose()


def _differences(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection, opts={"compare_type": True, "include_name": partitions.include_name}
            )
            return compare_metadata(context, Base.metadata)
    finally:
        engine.dispose()


def test_upgrade_head_builds_exactly_the_models(empty_url: str):
    upgrade(empty_url)

    assert set(_schema(empty_url)) == MODEL_TABLES
    assert _differences(empty_url) == []


def test_migrated_schema_is_the_one_create_all_builds(empty_url: str, created_url: str):
    """Stricter than autogenerate: also constraint names, defaults, serial/identity columns."""
    upgrade(empty_url)

    assert _schema(empty_url) == _schema(created_url)


def test_downgrade_base_removes_everything_and_upgrade_rebuilds(empty_url: str):
    upgrade(empty_url)
    downgrade(empty_url)
    assert _schema(empty_url) == {}

    upgrade(empty_url)
    assert set(_schema(empty_url)) == MODEL_TABLES
    assert _differences(empty_url) == []


def test_revisions_form_one_line_of_dated_documented_files():
    scripts = ScriptDirectory.from_config(config("sqlite://"))
    assert len(scripts.get_heads()) == 1
    files = sorted((migrations_dir() / "versions").glob("[!_]*.py"))
    assert len(files) == len(list(scripts.walk_revisions()))
    for path in files:
        assert re.fullmatch(r"\d{8}_\d{4}_[a-z0-9_]+\.py", path.name), path.name
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        why = docstring.split("Revision ID:")[0].strip()
        assert why, f"{path.name} needs a docstring saying why it exists"


def test_python_m_store_migrate_upgrades_the_configured_database(tmp_path: Path):
    """What the compose `migrate` job runs: settings from the environment, any directory."""
    url = f"sqlite:///{tmp_path / 'configured.db'}"
    environ = {**os.environ, "JOURNEYS_DATABASE_URL": url}
    subprocess.run(
        [sys.executable, "-m", "temporal_journeys.store.migrate"],
        cwd=tmp_path,
        env=environ,
        check=True,
        timeout=120,
    )

    assert set(_schema(url)) == MODEL_TABLES
