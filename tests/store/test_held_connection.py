"""A transaction held across awaits never stalls the event loop while it waits for a connection."""

from __future__ import annotations

import asyncio

from sqlalchemy import select

from temporal_journeys.store.db import POOL_OVERFLOW, POOL_SIZE, Database


async def test_waiting_for_a_free_connection_leaves_the_event_loop_running(postgres_url: str):
    db = Database(postgres_url)
    capacity = POOL_SIZE + POOL_OVERFLOW
    held: list[int] = []
    all_held, release = asyncio.Event(), asyncio.Event()

    async def hold() -> int:
        async with db.held_connection() as connection:
            held.append(connection.scalar(select(1)) or 0)
            if len(held) == capacity:
                all_held.set()
            await release.wait()
            return held[-1]

    try:
        holders = [asyncio.create_task(hold()) for _ in range(capacity)]
        await asyncio.wait_for(all_held.wait(), 10)
        waiter = asyncio.create_task(hold())
        began = asyncio.get_running_loop().time()
        for _ in range(20):
            await asyncio.sleep(0.01)
        # Twenty turns of the loop in well under a second, while the last one still waits.
        assert asyncio.get_running_loop().time() - began < 1.0
        assert not waiter.done()

        release.set()
        values = await asyncio.wait_for(asyncio.gather(*holders, waiter), 10)
        assert values == [1] * (capacity + 1)
    finally:
        release.set()
        db.dispose()
