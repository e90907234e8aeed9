"""Event -> signal latency with the relay in processes of its own: ``bench.throughput``'s latency
measure (a burst for the capacity, then one event per request at half of it) against one API
process with ``JOURNEYS_RELAY=false`` and ``--relays`` relay processes, of either kind:

- ``api``: the uvicorn app with its relay on and no traffic, as ``bench.scale_out`` ran its
  relays before ``journeys relay`` existed: woken only by its poll (every second);
- ``command``: ``journeys relay``, woken by the API's NOTIFY at each ingest's commit.

    .venv/bin/python -m bench.relay_latency [--relays 3] [--rounds 1] [--quick]

Each kind runs on a dev server, a Postgres database and a worker process of its own; each round
runs both in turn (mirrored from one round to the next). Prints, per kind and round, the
capacity and the p50/p99 from each 202 to the signal in the run's history and to the run's
trace.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
from collections.abc import Iterator

from temporalio.client import Client

from bench import stack
from bench.scale_out import relay_process
from bench.throughput import QUEUE, Latency, latency
from temporal_journeys.store.db import Database

KINDS = ("api", "command")


@contextlib.contextmanager
def relays(kind: str, count: int, env: dict[str, str]) -> Iterator[None]:
    with contextlib.ExitStack() as started:
        for _ in range(count):
            if kind == "api":
                started.enter_context(stack.api_process({**env, "JOURNEYS_RELAY": "true"}))
            else:
                started.enter_context(relay_process(env))
        yield


def describe(kind: str, measured: Latency) -> str:
    parts = [f"{kind:>7}: capacity {measured.capacity:.0f} events/s"]
    for label, values in (("signal", measured.to_signal), ("reacted", measured.to_reaction)):
        parts.append(
            f"202 -> {label} p50 {measured.percentile(values, 0.5):.0f} ms, "
            f"p99 {measured.percentile(values, 0.99):.0f} ms"
        )
    return "; ".join(parts) + f" ({measured.count} events at {measured.rate:.0f}/s)"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--relays", type=int, default=3, help="relay processes")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="50 runs, burst 500, 5 s paced")
    args = parser.parse_args()
    listeners, burst, seconds = (50, 500, 5) if args.quick else (100, 1000, 10)
    print(
        f"{args.relays} relay processes of each kind, 1 API process (JOURNEYS_RELAY=false), "
        f"1 worker; {listeners} runs, burst {burst}, {seconds} s at half capacity; "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    for number in range(args.rounds):
        for kind in KINDS if number % 2 == 0 else KINDS[::-1]:
            measured = await measure(kind, args.relays, listeners, burst, seconds)
            print(f"round {number + 1}, {describe(kind, measured)}", flush=True)


async def measure(kind: str, count: int, listeners: int, burst: int, seconds: float) -> Latency:
    """One kind on a dev server and database of its own (``latency`` counts every reaction of
    its journey in the database)."""
    with stack.database() as url, stack.dev_server() as server:
        env = stack.settings_env(url, server.address, QUEUE, encryption_keys="")
        db = Database(url)
        client = await Client.connect(server.address)
        try:
            with (
                stack.worker(env),
                stack.api({**env, "JOURNEYS_RELAY": "false"}) as api_url,
                relays(kind, count, env),
            ):
                return await latency(client, db, api_url, listeners, burst, seconds)
        finally:
            db.dispose()


if __name__ == "__main__":
    asyncio.run(main())
