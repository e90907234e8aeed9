"""Contacts entering a segment together (a backfill, a refresh) begin their journey's runs in
batches of the relay: a number of statements per batch that does not grow with it, one run and
one enrollment per contact, and a contact's later events still routed after its entry, on both
databases."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.api.services.relay import AT_ONCE, OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.segments import Segment
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, OutboxEntry
from tests.engine.test_batch_admission import statements
from tests.support import harness as h
from tests.support.dev_server import DevServer
from tests.support.outbox import pending, relay_all

# Until the contact orders or an hour passes: an order queued behind the entry ends the run.
JOURNEY = """
key: {key}
name: VIP welcome
trigger: {{segment: vip}}
steps:
  - id: wait
    wait_for: {{event: order.completed, timeout: PT1H}}
  - id: done
    exit: {{}}
"""

VIP = Segment(key="vip", name="VIP", condition={"trait": "vip", "eq": True})


def _queue_order(db: Database, user: str) -> None:
    with db.transaction() as session:
        now = datetime.now(UTC)
        row = {"message_id": h.unique("m"), "contact_id": user, "name": "order.completed"}
        events_store.accept(session, [{**row, "properties": {}, "timestamp": now}], now)


def _signals(history: object) -> int:
    return sum(
        event.HasField("workflow_execution_signaled_event_attributes")
        for event in history.events  # type: ignore[attr-defined]
    )


def _enter(db: Database, size: int) -> list[str]:
    """``size`` new VIPs, taken into the segment as a backfill does: their entries queued."""
    users = [h.contact(db, h.unique("vip"), vip=True) for _ in range(size)]
    with db.transaction() as session:
        changes = segments_store.apply(session, VIP, datetime.now(UTC), contact_ids=users)
    assert sorted(changes.entered) == sorted(users)
    return users


def _enrollments(db: Database, key: str) -> dict[str, list[str]]:
    with db.transaction() as session:
        rows = session.execute(
            select(Enrollment.contact_id, Enrollment.workflow_id).where(
                Enrollment.journey_key == key
            )
        ).all()
    found: dict[str, list[str]] = {}
    for contact_id, workflow_id in rows:
        found.setdefault(contact_id, []).append(workflow_id)
    return found


async def test_contacts_entering_a_segment_together_begin_their_runs_in_batches(
    db: Database, relay: OutboxRelay, client: Client, time_env: WorkflowEnvironment
):
    with db.transaction() as session:
        segments_store.put(session, VIP)
    _, journey = h.publish(db, JOURNEY.format(key=h.unique("segment-entries")))
    counts, everyone = [], []
    for size in (1, 4, AT_ONCE, AT_ONCE + 1):
        users = _enter(db, size)
        with statements(relay._db) as seen:
            assert await relay_all(relay) == size
        counts.append(len(seen))
        everyone += users
        enrolled = _enrollments(db, journey.key)
        assert {user: enrolled.get(user) for user in users} == {
            user: [h.suite_names().workflow_id(journey.key, user)] for user in users
        }
    # The claim, the live journeys (their specs read once, by the first pass), the entries
    # taken, the contacts loaded, their running runs, on Postgres the locks and the latest
    # entries, the enrollments' INSERT, the first funnel rows and their counters, the entries'
    # DELETE, the contacts' locks released, and the empty claim that ends the passes.
    assert counts[1] == counts[2] <= 14, counts
    # One entry more than a transaction takes: a second transaction of the same statements,
    # but the claim's, the journeys' and the release's.
    assert counts[2] < counts[3] < 2 * counts[2], counts
    assert pending(db, everyone) == 0

    # An order queued behind a contact's entry reaches the run the entry began, after it.
    [buyer] = _enter(db, 1)
    _queue_order(db, buyer)
    assert await relay_all(relay) == 2
    handle = client.get_workflow_handle(h.suite_names().workflow_id(journey.key, buyer))
    assert (await handle.result())["status"] == "completed"
    assert _signals(await handle.fetch_history()) == 1

    # The others wait for their hour; every run to its end.
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        for user in everyone:
            run = client.get_workflow_handle(h.suite_names().workflow_id(journey.key, user))
            assert (await run.result())["status"] == "completed"
            assert (await run.describe()).status == WorkflowExecutionStatus.COMPLETED


@pytest.mark.slow  # a real dev server, stopped and started
async def test_segment_entries_met_by_a_temporal_outage_wait_and_then_go_out_once_in_order(
    db: Database, database_url: str, tmp_path: Path
):
    server = DevServer(tmp_path)
    queue = h.unique("segment-outage")
    settings = Settings(
        database_url=database_url,
        temporal_address=f"127.0.0.1:{server.port}",
        task_queue=queue,
        sms_quiet_hours="",
    )
    worker_db = Database(database_url)
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=pydantic_data_converter
        )
        relay = OutboxRelay(db, TemporalConnection(settings, client), settings)
        with db.transaction() as session:
            segments_store.put(session, VIP)
        _, journey = h.publish(db, JOURNEY.format(key=h.unique("segment-outage")))
        async with Worker(
            client, task_queue=queue, plugins=[JourneysPlugin(settings, db=worker_db)]
        ):
            users = _enter(db, 20)
            for user in users:
                _queue_order(db, user)

            server.stop()
            assert await relay.deliver_once() == 0
            with db.transaction() as session:
                attempts = session.execute(
                    select(OutboxEntry.contact_id, OutboxEntry.attempts).order_by(OutboxEntry.id)
                ).all()
            # Every entry was tried once; the orders behind them were not tried at all.
            assert sorted(attempts) == sorted([(u, 1) for u in users] + [(u, 0) for u in users])

            server.restart()
            # Passes made here, between the checks: on SQLite a check on this loop while a
            # pass holds the write lock would wait for it, and the pass for the loop.
            deadline = asyncio.get_running_loop().time() + 60
            while pending(db, users):
                assert asyncio.get_running_loop().time() < deadline, "the outbox did not drain"
                await relay.deliver_once()
                await asyncio.sleep(0.2)
            for user in users:
                handle = client.get_workflow_handle(h.workflow_id_of(journey, user))
                assert (await handle.result())["status"] == "completed"
                assert _signals(await handle.fetch_history()) == 1  # its order, after its start
            assert set(_enrollments(db, journey.key)) == set(users)
            assert all(len(runs) == 1 for runs in _enrollments(db, journey.key).values())
    finally:
        server.stop()
        worker_db.dispose()
