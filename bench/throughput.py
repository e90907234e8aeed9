"""Contacts through a reference journey per second, against a minimal hand-written workflow,
and event-to-signal latency through the API and its outbox relay at half of capacity.

    .venv/bin/python -m bench.throughput [--contacts 2000] [--rounds 3] [--no-sandbox] [--quick]

One Temporal dev server (SQLite file, free port), one Postgres database and one worker process
(``worker.build_worker`` with JourneysPlugin and the console provider, plus the reference
workflow) serve both sides; everything is started here and stopped at the end. The journey is
send, 1 s wait, branch on the contact, send, exit; the reference does the same activities and
timer without the interpreter. Each round runs the sides in halves, minimal, journey, journey,
minimal, so drift on the shared machine falls on both. Prints both rates and their ratio
(goal >= 0.8): with ``--rounds``, the median of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter

from bench import fixtures, stack
from journeys.admission import start_entry
from journeys.starter import workflow_id
from store import contacts as contacts_store
from store.db import Database

QUEUE = "bench-throughput"
REFERENCE = {
    "key": "bench-reference",
    "name": "Throughput reference",
    "trigger": {"event": "bench.start"},
    "steps": [
        {"id": "welcome", "send": {"channel": "email", "template": "bench"}},
        {"id": "pause", "wait": "PT1S"},
        {
            "id": "plan?",
            "branch": {
                "cases": [{"when": {"field": "contact.plan", "eq": "pro"}, "next": "pro-tips"}],
                "default": "tips",
            },
        },
        {"id": "pro-tips", "send": {"channel": "email", "template": "bench"}, "next": "done"},
        {"id": "tips", "send": {"channel": "email", "template": "bench"}},
        {"id": "done", "exit": {}},
    ],
}
LISTENER = {
    "key": "bench-listener",
    "name": "Latency listener",
    "trigger": {"event": "listen.start"},
    "steps": [
        {
            "id": "listen",
            "wait_for": {"event": "listen.tick", "timeout": "P1D"},
            "next": "listen",
            "on_timeout": "done",
        },
        {"id": "done", "exit": {}},
    ],
}


class Progress:
    def __init__(self, label: str, total: int, every: float = 5.0) -> None:
        self.label, self.total, self.done, self._every = label, total, 0, every
        self._task: asyncio.Task[None] | None = None

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            print(f"  {self.label}: {self.done}/{self.total}", flush=True)

    def __enter__(self) -> Progress:
        self._task = asyncio.create_task(self._report())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class Side:
    """What one side (journey or minimal) took over the chunks it ran: contacts, seconds and
    CPU seconds per process."""

    contacts: int = 0
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.contacts / self.seconds

    def cpu_ms(self) -> str:
        return ", ".join(f"{name} {1000 * t / self.contacts:.0f}" for name, t in self.cpu.items())


def _cpu_now(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the named processes, of Postgres and of this process."""
    now = {name: stack.cpu_seconds(pid) for name, pid in pids.items()}
    now["postgres"] = stack.postgres_cpu_seconds()
    now["bench"] = time.process_time()
    return now


async def run_all(
    side: Side,
    label: str,
    ids: list[str],
    start: Callable[[str], Awaitable[WorkflowHandle]],
    pids: dict[str, int],
) -> None:
    """Start one run per id (50 starts at a time), wait for every result; adds the contacts,
    the seconds and the CPU each process spent to ``side``."""
    gate = asyncio.Semaphore(50)
    # At most 500 runs in flight: each waits for its result with a long poll, and the server
    # refuses more concurrent polls than its limit.
    in_flight = asyncio.Semaphore(500)
    before = _cpu_now(pids)

    with Progress(label, len(ids)) as progress:

        async def one(contact_id: str) -> None:
            async with in_flight:
                async with gate:
                    handle = await start(contact_id)
                await handle.result()
            progress.done += 1

        began = time.perf_counter()
        await asyncio.gather(*(one(i) for i in ids))
    side.seconds += time.perf_counter() - began
    side.contacts += len(ids)
    for name, seconds in _cpu_now(pids).items():
        side.cpu[name] = side.cpu.get(name, 0.0) + seconds - before[name]


