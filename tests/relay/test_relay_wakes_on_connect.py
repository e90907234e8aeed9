"""A relay whose Temporal client connects after its first pass delivers the backlog as soon as
it connects, not at its next poll: a relay started on a busy machine, or before Temporal, with
events already queued, used to leave them for the whole poll interval."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import events as events_store
from temporal_journeys.store.db import Database
from tests.support import harness as h
from tests.support.outbox import pending


async def test_a_relay_delivers_its_backlog_once_temporal_connects_not_at_its_next_poll(
    time_env: WorkflowEnvironment, engine_db: Database, postgres_url: str
):
    settings = Settings(
        database_url=postgres_url,
        temporal_address=time_env.client.service_client.config.target_host,
        task_queue=h.unique("relay-connect"),
    )
    contact = h.unique("backlog")
    with engine_db.transaction() as session:
        now = datetime.now(UTC)
        row = {"message_id": h.unique("m"), "contact_id": contact, "name": "page.viewed"}
        events_store.accept(session, [{**row, "properties": {}, "timestamp": now}], now)
    connection = TemporalConnection(settings)  # not connected yet
    relay = OutboxRelay(engine_db, connection, settings)
    running = asyncio.create_task(relay.run(poll_seconds=300))
    try:
        await asyncio.sleep(0.5)  # its first pass: no client, nothing delivered
        assert pending(engine_db, [contact]) == 1

        connection.start()
        await h.wait_until(lambda: pending(engine_db, [contact]) == 0, "the backlog to go", 20)
    finally:
        relay.stop()
        await running
        await connection.stop()
