"""``journeys runs USER_ID``: a contact's runs, each with its Temporal UI link, and the filter
that lists them (the ids here unhashed: encryption off)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.cli import commands as cli
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import contacts, enrollments, keys
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.starter import workflow_id
from tests.support import harness as h


@pytest.fixture
def http(engine_db: Database, postgres_url: str) -> TestClient:
    app = create_app(Settings(database_url=postgres_url), db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "runs cli", "admin")
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def _runs(http: TestClient, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    return CliRunner().invoke(cli.app, ["runs", *args])


def test_runs_prints_each_run_with_its_ui_link_and_the_list_filter(
    http: TestClient, engine_db: Database, monkeypatch: pytest.MonkeyPatch
):
    user = f"{h.unique('team')}/ada"  # a slash: escaped in the id, kept in the filter
    key = h.unique("runs")
    ids = [workflow_id(key, user), workflow_id(key, user, "cart 7")]
    with engine_db.transaction() as session:
        contacts.upsert(session, user, {"email": "ada@example.com"})
    for number, (run, correlation) in enumerate(zip(ids, [None, "cart 7"], strict=True)):
        with engine_db.transaction() as session:
            enrollments.record_start(
                session.connection(),
                enrollment_id=h.unique("run"),
                workflow_id=run,
                journey_key=key,
                version=1,
                contact_id=user,
                correlation=correlation,
                step=f"step-{number}",
                at=datetime(2026, 12, 1, 9, number, tzinfo=UTC),
            )

    shown = _runs(http, monkeypatch, user)

    assert shown.exit_code == 0, shown.output
    ui = "http://127.0.0.1:8233/namespaces/default/workflows"
    lines = shown.output.splitlines()
    for run, step in zip(ids, ["step-0", "step-1"], strict=True):
        at = lines.index(f"{run}  running  step {step}")
        assert lines[at + 1] == f"  {ui}/{quote(run, safe='')}"
    assert lines[-1] == f'list filter: JourneyContactId = "{user}"'


def test_runs_says_when_a_contact_has_none_and_fails_naming_an_unknown_one(
    http: TestClient, engine_db: Database, monkeypatch: pytest.MonkeyPatch
):
    user = h.contact(engine_db)
    assert _runs(http, monkeypatch, user).output == f"{user}: no runs\n"

    unknown = _runs(http, monkeypatch, h.unique("nobody"))
    assert unknown.exit_code == 1
    assert "HTTP 404" in unknown.output
