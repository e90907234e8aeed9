"""Contacts through a reference journey per second, against a minimal hand-written workflow,
and event-to-signal latency through the API and its outbox relay at half of capacity.

    .venv/bin/python -m bench.throughput [--contacts 2000] [--rounds 3] [--no-sandbox]
        [--encryption] [--quick]

One Temporal dev server (SQLite file, free port), one Postgres database and one worker process
(``worker.build_worker`` with JourneysPlugin and the console provider, plus the reference
workflow) serve both sides; everything is started here and stopped at the end. The journey is
send, 1 s wait, branch on the contact, send, exit; the reference does the same activities and
timer without the interpreter. Each round runs the sides in halves, minimal, journey, journey,
minimal, so drift on the shared machine falls on both. Prints both rates and their ratio
(goal >= 0.8): with ``--rounds``, the median of the rounds' ratios.

With ``--encryption`` a second worker process with a throwaway ``JOURNEYS_ENCRYPTION_KEYS``
polls its own task queue, and a second client with the same keys starts its runs: both sides
run once without the payload codec and once with it in every round (halves in the order
minimal, journey unencrypted, journey, minimal encrypted, then back), and the journey's
encrypted rate against its unencrypted one is the cost of encryption (goal < 10%).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import secrets
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import httpx
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench import fixtures, stack
from temporal_journeys.api.services.admission import start_entry
from temporal_journeys.journeys.settings import ENCRYPTION_KEY_BYTES, ENCRYPTION_KEYS, Settings
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store.contact_keys import keyring
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.starter import workflow_id

QUEUE = "bench-throughput"
PLAIN, ENCRYPTED = "unencrypted", "encrypted"
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

    def cpu_total_ms(self) -> float:
        """CPU milliseconds per contact of every process measured, together."""
        return 1000 * sum(self.cpu.values()) / self.contacts

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


@dataclass(frozen=True)
class Setup:
    """One worker process and the client that starts its runs, with encryption or without;
    both start on the same dev server and database."""

    name: str
    client: Client
    task_queue: str
    pids: dict[str, int]


@dataclass
class Round:
    """One round's rate and CPU milliseconds per contact (every process together) per
    (setup, side), e.g. ``("encrypted", "journey")``."""

    rates: dict[tuple[str, str], float]
    cpu: dict[tuple[str, str], float]

    def ratio(self, setup: str) -> float:
        return self.rates[setup, "journey"] / self.rates[setup, "minimal"]

    def cost(self, side: str) -> float:
        """Share of the side's unencrypted rate that encryption takes (0.05: 5% slower)."""
        return 1 - self.rates[ENCRYPTED, side] / self.rates[PLAIN, side]

    def cpu_cost(self, side: str) -> float:
        """The same by CPU per contact (0.05: 5% more), steadier than rates on a busy machine."""
        return self.cpu[ENCRYPTED, side] / self.cpu[PLAIN, side] - 1


def order(setups: list[str]) -> list[tuple[str, str]]:
    """The (setup, side) halves of one round: a palindrome, so a drift of the shared machine
    during the round falls on every pair alike. One setup: minimal, journey, journey, minimal;
    two: minimal, journey (plain), journey, minimal (encrypted), then back."""
    forward = []
    for n, setup in enumerate(setups):
        sides = ("minimal", "journey") if n % 2 == 0 else ("journey", "minimal")
        forward += [(setup, side) for side in sides]
    return forward + forward[::-1]


