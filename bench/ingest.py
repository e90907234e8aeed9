"""Events per second accepted by POST /v1/batch into Postgres, against a plain batched INSERT.

    .venv/bin/python -m bench.ingest [--events 50000] [--batch 100] [--concurrency 8]
        [--workers 1] [--rounds 3] [--compare-workers] [--quick]

Starts uvicorn (relay off, so only ingestion is measured; ``--workers`` API processes) on a
fresh database, posts Segment batches from concurrent clients, then inserts the same rows with
plain multi-row INSERTs in one process as the reference. Each round runs both halves one after
the other, with fresh messageIds, so a drift of the shared machine falls on both; the figures
are the medians of the rounds. Prints both rates, their ratio and the API processes' CPU per
event, with the bench's clients' and Postgres's beside it (what shares the 2 cores with the API).
Goals (issue 18): at least 10,000 events/s, and at least 0.8 of the plain INSERT.
``--compare-workers`` alternates 1 and 2 API processes in each round instead (against the same
reference) and says which is faster here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from bench import http_load, stack
from temporal_journeys.cli.devserver import wait_for_port
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import Event
from tests.support.postgres import DEFAULT_URL, fresh_database

PORT = 18765
GOAL_RATE = 10_000
GOAL_RATIO = 0.8


def batches(total: int, size: int, contacts: int = 5000) -> list[list[dict]]:
    calls = [
        {
            "type": "track",
            "userId": f"user-{n % contacts}",
            "event": "Product Viewed",
            "properties": {"sku": f"SKU-{n % 97}", "price": n % 100},
            "messageId": str(uuid.uuid4()),
            "timestamp": "2026-11-22T10:00:00Z",
        }
        for n in range(total)
    ]
    return [calls[i : i + size] for i in range(0, total, size)]


async def post_all(url: str, key: str, work: list[list[dict]], concurrency: int) -> float:
    # Bodies encoded before the clock starts: the client shares the 2 cores with the API and
    # Postgres, and its JSON encoding is not what is measured.
    bodies = [json.dumps({"batch": batch}).encode() for batch in work]
    return await http_load.post_all(url, "/v1/batch", key, bodies, concurrency)


def insert_all(db: Database, work: list[list[dict]]) -> float:
    now = datetime.now(UTC)
    started = time.perf_counter()
    for batch in work:
        with db.transaction() as session:
            session.execute(
                insert(Event),
                [
                    {
                        "message_id": call["messageId"] + "-ref",
                        "contact_id": call["userId"],
                        "name": call["event"],
                        "properties": call["properties"],
                        "timestamp": now,
                        "received_at": now,
                    }
                    for call in batch
                ],
            )
    return time.perf_counter() - started


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process and its live children (uvicorn's worker processes)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        pending += [int(child) for child in children]
    return total


class Api:
    """uvicorn with ``workers`` processes on the bench's database, relay off."""

    def __init__(self, url: str, workers: int) -> None:
        env = {
            **os.environ,
            "JOURNEYS_SECRET_KEY": secrets.token_hex(32),
            "JOURNEYS_DATABASE_URL": url,
            "JOURNEYS_RELAY": "false",
            "JOURNEYS_TEMPORAL_ADDRESS": "127.0.0.1:1",
        }
        self.workers = workers
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "temporal_journeys.api.app:app",
                "--port",
                str(PORT),
                "--workers",
                str(workers),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )

    def ready(self, key: str) -> None:
        wait_for_port(PORT)
        # Every worker process answers once before the clock starts (imports, pools, caches).
        asyncio.run(post_all(f"http://127.0.0.1:{PORT}", key, batches(800, 10), 8))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait()


@dataclass
class Half:
    rate: float
    seconds: float
    cpu_per_event_ms: float
    # What else shared the 2 cores while the API half ran, per event: the bench's own HTTP
    # clients and every Postgres process.
    client_ms: float
    postgres_ms: float


def api_half(api: Api, key: str, work: list[list[dict]], concurrency: int, events: int) -> Half:
    before = _cpu_seconds(api.process.pid), time.process_time(), stack.postgres_cpu_seconds()
    seconds = asyncio.run(post_all(f"http://127.0.0.1:{PORT}", key, work, concurrency))
    after = _cpu_seconds(api.process.pid), time.process_time(), stack.postgres_cpu_seconds()
    spent = (1000 * (b - a) / events for a, b in zip(before, after, strict=True))
    api_ms, client_ms, postgres_ms = spent
    return Half(events / seconds, seconds, api_ms, client_ms, postgres_ms)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--compare-workers",
        action="store_true",
        help="each round: 1 API process, the reference, 2 API processes",
    )
    parser.add_argument("--quick", action="store_true", help="10,000 events, one round")
    parser.add_argument(
        "--server", default=os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 10_000, 1
    sides = [1, 2] if args.compare_workers else [args.workers]
    results: dict[int, list[Half]] = {workers: [] for workers in sides}
    reference: list[float] = []
    load = []
    with fresh_database(args.server) as url:
        upgrade(url)
        db = Database(url)
        with db.transaction() as session:
            key = keys.create(session, "bench", "track")
        for number in range(1, args.rounds + 1):
            load.append(Path("/proc/loadavg").read_text().split()[0])
            for index, workers in enumerate(sides):
                work = batches(args.events, args.batch)
                api = Api(url, workers)
                try:
                    api.ready(key)
                    half = api_half(api, key, work, args.concurrency, args.events)
                finally:
                    api.stop()
                results[workers].append(half)
                if index == 0:
                    # The reference between the API halves (with one side, after it).
                    reference_seconds = insert_all(db, work)
                    reference.append(args.events / reference_seconds)
            line = ", ".join(
                f"{w} process{'es' if w > 1 else ''} {results[w][-1].rate:,.0f} events/s "
                f"(CPU per event: API {results[w][-1].cpu_per_event_ms:.3f} ms, clients "
                f"{results[w][-1].client_ms:.3f}, Postgres {results[w][-1].postgres_ms:.3f})"
                for w in sides
            )
            print(f"round {number}: API {line}; plain INSERT {reference[-1]:,.0f} rows/s")
        db.dispose()

    print(
        f"events: {args.events} per round in batches of {args.batch}, {args.concurrency} "
        f"concurrent clients, {args.rounds} round(s); load average at each round's start: "
        f"{', '.join(load)}"
    )
    reference_rate = statistics.median(reference)
    print(f"plain INSERT (one process, same rows): {reference_rate:,.0f} rows/s (median)")
    best = max(sides, key=lambda w: statistics.median(h.rate for h in results[w]))
    for workers in sides:
        halves = results[workers]
        rate = statistics.median(h.rate for h in halves)
        ratios = [h.rate / r for h, r in zip(halves, reference, strict=True)]
        ratio = statistics.median(ratios)
        cpu = statistics.median(h.cpu_per_event_ms for h in halves)
        met = rate >= GOAL_RATE and ratio >= GOAL_RATIO
        print(
            f"POST /v1/batch (uvicorn, {workers} process{'es' if workers > 1 else ''}): "
            f"{rate:,.0f} events/s (median), {cpu:.3f} ms API CPU per event; ratio to the plain "
            f"INSERT {ratio:.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}); goal >= "
            f"{GOAL_RATE:,} events/s and >= {GOAL_RATIO}: {'met' if met else 'NOT met'}"
        )
    if args.compare_workers:
        print(f"faster here: {best} API process{'es' if best > 1 else ''}")


if __name__ == "__main__":
    main()
