"""The retention workflow on the time-skipping server, with the real activities on a database
of its own: it deletes in several small batches, across several activity calls, and shows its
progress in its current details. ``JOURNEYS_RECORD_HISTORIES=1`` records its history for
``test_retention_replay.py``."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from temporalio.client import WorkflowExecutionStatus, WorkflowHistory
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.activities.retention import RetentionActivities
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, Message
from temporal_journeys.workflows import retention as retention_workflow
from temporal_journeys.workflows.retention import (
    CLEAR_BODIES,
    DELETE_EVENTS,
    RETENTION_WORKFLOW,
    EventsCall,
    EventsProgress,
    RetentionInput,
    RetentionResult,
    describe,
)
from tests.support import harness as h
from tests.support.retention import CONTENT, add_event, add_message, add_segment, event_ids

HISTORIES = Path(__file__).parent / "histories"


def _activities(history: WorkflowHistory, name: str) -> int:
    return sum(
        e.activity_task_scheduled_event_attributes.activity_type.name == name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    )


async def test_the_workflow_deletes_in_small_batches_and_shows_its_progress(
    time_env: WorkflowEnvironment, own_db: Database, own_postgres_url: str
):
    now = await time_env.get_current_time()
    add_segment(own_db, {"event": "order.completed"})  # ever: its events stay
    for days in (400, 200, 90, 60, 45, 40, 31):
        add_event(own_db, now, "page.viewed", days)
    add_event(own_db, now, "order.completed", 400)
    for days in (20, 1, 0):
        add_event(own_db, now, "page.viewed", days)
    for days in (100, 50, 40):
        add_message(own_db, now, days, **CONTENT)
    add_message(own_db, now, 5, **CONTENT)
    settings = Settings(
        database_url=own_postgres_url,
        task_queue=h.unique("retention"),
        retention_events_days=30,
        retention_message_bodies_days=30,
    )

    async with Worker(
        time_env.client,
        task_queue=settings.task_queue,
        plugins=[JourneysPlugin(settings, db=own_db)],
    ):
        handle = await time_env.client.start_workflow(
            RETENTION_WORKFLOW,
            RetentionInput(batch_size=2, batches_per_call=2),
            id=h.unique("retention"),
            task_queue=settings.task_queue,
            result_type=RetentionResult,
        )
        result = await handle.result()
        metadata = await handle.query("__temporal_workflow_metadata")
        history = await handle.fetch_history()
        await h.record_history(handle, HISTORIES)

    assert result.events.deleted == 7
    assert result.events.done and result.events.batches >= 4
    assert result.events.kept_for_conditions == "order.completed (forever)"
    assert result.bodies.cleared == 3 and result.bodies.batches == 2
    # Two batches per call: the events pass took several activity calls.
    assert _activities(history, DELETE_EVENTS) >= 3
    assert _activities(history, CLEAR_BODIES) >= 1
    details = metadata.current_details
    assert details == describe(result)
    assert "events 7 deleted of" in details and "message contents 3 cleared in 2" in details
    with own_db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 4
        assert session.scalar(select(func.count()).where(Message.body.is_not(None))) == 1


async def test_a_dry_run_reports_what_would_go_and_changes_nothing(
    time_env: WorkflowEnvironment, own_db: Database, own_postgres_url: str
):
    now = await time_env.get_current_time()
    for days in (90, 60, 45):
        add_event(own_db, now, "page.viewed", days)
    add_event(own_db, now, "page.viewed", 1)
    add_message(own_db, now, 100, **CONTENT)
    settings = Settings(
        database_url=own_postgres_url,
        task_queue=h.unique("retention"),
        retention_events_days=30,
        retention_message_bodies_days=None,  # kept forever: that pass does nothing
    )

    async with Worker(
        time_env.client,
        task_queue=settings.task_queue,
        plugins=[JourneysPlugin(settings, db=own_db)],
    ):
        result = await time_env.client.execute_workflow(
            RETENTION_WORKFLOW,
            RetentionInput(dry_run=True, batch_size=2),
            id=h.unique("retention"),
            task_queue=settings.task_queue,
            result_type=RetentionResult,
        )

    assert result.dry_run and result.events.deleted == 3 and result.bodies.cleared == 0
    assert describe(result).startswith("Retention (dry run): events 3 would go of 4")
    with own_db.transaction() as session:
        assert session.scalar(select(func.count()).select_from(Event)) == 4
        assert session.scalar(select(func.count()).where(Message.body.is_not(None))) == 1


async def test_a_retried_attempt_resumes_from_its_last_heartbeat(own_db: Database):
    now = datetime.now(UTC)
    ids = [add_event(own_db, now, "page.viewed", 40) for _ in range(5)]
    settings = Settings(database_url="sqlite://", retention_events_days=30)
    env = ActivityEnvironment()
    # The previous attempt heartbeated its cursor past the first three events before its
    # worker died; the heartbeat comes back decoded without a type, as a dict.
    env.info = dataclasses.replace(
        env.info,
        attempt=2,
        heartbeat_details=[{"after_id": ids[2], "scanned": 3, "deleted": 3, "batches": 1}],
    )
    beats: list[EventsProgress] = []
    env.on_heartbeat = lambda *details: beats.append(details[0])
    call = EventsCall(now=now, dry_run=False, batch_size=2, batches=10, progress=EventsProgress())

    progress = await env.run(RetentionActivities(own_db, settings).delete_events, call)

    assert (progress.scanned, progress.deleted, progress.done) == (5, 5, True)
    assert [b.after_id for b in beats] == [ids[4], ids[4]]
    # It went on from the cursor: the three before it (left in place here) were not looked at.
    assert event_ids(own_db) == set(ids[:3])


async def test_a_long_pass_continues_as_new_and_carries_its_totals(
    time_env: WorkflowEnvironment,
    own_db: Database,
    own_postgres_url: str,
    monkeypatch: pytest.MonkeyPatch,
):
    now = await time_env.get_current_time()
    for days in range(40, 46):
        add_event(own_db, now, "page.viewed", days)
    settings = Settings(
        database_url=own_postgres_url, task_queue=h.unique("retention"), retention_events_days=30
    )
    # The workflow module passes through the sandbox: the worker's runs see this.
    monkeypatch.setattr(retention_workflow, "CALLS_PER_RUN", 2)

    async with Worker(
        time_env.client,
        task_queue=settings.task_queue,
        plugins=[JourneysPlugin(settings, db=own_db)],
    ):
        handle = await time_env.client.start_workflow(
            RETENTION_WORKFLOW,
            RetentionInput(batch_size=1, batches_per_call=1),
            id=h.unique("retention"),
            task_queue=settings.task_queue,
            result_type=RetentionResult,
        )
        result = await handle.result()
        first_run = await time_env.client.get_workflow_handle(
            handle.id, run_id=handle.first_execution_run_id
        ).describe()

    assert first_run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW
    assert (result.events.deleted, result.events.scanned) == (6, 6), result
    assert event_ids(own_db) == set()
