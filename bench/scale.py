"""Many contacts waiting on a long timer: enrolment time, memory, database size; then a goal
event for 10% of them and the time until those are converted.

    .venv/bin/python -m bench.scale [--contacts 100000] [--quick] [--entry segment]

Contacts enter through the API's enroll endpoint (16 requests of 250 at a time) into a journey
that waits 30 days, sends and exits, with the goal ``purchase``; with ``--entry segment``, the
journey is entered from a segment instead, defined after it is published so that the segment's
backfill takes every contact in at once and the relay begins their runs. Measured: the time
until the API accepted every enrolment and until every run waits on its timer, the worker's and the
Temporal dev server's memory (now and peak), the Postgres database and the dev server's SQLite
file; then ``purchase`` for every tenth contact through ``/v1/batch`` and the time until those
runs are converted. The reference, on the same server afterwards: a hand-written workflow that
waits 30 days or until a signal, for a tenth as many contacts, started and then signalled by a
client directly.

Then (unless ``--no-history``) the database's size after a 30-day simulated history
(``bench.history_footprint``) on a fresh database of its own: per contact, per event and per
table. It runs for ``--history-contacts`` (10,000; 500 with ``--quick``), not for the
enrolment count: the history is 90 events and about four emails per contact, so 100,000
contacts would be 9 million events and an hour or more here, while the per-contact and
per-event sizes it reports hardly change with the count past a few thousand. It runs after the
stack above is stopped, so it competes with no worker or dev server.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

import httpx
from sqlalchemy import text
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from bench import fixtures, history_footprint, stack
from bench.throughput import Progress
from temporal_journeys.store.db import Database

QUEUE = "bench-scale"
JOURNEY = {
    "key": "bench-scale",
    "name": "Scale: a long wait",
    "trigger": {"event": "scale.start"},
    "goal": {"event": "purchase"},
    "steps": [
        {"id": "wait", "wait": "P30D"},
        {"id": "remind", "send": {"channel": "email", "template": "bench"}},
        {"id": "done", "exit": {}},
    ],
}


async def enrol(url: str, key: dict[str, str], ids: list[str], progress: Progress) -> None:
    chunks = [ids[i : i + 250] for i in range(0, len(ids), 250)]

    async def client(mine: list[list[str]]) -> None:
        async with httpx.AsyncClient(base_url=url, headers=key, timeout=600) as http:
            for chunk in mine:
                response = await http.post(
                    f"/v1/journeys/{JOURNEY['key']}/enroll", json={"userIds": chunk}
                )
                response.raise_for_status()
                progress.done += len(chunk)

    await asyncio.gather(*(client(chunks[i::16]) for i in range(16)))


SEGMENT = "bench-scale-everyone"


async def enter_segment(url: str, key: dict[str, str], n: int, progress: Progress) -> None:
    """Define a segment every contact is in; back when its backfill has taken them all in."""
    async with httpx.AsyncClient(base_url=url, headers=key, timeout=600) as http:
        body = {"name": "Everyone", "condition": {"trait": "plan", "exists": True}}
        (await http.put(f"/v1/segments/{SEGMENT}", json=body)).raise_for_status()
        while progress.done < n:
            await asyncio.sleep(0.5)
            response = await http.get(f"/v1/segments/{SEGMENT}/count")
            progress.done = response.raise_for_status().json()["count"]


async def goal(url: str, key: dict[str, str], ids: list[str]) -> None:
    async with httpx.AsyncClient(base_url=url, headers=key, timeout=600) as http:
        for start in range(0, len(ids), 500):
            calls = [
                {"type": "track", "userId": i, "event": "purchase", "messageId": f"buy-{i}"}
                for i in ids[start : start + 500]
            ]
            (await http.post("/v1/batch", json={"batch": calls})).raise_for_status()


async def reference(client: Client, count: int) -> tuple[float, float, float]:
    """Starts per second, runs waiting on their timer per second (every start's first task
    run), and conversions per second of the hand-written waiter."""
    gate = asyncio.Semaphore(32)
    ids = [f"waiter-{n}" for n in range(count)]

    async def start(workflow_id: str) -> None:
        async with gate:
            await client.start_workflow("MinimalWaiter", id=workflow_id, task_queue=QUEUE)

    async def convert(workflow_id: str) -> None:
        # Bounded: each result is a long poll, and the server limits concurrent polls.
        handle = client.get_workflow_handle(workflow_id)
        async with gate:
            await handle.signal("convert")
            await handle.result()

    began = time.perf_counter()
    await asyncio.gather(*(start(i) for i in ids))
    started = time.perf_counter()
    waiting = await fixtures.until_no_queued_tasks(client, QUEUE)
    converting = time.perf_counter()
    await asyncio.gather(*(convert(i) for i in ids))
    return (
        count / (started - began),
        count / (waiting - began),
        count / (time.perf_counter() - converting),
    )


def database_mib(db: Database) -> float:
    with db.transaction() as session:
        return session.scalar(text("SELECT pg_database_size(current_database())")) / 2**20


def file_mib(path: Path) -> float:
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists()) / 2**20


def report_enrolment(
    n: int, accepted: float, all_waiting: float, cpu: dict[str, float], entry: str
) -> None:
    how = (
        "POST /v1/journeys/{key}/enroll"
        if entry == "enroll"
        else "a segment's backfill (accepted: all in the segment)"
    )
    print(
        f"enrolment through {how}: accepted in {accepted:.1f} s "
        f"({n / accepted:.0f}/s), every run waiting after {all_waiting:.1f} s "
        f"({n / all_waiting:.0f}/s, {1000 * all_waiting / n:.2f} ms per contact)"
    )
    used = ", ".join(f"{name} {1000 * seconds / n:.1f}" for name, seconds in cpu.items())
    print(f"CPU ms per enrolled contact: {used}", flush=True)


def report_footprint(
    n: int, pids: dict[str, int], db: Database, before_mib: float, server: stack.DevServer
) -> None:
    for name, pid in pids.items():
        now, peak = stack.memory_kib(pid) / 1024, stack.memory_kib(pid, "VmHWM") / 1024
        print(
            f"{name}: RSS {now:.0f} MiB now, {peak:.0f} MiB peak "
            f"({1024 * now / n:.1f} KiB per contact)"
        )
    for name, mib in (
        ("Postgres database growth", database_mib(db) - before_mib),
        ("dev server SQLite file", file_mib(server.file)),
    ):
        print(f"{name}: {mib:.0f} MiB ({1024 * mib / n:.1f} KiB per contact)", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="2,000 contacts")
    parser.add_argument("--sqlite-pragma", action="append", help="as in bench.throughput")
    parser.add_argument(
        "--entry",
        choices=["enroll", "segment"],
        default="enroll",
        help="how contacts enter: the enroll API, or a segment's backfill and the relay",
    )
    parser.add_argument(
        "--history-contacts",
        type=int,
        default=None,
        help="contacts of the 30-day simulated history (default 10,000; 500 with --quick)",
    )
    parser.add_argument(
        "--no-history", action="store_true", help="skip the 30-day simulated history"
    )
    args = parser.parse_args()
    n = 2000 if args.quick else args.contacts
    ids = [f"scale-{i}" for i in range(n)]
    converting = ids[::10]
    print(f"contacts: {n:,} waiting on a 30-day timer; {len(converting):,} converted by a goal")

    with stack.database() as url, stack.dev_server(args.sqlite_pragma) as server:
        db = Database(url)
        fixtures.contacts(db, ids)
        journey = (
            JOURNEY if args.entry == "enroll" else {**JOURNEY, "trigger": {"segment": SEGMENT}}
        )
        fixtures.journey(db, journey)
        key = fixtures.admin_key(db)
        env = stack.settings_env(url, server.address, QUEUE)
        with stack.worker(env) as worker, stack.api(env) as api_url:
            pids = {"worker": worker.pid, "Temporal dev server": server.pid}
            cpu = {name: stack.cpu_seconds(pid) for name, pid in pids.items()}
            before_mib = database_mib(db)
            began = time.perf_counter()
            if args.entry == "enroll":
                with Progress("enrolled by the API", n, every=10) as progress:
                    await enrol(api_url, key, ids, progress)
            else:
                with Progress("in the segment", n, every=10) as progress:
                    await enter_segment(api_url, key, n, progress)
            accepted = time.perf_counter() - began
            with Progress("waiting on the timer", n, every=10) as progress:

                def waiting() -> bool:
                    progress.done = fixtures.entered(db, JOURNEY["key"], "wait")
                    return progress.done == n

                # A count over every enrollment: polled once a second, not to load Postgres.
                await fixtures.until(
                    waiting, "every run to wait", seconds=max(3600, n / 10), every=1
                )
            # The first step was recorded by the starter: each run waits once its first task
            # ran, when none is queued any more.
            client = await Client.connect(server.address, data_converter=pydantic_data_converter)
            all_waiting = await fixtures.until_no_queued_tasks(client, QUEUE) - began
            cpu = {name: stack.cpu_seconds(pid) - cpu[name] for name, pid in pids.items()}
            report_enrolment(n, accepted, all_waiting, cpu, args.entry)
            report_footprint(n, pids, db, before_mib, server)

            began = time.perf_counter()
            await goal(api_url, key, converting)
            await fixtures.until(
                lambda: (
                    fixtures.enrollments(db, JOURNEY["key"], status="converted") == len(converting)
                ),
                "the goal to convert every tenth contact",
                seconds=3600,
                every=0.5,
            )
            rate = len(converting) / (time.perf_counter() - began)
            print(
                f"goal event for {len(converting):,} contacts (POST /v1/batch of 500, relay, "
                f"signal, run converted): {rate:.0f} conversions/s",
                flush=True,
            )
            starts, waiters, conversions = await reference(client, len(converting))
        db.dispose()
    print(
        f"reference on the same server, a hand-written waiter started and signalled by a client "
        f"directly ({len(converting):,}): {starts:.0f} starts/s (enrolments accepted: ratio "
        f"{n / accepted / starts:.2f}), {waiters:.0f}/s waiting on their timer (every run "
        f"waiting: ratio {n / all_waiting / waiters:.2f}; to the starts: "
        f"{n / all_waiting / starts:.2f}), {conversions:.0f} conversions/s (ratio "
        f"{rate / conversions:.2f})"
    )
    if not args.no_history:
        await history(args.history_contacts or (500 if args.quick else 10_000))


async def history(contacts: int, days: int = 30) -> None:
    """The database's size after a simulated history, on a fresh database of its own."""
    print(
        f"30-day history (bench.history_footprint --contacts {contacts} --days {days}): "
        f"{contacts:,} contacts, {history_footprint.TRACKS_PER_DAY} tracks each a day, an email "
        f"each every {history_footprint.EMAIL_EVERY_DAYS} days",
        flush=True,
    )
    with stack.database() as url:
        report = await history_footprint.simulate(url, contacts, days)
    print(history_footprint.render(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
