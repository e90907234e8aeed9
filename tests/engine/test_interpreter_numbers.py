"""A run keeps the interpreter behaviour its entry started on (the table beside ``INTERPRETER``
in workflows/types.py), whatever the code's current number."""

from __future__ import annotations

import json
from typing import Any

import pytest
from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows import starter
from temporal_journeys.workflows.journey import SHORT_WAIT_PATCH
from tests.support import harness as h
from tests.support.specs import SHORT_WAIT


def _patch_markers(history: Any) -> list[dict[str, Any]]:
    return [
        json.loads(e.marker_recorded_event_attributes.details["patch-data"].payloads[0].data)
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_patch"
    ]


def _upserted(history: Any) -> list[str]:
    upserts = [e.upsert_workflow_search_attributes_event_attributes for e in history.events]
    return [name for u in upserts for name in u.search_attributes.indexed_fields]


async def test_an_interpreter_1_run_skips_a_short_waits_bookkeeping_naming_the_retired_patch(
    client: Client, engine_db: Database, monkeypatch: pytest.MonkeyPatch
):
    """Entries started before the input carried a number are 1: their short waits skip the
    bookkeeping as on 2, and name the retired patch, deprecated: a marker and the
    ``TemporalChangeVersion`` upsert, as the patch wrote them."""
    monkeypatch.setattr(starter, "INTERPRETER", 1)  # a starter older than the field
    h.template(engine_db, "short-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SHORT_WAIT.format(key=h.unique("older")))
    contact = h.contact(engine_db)
    handle = await h.start(client, journey, version, contact, h.event("user.signed_up"))
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert len(h.messages(engine_db, contact)) == 2
    enrollment = h.assert_recorded(engine_db, view)  # every funnel row, once
    assert enrollment.status == "completed" and enrollment.ended_at is not None
    history = await handle.fetch_history()
    assert h.local_activities(history) == 1  # begin_enrollment; the last send recorded the end
    assert _patch_markers(history) == [{"id": SHORT_WAIT_PATCH, "deprecated": True}]
    assert _upserted(history) == ["TemporalChangeVersion", sa.STATUS.name]
