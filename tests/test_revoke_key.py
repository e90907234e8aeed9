"""`journeys revoke-key`: a revoked key is refused from then on; the others keep working.

Issue 14, item 11: there was no command to revoke an API key."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from temporal_journeys.cli.commands import app
from temporal_journeys.journeys.settings import get_settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", url)
    get_settings.cache_clear()
    database = Database(url)
    yield database
    database.dispose()
    get_settings.cache_clear()


def _create(db: Database, name: str, scope: str = "track") -> str:
    with db.transaction() as session:
        return keys.create(session, name, scope)


def _scope(db: Database, key: str) -> str | None:
    with db.transaction() as session:
        return keys.scope_of(session, key)


def test_revoking_a_key_by_the_key_itself(db: Database):
    shop, other = _create(db, "shop"), _create(db, "other")

    result = runner.invoke(app, ["revoke-key"], input=shop + "\n")  # from stdin: not in history

    assert result.exit_code == 0, result.output
    assert "revoked 1 key (shop)" in result.output
    assert (_scope(db, shop), _scope(db, other)) == (None, "track")
    again = runner.invoke(app, ["revoke-key"], input=shop + "\n")
    assert again.exit_code == 1 and "no such key, or revoked already" in again.output


def test_revoking_every_key_of_a_name(db: Database):
    first, second, admin = _create(db, "shop"), _create(db, "shop"), _create(db, "ops", "admin")

    result = runner.invoke(app, ["revoke-key", "--name", "shop"])

    assert result.exit_code == 0, result.output
    assert "revoked 2 keys (shop)" in result.output
    assert [_scope(db, k) for k in (first, second, admin)] == [None, None, "admin"]
    missing = runner.invoke(app, ["revoke-key", "--name", "nobody"])
    assert missing.exit_code == 1 and "no such key, or revoked already" in missing.output
