"""The broadcast workflow on the time-skipping server: each contact at 09:00 in their own zone,
a run that continues as new every few batches carrying its cursor, quiet hours sent in a
second pass. ``JOURNEYS_RECORD_HISTORIES=1`` keeps their histories for the replay test."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.activities.broadcast import local_due
from temporal_journeys.journeys.segments import Segment
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Broadcast
from temporal_journeys.workflows.broadcast import (
    BROADCAST_WORKFLOW,
    BroadcastInput,
    BroadcastPlan,
    workflow_id,
)
from tests.support import broadcasts as b
from tests.support import harness as h
from tests.support.harness import TASK_QUEUE

HISTORIES = Path(__file__).parent / "histories"
ZONES = ("Europe/Paris", "America/New_York", "Asia/Tokyo")


@pytest.fixture
def prefix(engine_db: Database) -> Iterator[str]:
    name = b.unique("bcrun")
    yield name
    b.forget(engine_db, name)


def _audience(db: Database, prefix: str, zones: dict[str, int]) -> list[str]:
    ids = []
    for n, (zone, count) in enumerate(zones.items()):
        ids += b.add_contacts(db, f"{prefix}-{n}", count, timezone=zone, batch=prefix)
    with db.transaction() as session:
        segment = Segment.model_validate(
            {"key": f"bc-{prefix}", "name": prefix, "condition": {"trait": "batch", "eq": prefix}}
        )
        segments_store.put(session, segment)
    with db.transaction() as session:
        segments_store.recompute(session, segment.key)
    return ids


async def _run(
    env: WorkflowEnvironment,
    client: Client,
    db: Database,
    plan: BroadcastPlan,
    record: str,
    task_queue: str = TASK_QUEUE,
) -> tuple[dict[str, Any], WorkflowHandle]:
    with db.transaction() as session:
        broadcasts_store.add(
            session,
            Broadcast(
                id=plan.id,
                segment_key=plan.segment,
                channel=plan.channel,
                template=plan.template,
                data={},
                local_time=plan.local_time,
                status="scheduled",
            ),
        )
    handle = await client.start_workflow(
        BROADCAST_WORKFLOW,
        BroadcastInput(plan=plan),
        id=workflow_id(plan.id),
        task_queue=task_queue,
    )
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        result = await client.get_workflow_handle(handle.id).result()
    if os.environ.get("JOURNEYS_RECORD_HISTORIES") == "1":
        history = await handle.fetch_history()
        HISTORIES.mkdir(exist_ok=True)
        document = {"workflow_id": handle.id, "history": json.loads(history.to_json())}
        (HISTORIES / f"{record}.json").write_text(json.dumps(document, indent=1) + "\n")
    return result, handle


def test_the_local_time_is_the_first_one_at_or_after_the_start():
    start = datetime(2026, 3, 29, 7, 30, tzinfo=UTC)  # 09:30 in Paris, on the DST change
    assert local_due(start, "09:00", "Europe/Paris") == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert local_due(start, "09:00", "America/New_York") == datetime(2026, 3, 29, 13, 0, tzinfo=UTC)
    assert local_due(start, "09:00", "Asia/Tokyo") == datetime(2026, 3, 30, 0, 0, tzinfo=UTC)
    assert local_due(start, "09:00", "Not/AZone") == datetime(2026, 3, 29, 9, 0, tzinfo=UTC)


async def test_each_contact_gets_it_at_nine_in_their_own_zone(
    time_env: WorkflowEnvironment, client: Client, engine_db: Database, prefix: str
):
    ids = _audience(engine_db, prefix, {zone: 3 for zone in ZONES})
    h.template(engine_db, f"{prefix}-morning", subject="Good morning", text="Hi")
    plan = BroadcastPlan(
        id=b.unique("bc"),
        segment=f"bc-{prefix}",
        channel="email",
        template=f"{prefix}-morning",
        local_time="09:00",
    )
    # The shared test server's clock, which earlier tests have moved on from the wall clock.
    began = await time_env.get_current_time()

    result, _ = await _run(time_env, client, engine_db, plan, "nine_local_in_three_zones")

    assert result["sent"] == 9 and result["status"] == "completed"
    rows = b.messages(engine_db, plan.id)
    assert sorted(m.contact_id for m in rows) == sorted(ids)
    zone_of = {contact: ZONES[int(contact.split("-")[-2])] for contact in ids}
    for message in rows:
        sent = message.sent_at if message.sent_at.tzinfo else message.sent_at.replace(tzinfo=UTC)
        local = sent.astimezone(ZoneInfo(zone_of[message.contact_id]))
        assert local.time().replace(second=0, microsecond=0) == time(9, 0), (message, local)
        assert began - timedelta(minutes=1) <= sent <= began + timedelta(days=1, minutes=5)
    assert len({m.sent_at for m in rows}) == 3  # one moment per zone


async def test_a_long_broadcast_continues_as_new_carrying_its_cursor(
    time_env: WorkflowEnvironment, client: Client, engine_db: Database, prefix: str
):
    ids = _audience(engine_db, prefix, {"UTC": 11})
    h.template(engine_db, f"{prefix}-long", subject="Hi", text="Hi")
    plan = BroadcastPlan(
        id=b.unique("bc"),
        segment=f"bc-{prefix}",
        channel="email",
        template=f"{prefix}-long",
        batch_size=2,
        batches_per_run=2,
    )

    result, handle = await _run(time_env, client, engine_db, plan, "continued_as_new")

    assert result["sent"] == 11 and result["total"] == 11 and result["processed"] == 11
    assert b.per_contact(engine_db, plan.id) == {contact: 1 for contact in ids}
    first_run = client.get_workflow_handle(handle.id, run_id=handle.first_execution_run_id)
    assert (await first_run.describe()).status.name == "CONTINUED_AS_NEW"


async def test_recipients_in_quiet_hours_are_sent_in_a_second_pass_when_they_end(
    time_env: WorkflowEnvironment, engine_db: Database, postgres_url: str, prefix: str
):
    ids = _audience(engine_db, prefix, {"UTC": 4})
    h.template(engine_db, f"{prefix}-quiet", subject="Hi", text="Hi")
    now = await time_env.get_current_time()
    # Email quiet hours around the time-skipping server's clock (moved on by earlier tests).
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=2))
    queue = b.unique("bc-quiet")
    settings = Settings(
        database_url=postgres_url,
        task_queue=queue,
        sms_quiet_hours="",
        email_quiet_hours=f"{start}-{end.strftime('%H:%M')}",
    )
    plan = BroadcastPlan(
        id=b.unique("bc"), segment=f"bc-{prefix}", channel="email", template=f"{prefix}-quiet"
    )
    plugin = JourneysPlugin(settings, db=engine_db)
    async with Worker(time_env.client, task_queue=queue, plugins=[plugin]):
        result, _ = await _run(time_env, time_env.client, engine_db, plan, "quiet_hours", queue)

    assert result["sent"] == 4 and result["deferred"] == 0 and result["status"] == "completed"
    rows = b.messages(engine_db, plan.id)
    assert sorted(m.contact_id for m in rows) == ids and {m.status for m in rows} == {"sent"}
    for message in rows:
        sent = message.sent_at if message.sent_at.tzinfo else message.sent_at.replace(tzinfo=UTC)
        assert sent >= end.replace(second=0, microsecond=0), (sent, end)
        assert [entry["status"] for entry in message.status_history][:2] == [
            "pending",
            "deferred",
        ]
