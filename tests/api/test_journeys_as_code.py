"""`journeys diff` and `journeys apply` against the API: a second apply changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from journeys import cli
from journeys.plugin import JourneysPlugin
from store import keys
from store.db import Database
from tests.engine import harness as h

SPEC = """
key: {key}
name: Code review nudge
trigger: {{event: {key}.opened}}
steps:
  - id: wait
    wait: {wait}
  - id: nudge
    send: {{channel: email, template: code-nudge}}
"""


@pytest.fixture
def http(engine_db: Database, plugin: JourneysPlugin):
    h.template(engine_db, "code-nudge", subject="Nudge")
    app = create_app(plugin.settings, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "cli", "admin")
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def run(http: TestClient, monkeypatch: pytest.MonkeyPatch, *args: str):
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    return CliRunner().invoke(cli.app, list(args))


def test_apply_publishes_once_and_diff_shows_step_changes(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    key = h.unique("code")
    path = tmp_path / "nudge.yaml"
    path.write_text(SPEC.format(key=key, wait="PT1H"))

    first = run(http, monkeypatch, "diff", str(path))
    assert first.exit_code == 0 and f"+ journey {key} (2 steps)" in first.output
    applied = run(http, monkeypatch, "apply", str(path))
    assert applied.exit_code == 0, applied.output
    assert f"{key}: published v1" in applied.output
    again = run(http, monkeypatch, "apply", str(path))
    assert f"{key}: no change" in again.output

    path.write_text(SPEC.format(key=key, wait="PT2H"))
    changed = run(http, monkeypatch, "diff", str(path))
    assert "~ step wait: wait 'PT1H' -> 'PT2H'" in changed.output
    dry = run(http, monkeypatch, "apply", "--dry-run", str(path))
    assert f"{key}: would publish" in dry.output
    assert len(http.get(f"/v1/journeys/{key}/versions").json()) == 1
    published = run(http, monkeypatch, "apply", str(path))
    assert f"{key}: published v2" in published.output


def test_apply_reports_an_invalid_file_and_fails(
    http: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    path = tmp_path / "bad.yaml"
    path.write_text(SPEC.format(key="bad-code", wait="soon"))
    result = run(http, monkeypatch, "apply", str(path))
    assert result.exit_code == 1
    assert "$.steps[0].wait" in result.output