async def throughput(
    client: Client, db: Database, n: int, rounds: int, pids: dict[str, int]
) -> tuple[float, float, float]:
    """Median journey rate, median minimal rate and median of the rounds' ratios.

    Each round runs the two sides in halves, minimal-journey-journey-minimal, so both see the
    same database and history sizes and a drift of the shared machine during the round
    (another tenant, a checkpoint, a growing table) falls on both alike."""
    version, journey = fixtures.journey(db, REFERENCE)
    journeys, minimals, ratios = [], [], []
    for round_ in range(rounds):
        tag = uuid.uuid4().hex[:6]
        minimal_ids = [f"m{round_}-{tag}-{i}" for i in range(n)]
        journey_ids = [f"j{round_}-{tag}-{i}" for i in range(n)]
        fixtures.contacts(db, minimal_ids + journey_ids)

        async def minimal(contact_id: str) -> WorkflowHandle:
            return await client.start_workflow(
                "MinimalReference", contact_id, id=f"minimal/{contact_id}", task_queue=QUEUE
            )

        async def journey_run(contact_id: str) -> WorkflowHandle:
            # As the enroll API does: the entry admitted in the starter's own transaction.
            async with db.held_connection() as connection:
                return await start_entry(
                    client,
                    connection,
                    journey=journey,
                    version=version,
                    contact=contacts_store.load_snapshot(connection, contact_id),
                    task_queue=QUEUE,
                )

        half = n // 2
        sides = {"minimal": Side(), "journey": Side()}
        for label, ids, start in (
            ("minimal", minimal_ids[:half], minimal),
            ("journey", journey_ids[:half], journey_run),
            ("journey", journey_ids[half:], journey_run),
            ("minimal", minimal_ids[half:], minimal),
        ):
            await run_all(sides[label], label, ids, start, pids)
        for label, side in sides.items():
            print(f"  {label}: CPU ms per contact: {side.cpu_ms()}", flush=True)
        minimals.append(sides["minimal"].rate)
        journeys.append(sides["journey"].rate)
        ratios.append(journeys[-1] / minimals[-1])
        print(
            f"round {round_ + 1}: minimal {minimals[-1]:.1f}/s, journey {journeys[-1]:.1f}/s, "
            f"ratio {ratios[-1]:.2f}",
            flush=True,
        )
    return statistics.median(journeys), statistics.median(minimals), statistics.median(ratios)


async def _post(http: httpx.AsyncClient, key: dict[str, str], calls: list[dict]) -> float:
    """POST the calls as one batch; the moment the 202 came back."""
    response = await http.post("/v1/batch", json={"batch": calls}, headers=key, timeout=60)
    response.raise_for_status()
    return time.time()


def _tick(contact: str, n: int) -> dict:
    return {"type": "track", "userId": contact, "event": "listen.tick", "messageId": str(n)}


@dataclass
class Latency:
    capacity: float
    rate: float
    count: int
    to_signal: list[float]
    to_reaction: list[float]

    @staticmethod
    def percentile(values: list[float], share: float) -> float:
        ordered = sorted(values)
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * share))]


async def _post_each(http: httpx.AsyncClient, key: dict[str, str], calls: list[dict]) -> None:
    for call in calls:
        await _post(http, key, [call])


async def _paced(
    http: httpx.AsyncClient, key: dict[str, str], contacts: list[str], rate: float, count: int
) -> dict[str, float]:
    """One event per request at ``rate`` per second: message id -> when its 202 came."""
    times: dict[str, float] = {}

    async def one(call: dict) -> None:
        times[call["messageId"]] = await _post(http, key, [call])

    tasks, began = [], time.perf_counter()
    for n in range(count):
        pause = began + n / rate - time.perf_counter()
        if pause > 0:
            await asyncio.sleep(pause)
        call = _tick(contacts[n % len(contacts)], 1_000_000 + n)
        tasks.append(asyncio.create_task(one(call)))
    await asyncio.gather(*tasks)
    return times


async def _signal_times(client: Client, contacts: list[str]) -> dict[str, float]:
    """Event id -> when its signal entered the run's history (server clock, same machine)."""
    signalled: dict[str, float] = {}
    for contact in contacts:
        handle = client.get_workflow_handle(workflow_id(LISTENER["key"], contact))
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                payload = event.workflow_execution_signaled_event_attributes.input.payloads[0]
                signalled[json.loads(payload.data)["id"]] = event.event_time.ToMicroseconds() / 1e6
    return signalled


