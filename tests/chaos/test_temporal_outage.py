"""Temporal is stopped for 30 s while events keep arriving at the API: every accepted event
reaches its run exactly once, in order per contact, once Temporal is back."""

from __future__ import annotations

import asyncio

import pytest

from tests.support import harness as h
from tests.support.dev_server import DevStack
from tests.support.outbox import assert_in_order_once, listener, pending

pytestmark = pytest.mark.slow

CONTACTS, OUTAGE_SECONDS, TICK_SECONDS = 10, 30, 1.0


async def keep_sending(stack: DevStack, key: str, contacts: list[str], stop: asyncio.Event) -> dict:
    """One tick per contact every TICK_SECONDS until ``stop``; the ids the API accepted."""
    accepted: dict[str, list[str]] = {contact: [] for contact in contacts}
    tick = 0
    while not stop.is_set():
        tick += 1
        for contact in contacts:
            body = {"userId": contact, "event": f"{key}.tick", "messageId": f"{contact}-{tick:03}"}
            response = await stack.http.post("/v1/track", json=body, headers=stack.track)
            assert response.status_code == 202, response.text  # Postgres is up: always accepted
            accepted[contact].append(body["messageId"])
        await asyncio.sleep(TICK_SECONDS)
    return accepted


async def test_events_keep_arriving_while_temporal_is_down_for_30_s(stack: DevStack):
    key = h.unique("outage")
    await stack.publish(key, listener(key))
    contacts = [h.unique("listener") for _ in range(CONTACTS)]
    for contact in contacts:
        body = {"userId": contact, "event": f"{key}.start", "messageId": f"{contact}-start"}
        assert (
            await stack.http.post("/v1/track", json=body, headers=stack.track)
        ).status_code == 202

    stop = asyncio.Event()
    sender = asyncio.create_task(keep_sending(stack, key, contacts, stop))
    await asyncio.sleep(3)  # some ticks go through before the outage
    stack.server.stop()
    await asyncio.sleep(OUTAGE_SECONDS)
    assert pending(stack.db, contacts) > 0, "events accepted during the outage wait in the outbox"
    stack.server.restart()
    await asyncio.sleep(3)
    stop.set()
    accepted = await sender

    await h.wait_until(lambda: pending(stack.db, contacts) == 0, "the outbox to drain", 120)
    for contact in contacts:
        assert len(accepted[contact]) >= OUTAGE_SECONDS / TICK_SECONDS
        await assert_in_order_once(stack.client, f"journey/{key}/{contact}", accepted[contact])
