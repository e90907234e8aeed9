"""Recorded histories of every step kind and every interpreter number replay against the
current interpreter.

A change to workflow code that alters command order fails here: guard it with a new
``Behaviour`` and ``INTERPRETER`` number (the table in ``workflows/types.py``), keep the old
histories, and record histories of the new behaviour with
``JOURNEYS_RECORD_HISTORIES=1 pytest tests/engine``.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import STEP_KINDS
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.workflows.journey import SHORT_WAIT_PATCH
from temporal_journeys.workflows.types import INTERPRETER

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def _events(path: Path) -> list[dict]:
    return json.loads(path.read_text())["history"]["events"]


def _journey_input(path: Path) -> dict:
    started = _events(path)[0]
    payload = started["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
    return json.loads(base64.b64decode(payload["data"]))


def _patches(path: Path) -> list[dict]:
    """The patch markers a history holds: ``{"id": ..., "deprecated": ...}``."""
    markers = [
        event["markerRecordedEventAttributes"]
        for event in _events(path)
        if event["eventType"] == "EVENT_TYPE_MARKER_RECORDED"
    ]
    return [
        json.loads(base64.b64decode(marker["details"]["patch-data"]["payloads"][0]["data"]))
        for marker in markers
        if marker["markerName"] == "core_patch"
    ]


def test_recorded_histories_cover_every_step_kind():
    kinds = {
        kind
        for path in HISTORIES
        for step in _journey_input(path)["journey"]["steps"]
        for kind in STEP_KINDS
        if kind in step
    }
    assert kinds == set(STEP_KINDS)


def test_recorded_histories_cover_every_interpreter_number():
    numbers = {_journey_input(path).get("interpreter", 1) for path in HISTORIES}
    assert numbers == set(range(1, INTERPRETER + 1))


def test_only_interpreter_1_histories_hold_the_retired_patch():
    """The patch-era history's marker (not deprecated) is why interpreter-1 runs still name
    the patch with ``deprecate_patch``: replaying it without that fails. Runs on 1 that meet
    a short wait now record it deprecated."""
    marked = {
        path.stem: (_journey_input(path).get("interpreter", 1), _patches(path))
        for path in HISTORIES
        if _patches(path)
    }
    era, later = (
        "short_wait_skipped_bookkeeping_under_the_patch",
        "test_an_interpreter_1_run_skips_a_short_waits_bookkeeping_naming_the_retired_patch",
    )
    assert marked == {
        era: (1, [{"id": SHORT_WAIT_PATCH, "deprecated": False}]),
        later: (1, [{"id": SHORT_WAIT_PATCH, "deprecated": True}]),
    }


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_recorded_history_replays(path: Path):
    plugin = JourneysPlugin(Settings(database_url="sqlite:///:memory:"))
    record = json.loads(path.read_text())  # noqa: ASYNC240 - a small fixture file
    history = WorkflowHistory.from_json(record["workflow_id"], record["history"])

    result = await Replayer(workflows=[], plugins=[plugin]).replay_workflow(
        history, raise_on_replay_failure=False
    )

    assert result.replay_failure is None, result.replay_failure
