"""Workflow starts per second on the dev server with SQLite's defaults and with our pragmas.

    .venv/bin/python -m bench.devserver_pragmas [--starts 1500]

Each setting gets a fresh dev server; a client starts workflows 32 at a time on a task queue no
worker polls, so only the server's persistence is measured. Prints each rate, the server's CPU
time per start, and the ratio to SQLite's defaults measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from temporalio.client import Client

from bench import stack
from temporal_journeys.cli.devserver import SQLITE_PRAGMAS

SETTINGS = {
    "SQLite defaults (rollback journal, synchronous=FULL)": [""],
    f"journeys.devserver ({', '.join(SQLITE_PRAGMAS)})": list(SQLITE_PRAGMAS),
    "journal_mode=WAL, synchronous=OFF (not durable)": ["journal_mode=WAL", "synchronous=OFF"],
}


async def starts_per_second(pragmas: list[str], count: int) -> tuple[float, float]:
    with stack.dev_server(pragmas) as server:
        client = await Client.connect(server.address)
        gate = asyncio.Semaphore(32)

        async def start(n: int) -> None:
            async with gate:
                await client.start_workflow("Nobody", id=f"start-{n}", task_queue="nobody")

        cpu, began = stack.cpu_seconds(server.pid), time.perf_counter()
        await asyncio.gather(*(start(n) for n in range(count)))
        elapsed = time.perf_counter() - began
        return count / elapsed, 1000 * (stack.cpu_seconds(server.pid) - cpu) / count


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=1500)
    args = parser.parse_args()
    baseline = None
    for label, pragmas in SETTINGS.items():
        rate, cpu_ms = await starts_per_second(pragmas, args.starts)
        baseline = baseline or rate
        print(
            f"{label}: {rate:.0f} starts/s, {cpu_ms:.1f} ms server CPU per start, "
            f"ratio {rate / baseline:.2f}",
            flush=True,
        )


if __name__ == "__main__":
    asyncio.run(main())