async def throughput(setups: list[Setup], db: Database, n: int, rounds: int) -> list[Round]:
    """Each round runs ``n`` contacts per setup and side, in the halves ``order`` gives, so
    both sides (and both setups) see the same database and history sizes."""
    version, journey = fixtures.journey(db, REFERENCE)
    results = []
    for round_ in range(rounds):
        tag = uuid.uuid4().hex[:6]
        ids = {
            (setup.name, side): [f"{side[0]}{round_}-{tag}-{setup.name[0]}-{i}" for i in range(n)]
            for setup in setups
            for side in ("minimal", "journey")
        }
        fixtures.contacts(db, [i for chunk in ids.values() for i in chunk])
        by_name = {setup.name: setup for setup in setups}

        def starter(setup: Setup, side: str) -> Callable[[str], Awaitable[WorkflowHandle]]:
            async def minimal(contact_id: str) -> WorkflowHandle:
                return await setup.client.start_workflow(
                    "MinimalReference",
                    contact_id,
                    id=f"minimal/{contact_id}",
                    task_queue=setup.task_queue,
                )

            async def journey_run(contact_id: str) -> WorkflowHandle:
                # As the enroll API does: the entry admitted in the starter's own transaction.
                async with db.held_connection() as connection:
                    return await start_entry(
                        setup.client,
                        connection,
                        journey=journey,
                        version=version,
                        contact=contacts_store.load_snapshot(connection, contact_id),
                        task_queue=setup.task_queue,
                    )

            return minimal if side == "minimal" else journey_run

        half = n // 2
        sides = {key: Side() for key in ids}
        seen: set[tuple[str, str]] = set()
        for key in order([setup.name for setup in setups]):
            first = key not in seen
            seen.add(key)
            chunk = ids[key][:half] if first else ids[key][half:]
            setup = by_name[key[0]]
            label = key[1] if len(setups) == 1 else f"{key[1]} ({key[0]})"
            await run_all(sides[key], label, chunk, starter(setup, key[1]), setup.pids)
        for (setup_name, side_name), side in sides.items():
            label = side_name if len(setups) == 1 else f"{side_name} ({setup_name})"
            print(f"  {label}: CPU ms per contact: {side.cpu_ms()}", flush=True)
        results.append(
            Round(
                {key: side.rate for key, side in sides.items()},
                {key: side.cpu_total_ms() for key, side in sides.items()},
            )
        )
        print(f"round {round_ + 1}: {describe(results[-1])}", flush=True)
    return results


def describe(round_: Round) -> str:
    parts = []
    for setup in (PLAIN, ENCRYPTED):
        if (setup, "journey") not in round_.rates:
            continue
        prefix = "" if setup == PLAIN else "encrypted: "
        parts.append(
            f"{prefix}minimal {round_.rates[setup, 'minimal']:.1f}/s, "
            f"journey {round_.rates[setup, 'journey']:.1f}/s, ratio {round_.ratio(setup):.2f}"
        )
    if (ENCRYPTED, "journey") in round_.rates:
        parts.append(
            f"encryption costs the journey {100 * round_.cost('journey'):.1f}% "
            f"(minimal {100 * round_.cost('minimal'):.1f}%), CPU per contact "
            f"{round_.cpu[PLAIN, 'journey']:.0f} -> {round_.cpu[ENCRYPTED, 'journey']:.0f} ms "
            f"({100 * round_.cpu_cost('journey'):+.1f}%; "
            f"minimal {100 * round_.cpu_cost('minimal'):+.1f}%)"
        )
    return "; ".join(parts)


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


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
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
        "--encryption",
        action="store_true",
        help="also run both sides with the payload codec (a second worker and client with a "
        "throwaway JOURNEYS_ENCRYPTION_KEYS) and print what encryption costs",
    )
    parser.add_argument(
        "--sqlite-pragma",
        action="append",
        help="dev server SQLite pragma, e.g. synchronous=NORMAL (default: journeys.devserver's)",
    )
    return parser.parse_args(argv)


def throwaway_keys() -> str:
    """A ``JOURNEYS_ENCRYPTION_KEYS`` value with one fresh key, for one run only."""
    return "bench:" + base64.b64encode(secrets.token_bytes(ENCRYPTION_KEY_BYTES)).decode()


