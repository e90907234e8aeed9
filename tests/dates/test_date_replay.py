"""Recorded fires of a date schedule (``JOURNEYS_RECORD_HISTORIES=1 pytest
tests/dates/test_date_schedule.py`` records them) replay against the current
``DateEntryWorkflow``: a change to its command order fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.workflows.date_entry import DATE_ENTRY_WORKFLOW

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_of_both_ways_to_fire_are_recorded():
    names = {path.stem for path in HISTORIES}
    assert {"fire_entering_tokyo", "fire_at_the_scheduled_time"} <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_fire_replays(path: Path):
    plugin = JourneysPlugin(Settings(database_url="sqlite:///:memory:"))
    record = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])
    started = record["history"]["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["workflowType"]["name"] == DATE_ENTRY_WORKFLOW

    result = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None, result.replay_failure
