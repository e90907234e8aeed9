"""Recorded histories of every step kind replay against the current interpreter.

A change to workflow code that alters command order fails here: guard it with
``workflow.patched`` or a new ``INTERPRETER`` number in the run's input (no marker in every
history), keep the old histories, and record histories of the new behaviour with
``JOURNEYS_RECORD_HISTORIES=1 pytest tests/engine``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from journeys.plugin import JourneysPlugin
from journeys.settings import Settings
from journeys.spec import STEP_KINDS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _journey_input(path: Path) -> dict:
    started = json.loads(path.read_text())["history"]["events"][0]
    payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    return json.loads(base64.b64decode(payload["data"]))


def test_recorded_histories_cover_every_step_kind():
    kinds = {
        kind
        for path in HISTORIES
        for step in _journey_input(path)["journey"]["steps"]
        for kind in STEP_KINDS
        if kind in step
    }
    assert kinds == set(STEP_KINDS)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    plugin = JourneysPlugin(Settings(database_url="sqlite:///:memory:"))
    record = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])

    result = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None, result.replay_failure