async def latency(
    client: Client, db: Database, url: str, listeners: int, burst: int, seconds: float
) -> Latency:
    """Event capacity (a burst, until every run took its events), then events at half of it
    for ``seconds``: from each 202 to the signal in the run's history and to the run's trace."""
    fixtures.journey(db, LISTENER)
    key = fixtures.admin_key(db)
    contacts = [f"listener-{uuid.uuid4().hex[:6]}-{i}" for i in range(listeners)]
    fixtures.contacts(db, contacts)
    async with httpx.AsyncClient(base_url=url) as http:
        starts = [{**_tick(c, 0), "event": "listen.start", "messageId": c} for c in contacts]
        await _post(http, key, starts)
        await fixtures.until(
            lambda: fixtures.entered(db, LISTENER["key"], "listen") == listeners,
            "the listeners to wait",
        )
        # The burst has the paced phase's shape: one event per request, 16 requests at a time.
        ticks = [_tick(contacts[n % listeners], n) for n in range(burst)]
        began = time.perf_counter()
        await asyncio.gather(*(_post_each(http, key, ticks[i::16]) for i in range(16)))
        await fixtures.until(
            lambda: len(fixtures.reactions(db, LISTENER["key"])) == burst, "the runs to react"
        )
        capacity = burst / (time.perf_counter() - began)
        print(f"  event capacity: {capacity:.0f}/s; now at half of it", flush=True)
        count = int(capacity / 2 * seconds)
        times = await _paced(http, key, contacts, capacity / 2, count)
        await fixtures.until(
            lambda: len(fixtures.reactions(db, LISTENER["key"])) == burst + count,
            "the runs to react",
        )
    signalled = await _signal_times(client, contacts)
    reacted = fixtures.reactions(db, LISTENER["key"])
    return Latency(
        capacity,
        capacity / 2,
        len(times),
        [signalled[m] - accepted for m, accepted in times.items()],
        [reacted[m] - accepted for m, accepted in times.items()],
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=2000, help="contacts per side and round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="300 contacts, short latency run")
    parser.add_argument("--no-latency", action="store_true")
    parser.add_argument(
        "--no-sandbox",
        action="store_true",
        help="run both workflows outside the SDK's sandbox (JOURNEYS_WORKFLOW_SANDBOX=false)",
    )
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        help="dev server SQLite pragma, e.g. synchronous=NORMAL (default: journeys.devserver's)",
    )
    args = parser.parse_args()
    n = 300 if args.quick else args.contacts
    listeners, burst, seconds = (50, 500, 5) if args.quick else (200, 3000, 20)

    with stack.database() as url, stack.dev_server(args.sqlite_pragma) as server:
        sandbox = {"workflow_sandbox": "false"} if args.no_sandbox else {}
        env = stack.settings_env(url, server.address, QUEUE, **sandbox)
        db = Database(url)
        client = await Client.connect(server.address, data_converter=pydantic_data_converter)
        with stack.worker(env) as worker:
            pids = {"worker": worker.pid, "temporal": server.pid}
            journey_rate, minimal_rate, ratio = await throughput(client, db, n, args.rounds, pids)
            if not args.no_latency:
                with stack.api(env) as api_url:
                    measured = await latency(client, db, api_url, listeners, burst, seconds)
        db.dispose()

    print(
        f"contacts per side: {n} x {args.rounds} round(s); worker: 1 process, both workflows "
        f"{'outside' if args.no_sandbox else 'inside'} the SDK's sandbox"
    )
    print(f"reference journey (send, 1 s wait, branch, send, exit): {journey_rate:.1f} contacts/s")
    print(
        f"minimal hand-written workflow, same activities and timer: {minimal_rate:.1f} contacts/s"
    )
    print(
        f"ratio journey/minimal (median of the rounds' ratios): {ratio:.2f} "
        f"(goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})"
    )
    if not args.no_latency:
        print(
            f"event capacity (API, relay, signal, run reacted; burst of {burst} requests): "
            f"{measured.capacity:.0f} events/s"
        )
        print(
            f"event->signal latency at {measured.rate:.0f} events/s ({measured.count} events, "
            f"one per request, {listeners} runs):"
        )
        for label, values in (
            ("signal in the run's history", measured.to_signal),
            ("run reacted (its trace time)", measured.to_reaction),
        ):
            print(
                f"  202 -> {label}: p50 {measured.percentile(values, 0.5):.0f} ms, "
                f"p99 {measured.percentile(values, 0.99):.0f} ms"
            )


if __name__ == "__main__":
    asyncio.run(main())
