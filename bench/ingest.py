"""Events per second accepted by POST /v1/batch into Postgres, against a plain batched INSERT.

    .venv/bin/python -m bench.ingest [--events 100000] [--batch 100] [--concurrency 8]

Starts uvicorn (relay off, so only ingestion is measured) on a fresh database, posts Segment
batches from concurrent clients, then inserts the same rows with plain multi-row INSERTs in one
process as the reference. Prints both rates and their ratio; the goal is 5,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import httpx
from sqlalchemy import insert

from journeys.devserver import wait_for_port
from store import keys
from store.db import Database
from store.migrate import upgrade
from store.models import Event
from tests.support.postgres import DEFAULT_URL, fresh_database

PORT = 18765


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
    queue: asyncio.Queue[list[dict]] = asyncio.Queue()
    for batch in work:
        queue.put_nowait(batch)

    async def client() -> None:
        async with httpx.AsyncClient(
            base_url=url, headers={"Authorization": f"Bearer {key}"}
        ) as http:
            while not queue.empty():
                batch = queue.get_nowait()
                response = await http.post("/v1/batch", json={"batch": batch}, timeout=60)
                response.raise_for_status()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--server", default=os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    work = batches(args.events, args.batch)
    with fresh_database(args.server) as url:
        upgrade(url)
        db = Database(url)
        with db.transaction() as session:
            key = keys.create(session, "bench", "track")
        env = {
            **os.environ,
            "JOURNEYS_DATABASE_URL": url,
            "JOURNEYS_RELAY": "false",
            "JOURNEYS_TEMPORAL_ADDRESS": "127.0.0.1:1",
        }
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "api.app:app",
                "--port",
                str(PORT),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env=env,
        )
        try:
            wait_for_port(PORT)
            api_seconds = asyncio.run(
                post_all(f"http://127.0.0.1:{PORT}", key, work, args.concurrency)
            )
        finally:
            server.terminate()
            server.wait()
        reference_seconds = insert_all(db, work)
        db.dispose()
    api_rate = args.events / api_seconds
    reference_rate = args.events / reference_seconds
    print(
        f"events: {args.events} in batches of {args.batch}, {args.concurrency} concurrent clients"
    )
    print(f"POST /v1/batch (uvicorn, 1 process): {api_rate:,.0f} events/s ({api_seconds:.1f} s)")
    print(f"plain INSERT: {reference_rate:,.0f} rows/s ({reference_seconds:.1f} s)")
    print(
        f"ratio api/reference: {api_rate / reference_rate:.2f}; goal >= 5,000 events/s: "
        f"{'met' if api_rate >= 5000 else 'NOT met'}"
    )


if __name__ == "__main__":
    main()
