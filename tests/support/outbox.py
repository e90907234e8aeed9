"""Events through the outbox: a journey that shows every event it takes, the entries still
waiting for Temporal, and the check that each run took its events in order, once."""

from __future__ import annotations

import asyncio
import json

from sqlalchemy import func, select
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import OutboxEntry
from temporal_journeys.workflows.contract import STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h


def listener(key: str) -> dict:
    """A journey that takes every ``<key>.tick`` for a day: each event shows in its trace."""
    return {
        "name": "Listener",
        "trigger": {"event": f"{key}.start"},
        "steps": [
            {
                "id": "listen",
                "wait_for": {"event": f"{key}.tick", "timeout": "P1D"},
                "next": "listen",
                "on_timeout": "done",
            },
            {"id": "done", "exit": {}},
        ],
    }


def pending(db: Database, contacts: list[str]) -> int:
    """Outbox entries of these contacts still waiting for Temporal."""
    with db.transaction() as session:
        return session.scalar(
            select(func.count())
            .select_from(OutboxEntry)
            .where(OutboxEntry.contact_id.in_(contacts))
        )


async def assert_in_order_once(client: Client, workflow_id: str, ticks: list[str]) -> None:
    """The run took exactly ``ticks`` (event ids), in that order, and was signalled once for
    each of them (the event that started it is in its input, not a signal)."""
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(100):
        view = await handle.query(STATE_QUERY, result_type=RunView)
        received = [e.detail.split("(")[1].rstrip(")") for e in h.at(view, "event") if e.detail]
        if len(received) >= len(ticks):
            break
        await asyncio.sleep(0.2)
    assert received == ticks
    signals = [
        event
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
    ]
    assert len(signals) == len(ticks), f"an event reached the run twice: {_ids(signals)}"


def _ids(signals: list) -> list[str]:
    """The event ids of these signals (payloads in plain JSON: the tests encrypt none)."""
    found = []
    for signal in signals:
        payload = signal.workflow_execution_signaled_event_attributes.input.payloads[0]
        found.append(json.loads(payload.data).get("id", "?"))
    return found


async def relay_all(relay: OutboxRelay) -> int:
    """Passes of ``relay`` until one delivers nothing; how many events they delivered."""
    total = 0
    while delivered := await relay.deliver_once():
        total += delivered
    return total
