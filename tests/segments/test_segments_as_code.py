"""`journeys apply` and `diff` with segment files beside journey files: segments are saved
first (each after those it names), a journey on a segment is then published, a second apply
changes nothing, and diff shows a changed condition."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from temporal_journeys.api.app import create_app
from temporal_journeys.cli import commands as cli
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from tests.support import harness as h

EXAMPLES = Path(__file__).parents[2] / "examples" / "segments"
pytestmark = pytest.mark.usefixtures("segments_cleaned")


@pytest.fixture
def http(engine_db: Database, plugin: JourneysPlugin) -> TestClient:
    app = create_app(plugin.settings, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        key = keys.create(session, "cli", "admin")
    return TestClient(app, headers={"Authorization": f"Bearer {key}"})


def run(http: TestClient, monkeypatch: pytest.MonkeyPatch, *args: str):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(cli, "_api", lambda url, key: http)
    return CliRunner().invoke(cli.app, list(args))


def test_apply_saves_segments_before_the_journeys_on_them(
    http: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    for path in EXAMPLES.glob("*.yaml"):
        shutil.copy(path, tmp_path / path.name)
    key = h.unique("segtest")
    journey = tmp_path / "a-journey.yaml"
    journey.write_text(
        f"key: {key}\nname: VIP runners\ntrigger: {{segment: vip-paris-runners}}\n"
        "steps:\n  - {id: hold, wait: P1D}\n"
    )
    # Given in an order where the journey and the segment of segments come first.
    files = [journey, tmp_path / "vip-paris-runners.yaml", *sorted(tmp_path.glob("[n-v]*.yaml"))]
    files = list(dict.fromkeys(files))
    first = run(http, monkeypatch, "apply", *map(str, files))
    assert first.exit_code == 0, first.output
    lines = [line for line in first.output.splitlines() if not line.startswith("  ")]
    saved = [line.split(": ")[1] for line in lines if line.endswith(": saved v1")]
    assert saved.index("vip") < saved.index("vip-paris-runners")
    assert saved.index("paris-runners") < saved.index("vip-paris-runners")
    assert f"{key}: published v1" in first.output

    again = run(http, monkeypatch, "apply", *map(str, files))
    assert again.exit_code == 0
    assert again.output.count("no change") == len(files)

    changed = tmp_path / "vip.yaml"
    changed.write_text(changed.read_text().replace("gte: 1000", "gte: 2000"))
    diff = run(http, monkeypatch, "diff", str(changed))
    assert diff.exit_code == 0
    assert "condition:" in diff.output and "2000" in diff.output
