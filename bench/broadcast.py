"""A broadcast to a whole segment with the console provider: messages per second, the worker's
peak memory, and nobody sent to twice.

    .venv/bin/python -m bench.broadcast [--quick] [--contacts 100000] [--batch 500]

A fresh Postgres database gets ``--contacts`` contacts with an email address and a segment of
all of them (computed set-based, as its refresh schedule would); a dev server, the real worker
(``bench.worker``: JourneysPlugin, console provider) and the API run in their own processes.
The broadcast is created with ``POST /v1/broadcasts`` and followed until it completes.

Printed: messages per second (sent recipients over the time from the API's 201 to the run's
completion, and over the first to the last message's ``sent_at``), the worker's peak RSS
(VmHWM), and the check that every recipient has exactly one message row (rows == distinct
recipients == contacts) and every row is ``sent``. Goal: 300 messages/s or more at 100,000.

``--quick`` is 5,000 contacts: a check that it runs.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx
from sqlalchemy import func, select

from bench import fixtures
from bench.stack import (
    api,
    cpu_seconds,
    database,
    dev_server,
    memory_kib,
    postgres_cpu_seconds,
    settings_env,
    worker,
)
from temporal_journeys.journeys.segments import Segment
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message

SEGMENT = Segment(
    key="everyone",
    name="Every contact",
    condition={"any": [{"trait": "plan", "eq": "pro"}, {"trait": "plan", "eq": "free"}]},
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 contacts")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="recipients per activity")
    args = parser.parse_args()
    if args.quick:
        args.contacts = 5_000
    return args


def prepare(db: Database, n: int) -> int:
    ids = [f"b{n:07d}" for n in range(n)]
    fixtures.contacts(db, ids)
    with db.transaction() as session:
        segments_store.put(session, SEGMENT)
    with db.transaction() as session:
        segments_store.recompute(session, SEGMENT.key)
    with db.transaction() as session:
        templates_store.put(session, "bench", "email", subject="Hello", text="Hello")
        return segments_store.count(session, SEGMENT.key)


def tally(db: Database, broadcast_id: str) -> tuple[int, int, dict[str, int], float]:
    """Message rows, distinct recipients, rows by status, seconds from first to last send."""
    mine = Message.workflow_id == f"broadcast/{broadcast_id}"
    with db.transaction() as session:
        rows = session.scalar(select(func.count()).select_from(Message).where(mine)) or 0
        distinct = session.scalar(select(func.count(func.distinct(Message.contact_id))).where(mine))
        by_status = select(Message.status, func.count()).where(mine).group_by(Message.status)
        statuses = {status: n for status, n in session.execute(by_status)}
        moments = select(func.min(Message.sent_at), func.max(Message.sent_at)).where(mine)
        first, last = session.execute(moments).one()
    span = (last - first).total_seconds() if first and last else 0.0
    return rows, distinct or 0, statuses, span


async def follow(
    base: str, admin: dict[str, str], body: dict, worker_pid: int
) -> tuple[dict, float, int]:
    """Create the broadcast and poll it until it completes: its last view, the seconds from
    the 201 to completion, the worker's peak RSS (KiB)."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        response = await http.post("/v1/broadcasts", json=body, headers=admin)
        response.raise_for_status()
        began = time.monotonic()
        created = response.json()
        shown = created
        last_report = began
        while shown["status"] not in ("completed", "cancelled", "failed"):
            await asyncio.sleep(0.5)
            shown = (await http.get(f"/v1/broadcasts/{created['id']}", headers=admin)).json()
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                done = sum(n for s, n in shown["counts"].items() if s != "queued")
                print(f"  {done:,} of {shown['total'] or '?'} after {last_report - began:.0f} s")
        return shown, time.monotonic() - began, memory_kib(worker_pid, "VmHWM")


def main() -> None:
    args = parse_args()
    with database() as url, dev_server() as server:
        db = Database(url)
        members = prepare(db, args.contacts)
        admin = fixtures.admin_key(db)
        env = settings_env(url, server.address, f"bench-{uuid.uuid4().hex[:6]}")
        with worker(env) as worker_process, api(env) as base:
            rss_before = memory_kib(worker_process.pid)
            body = {"segment": SEGMENT.key, "template": "bench", "batch_size": args.batch}
            cpu_before = cpu_seconds(worker_process.pid), postgres_cpu_seconds()
            shown, seconds, peak = asyncio.run(follow(base, admin, body, worker_process.pid))
            worker_cpu = cpu_seconds(worker_process.pid) - cpu_before[0]
            postgres_cpu = postgres_cpu_seconds() - cpu_before[1]
        rows, distinct, statuses, span = tally(db, shown["id"])
        db.dispose()
    sent = shown["counts"].get("sent", 0)
    print(f"broadcast to {members:,} members (batches of {args.batch}): {shown['status']}")
    print(f"  {sent / seconds:,.0f} messages/s ({sent:,} sent in {seconds:.1f} s, 201 to done)")
    if span:
        print(f"  {sent / span:,.0f} messages/s from the first to the last message's sent_at")
    print(f"  worker RSS {rss_before / 1024:.0f} MiB before, peak {peak / 1024:.0f} MiB")
    print(
        f"  CPU: worker {worker_cpu:.1f} s ({1000 * worker_cpu / max(sent, 1):.2f} ms/message), "
        f"Postgres {postgres_cpu:.1f} s ({1000 * postgres_cpu / max(sent, 1):.2f} ms/message)"
    )
    twice = rows - distinct
    print(f"  message rows {rows:,}, distinct recipients {distinct:,}, by status {statuses}")
    ok = rows == distinct == members and statuses == {"sent": members}
    print(f"  nobody twice: {'yes' if ok and not twice else 'NO'}")
    if not ok:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
