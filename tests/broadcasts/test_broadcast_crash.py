"""A broadcast whose worker is SIGKILLed mid-way twice still reaches every recipient exactly
once.

The whole stack runs in real processes (``tests/support/stack.py``): a Temporal dev server,
the API under uvicorn, ``journeys worker`` subprocesses and the fake SendGrid server, which
posts a signed delivery webhook to the API for each message it takes (what confirms a message
whose call a kill cut off). A kill interrupts a batch activity with sends in flight; the batch
is tried again once its heartbeat times out (20 s), and finds each recipient's message row.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from temporal_journeys.store import templates as templates_store
from tests.support import broadcasts as b
from tests.support.stack import running_stack

pytestmark = pytest.mark.slow

RECIPIENTS = 300
KILL_AFTER = (40, 90)  # emails the fake takes (since the last worker started) before each kill


async def _until(check, what: str, seconds: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {seconds:.0f} s")
        await asyncio.sleep(0.05)


async def test_a_broadcast_killed_mid_way_reaches_every_recipient_exactly_once(
    tmp_path: Path, postgres_server_url: str
) -> None:
    with running_stack(
        tmp_path,
        postgres_server_url,
        worker_settings={"resend_unconfirmed_after_seconds": "3"},
        # Answers take a moment, so a kill finds requests the fake took but did not answer.
        latency=(0.02, 0.2),
    ) as stack:
        prefix = b.unique("killed")
        contacts = await asyncio.to_thread(b.add_contacts, stack.db, prefix, RECIPIENTS)
        with stack.db.transaction() as session:
            templates_store.put(session, "bc-hello", "email", subject="Hello", text="Hi")
        worker = stack.start_worker()
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
            segment = await b.segment_of_batch(http, stack.admin, None, prefix)

            async def backfilled() -> bool:
                shown = await http.get(f"/v1/segments/{segment}", headers=stack.admin)
                return shown.json()["backfilled"]

            await _until(backfilled, "the segment's backfill", 60)
            created = await b.create(
                http, stack.admin, segment=segment, template="bc-hello", batch_size=50
            )
            for taken_since in KILL_AFTER:
                goal = len(stack.fake.accepted("sendgrid")) + taken_since

                async def taken(goal: int = goal) -> bool:
                    return len(stack.fake.accepted("sendgrid")) >= goal

                await _until(taken, f"the fake to take {goal} emails ({stack.folder})", 60)
                stack.kill(worker)
                worker = stack.start_worker()
            done = await b.until_status(
                http, stack.admin, created["id"], ("completed",), seconds=180
            )

        assert done["total"] == RECIPIENTS and done["counts"] == {"sent": RECIPIENTS}, done
        rows = b.messages(stack.db, created["id"])
        per_contact = Counter(m.contact_id for m in rows)
        assert sorted(per_contact) == contacts and set(per_contact.values()) == {1}
        taken = stack.fake.accepted_per_message("sendgrid")
        mine = {m.id for m in rows}
        twice = {m: n for m, n in taken.items() if n > 1}
        never = sorted(m for m in mine if taken[m] == 0)
        assert not twice, f"{len(twice)} messages were sent twice: {list(twice)[:5]}"
        assert not never, f"{len(never)} messages never reached the provider: {never[:5]}"
        assert set(taken) == mine
        assert Counter(m.status for m in rows) == Counter({"sent": RECIPIENTS})
        assert len(stack.workers) == 3