def worker_envs(url: str, address: str, args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """The environment of each worker process, by setup name. The unencrypted one sets the
    keys empty, so a key in the caller's environment or ``.env`` does not encrypt it too."""
    sandbox = {"workflow_sandbox": "false"} if args.no_sandbox else {}
    envs = {PLAIN: stack.settings_env(url, address, QUEUE, **sandbox, encryption_keys="")}
    if args.encryption:
        envs[ENCRYPTED] = stack.settings_env(
            url, address, QUEUE + "-encrypted", **sandbox, encryption_keys=throwaway_keys()
        )
    return envs


def client_settings(env: dict[str, str]) -> Settings:
    """The settings the bench's own client takes from a worker's environment: the same keys,
    so what it starts the worker can read, and the other way round."""
    return Settings(encryption_keys=env[ENCRYPTION_KEYS])


def _median(rounds: list[Round], value: Callable[[Round], float]) -> float:
    return statistics.median(value(round_) for round_ in rounds)


def report(rounds: list[Round], n: int, args: argparse.Namespace) -> None:
    print(
        f"contacts per side: {n} x {args.rounds} round(s); worker: 1 process"
        f"{' per setup (unencrypted, encrypted)' if args.encryption else ''}, both workflows "
        f"{'outside' if args.no_sandbox else 'inside'} the SDK's sandbox"
    )
    journey_rate = _median(rounds, lambda r: r.rates[PLAIN, "journey"])
    minimal_rate = _median(rounds, lambda r: r.rates[PLAIN, "minimal"])
    ratio = _median(rounds, lambda r: r.ratio(PLAIN))
    print(f"reference journey (send, 1 s wait, branch, send, exit): {journey_rate:.1f} contacts/s")
    print(
        f"minimal hand-written workflow, same activities and timer: {minimal_rate:.1f} contacts/s"
    )
    print(
        f"ratio journey/minimal (median of the rounds' ratios): {ratio:.2f} "
        f"(goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})"
    )
    if not args.encryption:
        return
    encrypted = {
        side: _median(rounds, lambda r, side=side: r.rates[ENCRYPTED, side])
        for side in ("journey", "minimal")
    }
    ratio = _median(rounds, lambda r: r.ratio(ENCRYPTED))
    print(
        f"encrypted (payload codec on the worker and the bench's client): journey "
        f"{encrypted['journey']:.1f} contacts/s against {journey_rate:.1f} unencrypted, minimal "
        f"{encrypted['minimal']:.1f} against {minimal_rate:.1f}"
    )
    print(
        f"ratio journey/minimal, both encrypted: {ratio:.2f} "
        f"(goal >= 0.8: {'met' if ratio >= 0.8 else 'NOT met'})"
    )
    cost = _median(rounds, lambda r: r.cost("journey"))
    costs = ", ".join(f"{100 * r.cost('journey'):.1f}%" for r in rounds)
    print(
        f"encryption cost, journey (1 - encrypted/unencrypted, median of the rounds: {costs}): "
        f"{100 * cost:.1f}% (goal < 10%: {'met' if cost < 0.1 else 'NOT met'}); minimal "
        f"{100 * _median(rounds, lambda r: r.cost('minimal')):.1f}%"
    )
    cpu = {
        side: _median(rounds, lambda r, side=side: r.cpu_cost(side))
        for side in ("journey", "minimal")
    }
    print(
        f"encryption cost in CPU per contact (worker, dev server, Postgres and bench together, "
        f"median of the rounds): journey {100 * cpu['journey']:+.1f}%, "
        f"minimal {100 * cpu['minimal']:+.1f}%"
    )


async def main() -> None:
    args = parse_args()
    n = 300 if args.quick else args.contacts
    listeners, burst, seconds = (50, 500, 5) if args.quick else (200, 3000, 20)

    with stack.database() as url, stack.dev_server(args.sqlite_pragma) as server:
        envs = worker_envs(url, server.address, args)
        db = Database(url)
        with contextlib.ExitStack() as workers:
            setups = []
            for name, env in envs.items():
                process = workers.enter_context(stack.worker(env))
                # The worker seals each run's results with the contact's data key: the client
                # reads them through the same keys table.
                settings = client_settings(env)
                converter = data_converter(settings, keyring(db, settings))
                setups.append(
                    Setup(
                        name,
                        await Client.connect(server.address, data_converter=converter),
                        env["JOURNEYS_TASK_QUEUE"],
                        {"worker": process.pid, "temporal": server.pid},
                    )
                )
            rounds = await throughput(setups, db, n, args.rounds)
            if not args.no_latency:
                # Unencrypted: the latency figures are those of the API, relay and runs as
                # before, and the signal times are read from the raw history.
                with stack.api(envs[PLAIN]) as api_url:
                    measured = await latency(
                        setups[0].client, db, api_url, listeners, burst, seconds
                    )
        db.dispose()

    report(rounds, n, args)
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
