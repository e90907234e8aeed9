"""``journeys retention``: the pass run from the command line on the configured database, its
progress printed batch by batch; ``--dry-run`` changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from temporal_journeys.cli.commands import app
from temporal_journeys.journeys.settings import get_settings
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import utcnow
from tests.support.retention import CONTENT, add_event, add_message, add_segment, event_ids

runner = CliRunner()


@pytest.fixture
def configured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'journeys.db'}"
    upgrade(url)
    monkeypatch.setenv("JOURNEYS_DATABASE_URL", url)
    monkeypatch.setenv("JOURNEYS_RETENTION_EVENTS_DAYS", "30")
    monkeypatch.setenv("JOURNEYS_RETENTION_MESSAGE_BODIES_DAYS", "60")
    get_settings.cache_clear()
    db = Database(url)
    try:
        yield db
    finally:
        db.dispose()
        get_settings.cache_clear()


def test_the_command_shows_each_batch_and_a_dry_run_changes_nothing(configured: Database):
    now = utcnow()
    add_segment(configured, {"event": "order.completed", "within": "P90D"})
    for days in (100, 80, 50, 40, 35):
        add_event(configured, now, "page.viewed", days)
    add_event(configured, now, "order.completed", 80)  # a 90-day window still reads it
    add_event(configured, now, "page.viewed", 3)
    add_message(configured, now, 70, **CONTENT)
    before = event_ids(configured)

    dry = runner.invoke(app, ["retention", "--dry-run", "--batch-size", "2"])

    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert lines[0].startswith("Retention (dry run): events 2 would go of 2 looked at in 1")
    assert "events 5 would go of 7 looked at in 4 batches;" in lines[3]
    assert lines[-2].endswith("message contents 1 would be cleared in 1 batches")
    assert lines[-1] == "events kept for conditions: order.completed (90 d)"
    assert event_ids(configured) == before

    done = runner.invoke(app, ["retention"])

    assert done.exit_code == 0, done.output
    assert "events 5 deleted of 7 looked at in 1 batches" in done.output
    assert "message contents 1 cleared in 1 batches" in done.output
    assert len(event_ids(configured)) == 2
