"""Recorded runs of the retention workflow (``JOURNEYS_RECORD_HISTORIES=1 pytest
tests/retention/test_retention_workflow.py`` records them) replay against the current
``RetentionWorkflow``: a change to its command order fails here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.workflows.retention import RETENTION_WORKFLOW

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_a_run_in_several_batches_is_recorded():
    assert "test_the_workflow_deletes_in_small_batches_and_shows_its_progress" in {
        path.stem for path in HISTORIES
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_run_replays(path: Path):
    plugin = JourneysPlugin(Settings(database_url="sqlite:///:memory:"))
    record = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])
    started = record["history"]["events"][0]["workflowExecutionStartedEventAttributes"]
    assert started["workflowType"]["name"] == RETENTION_WORKFLOW

    result = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None, result.replay_failure
