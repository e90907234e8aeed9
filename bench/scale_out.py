"""Scale-out on one machine: 1 API process, 1 relay and 1 worker, then 2 API processes,
3 relays and 2 workers, against one dev server and one Postgres database; every event checked
to have reached its run once and in order, every message to have been sent once.

    .venv/bin/python -m bench.scale_out [--contacts 400] [--ticks 10] [--views 10]
        [--rounds 1] [--quick]

The journey waits for ``so.tick``, sends an email (console provider) for each one and waits
again; ``so.stop`` ends it (``exit_on``). Each phase has contacts of its own and three measured
windows. Enrolment: their ``so.start`` events (``POST /v1/batch``, batches of ``--group``
contacts) until every run waits for its first tick. Events taken: each group of contacts posts
its ticks one round after the other (a contact's tick k+1 is posted once the batch holding tick
k was accepted), each round to the next API process, so consecutive events of one contact are
accepted by different processes and routed by whichever relay claims them; until every message
was sent. Events no run listens to: ``so.view`` rounds, until the outbox is empty. Then
``so.stop`` ends every run. ``--rounds 2`` runs a second pair of phases in the mirrored order.

API processes run with ``JOURNEYS_RELAY=false``; each relay is a ``journeys relay`` process,
woken by the API processes' notifications (docs/scaling.md). Printed per
window: contacts or events per second, and the CPU of every process of each component (API,
relay, worker, the Temporal dev server, the Postgres backends of this database, sampled twice a
second, and this process) per contact entered or per 1,000 events; per phase the growth of the
database and of the dev server's SQLite file, and the CPU of each relay process (whether they
shared the work). The checks read each run's history (the signals, in order: start, every tick,
stop, each once), its trace in Postgres (each tick taken once, in order, a send after each) and
the message log (one ``sent`` row per tick, distinct idempotency keys); any failure is printed
and the exit status is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from sqlalchemy import func, select, text
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client

from bench import fixtures, stack
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Message, OutboxEntry, StepEvent
from temporal_journeys.workflows.contract import EVENT_SIGNAL
from temporal_journeys.workflows.run_ids import workflow_id

QUEUE = "bench-scale-out"
KEY = "bench-scale-out"
JOURNEY = {
    "key": KEY,
    "name": "Scale-out: a send for every event",
    "trigger": {"event": "so.start"},
    "exit_on": [{"event": "so.stop"}],
    "steps": [
        {
            "id": "listen",
            "wait_for": {"event": "so.tick", "timeout": "P1D"},
            "on_timeout": "done",
        },
        {"id": "notify", "send": {"channel": "email", "template": "bench"}, "next": "listen"},
        {"id": "done", "exit": {}},
    ],
}
COMPONENTS = ("API", "relay", "worker", "Temporal server", "Postgres")


@dataclass(frozen=True)
class Layout:
    apis: int
    relays: int
    workers: int

    def __str__(self) -> str:
        return f"{self.apis} API, {self.relays} relay, {self.workers} worker processes"


PHASES = (Layout(1, 1, 1), Layout(2, 3, 2))


# --- what is posted, and the check ---------------------------------------------------------


def start_id(contact: str) -> str:
    return f"{contact}.start"


def tick_id(contact: str, n: int) -> str:
    return f"{contact}.t{n:04}"


def stop_id(contact: str) -> str:
    return f"{contact}.stop"


def posted(contact: str, ticks: int) -> list[str]:
    """A contact's event ids in the order they are posted: start, the ticks, stop."""
    return [
        start_id(contact),
        *(tick_id(contact, n) for n in range(1, ticks + 1)),
        stop_id(contact),
    ]


@dataclass
class Observed:
    """What became of a phase's contacts, read back from Temporal and Postgres."""

    # contact -> ids of the events its run was signalled with, in history order (every run of
    # the workflow id, continued-as-new ones included)
    signals: dict[str, list[str]] = field(default_factory=dict)
    # contact -> its run's trace rows of kind ``event`` (with the event id) and ``sent`` (None),
    # in trace order
    trace: dict[str, list[tuple[str, str | None]]] = field(default_factory=dict)
    # contact -> (idempotency key, status) of each message of the journey to it
    messages: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # contact -> the status of each of its enrollments in the journey
    runs: dict[str, list[str]] = field(default_factory=dict)
    outbox_left: int = 0  # outbox entries of these contacts still there (pending or parked)


def check(contacts: list[str], ticks: int, seen: Observed) -> list[str]:
    """Every problem found, one line each: empty when every event reached its run once and in
    order, each tick was taken once and in order and answered by one send, and every message
    was sent once."""
    problems = []
    if seen.outbox_left:
        problems.append(f"{seen.outbox_left} outbox entries were never routed")
    for contact in contacts:
        expected = posted(contact, ticks)
        signals = seen.signals.get(contact, [])
        if signals != expected:
            twice = sorted(i for i, n in Counter(signals).items() if n > 1)
            missing = [i for i in expected if i not in signals]
            if twice:
                problems.append(f"{contact}: events reached the run more than once: {twice}")
            if missing:
                problems.append(f"{contact}: events never reached the run: {missing}")
            if not twice and not missing:
                problems.append(f"{contact}: events reached the run out of order: {signals}")
        trace = seen.trace.get(contact, [])
        taken = [event for kind, event in trace if kind == "event"]
        if taken != expected[1:-1]:
            problems.append(f"{contact}: the run took {taken}, not the ticks in order")
        if [kind for kind, _ in trace] != ["event", "sent"] * ticks:
            problems.append(f"{contact}: the trace is not one send after each tick: {trace}")
        messages = seen.messages.get(contact, [])
        keys = [key for key, _ in messages]
        if len(messages) != ticks or len(set(keys)) != len(keys):
            problems.append(
                f"{contact}: {len(messages)} messages ({len(set(keys))} keys), not {ticks}"
            )
        unsent = [status for _, status in messages if status != "sent"]
        if unsent:
            problems.append(f"{contact}: messages not sent: {unsent}")
        if seen.runs.get(contact) != ["exited"]:
            problems.append(f"{contact}: runs {seen.runs.get(contact)}, not one that exited")
    return problems


async def observe(db: Database, client: Client, prefix: str, contacts: list[str]) -> Observed:
    seen = Observed(
        trace=_trace(db, prefix),
        messages=_messages(db, prefix),
        runs=_runs(db, prefix),
        outbox_left=_outbox_left(db, prefix),
    )
    gate = asyncio.Semaphore(16)

    async def one(contact: str) -> None:
        async with gate:
            seen.signals[contact] = await signals_of(client, workflow_id(KEY, contact))

    await asyncio.gather(*(one(contact) for contact in contacts))
    return seen


async def signals_of(client: Client, workflow: str) -> list[str]:
    """Event ids that reached the workflow, oldest run first: the history of the latest run,
    preceded by those of the runs it continued from; the first run's trigger from its input,
    the others' as signals."""
    ids: list[str] = []
    run_id: str | None = None
    while True:
        run: list[str] = []
        previous = ""
        handle = client.get_workflow_handle(workflow, run_id=run_id)
        async for event in handle.fetch_history_events():
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
                started = event.workflow_execution_started_event_attributes
                previous = started.continued_execution_run_id
                trigger = json.loads(started.input.payloads[0].data).get("trigger")
                if not previous and trigger:
                    run.append(trigger["id"])  # the first run's event is its input, no signal
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                signalled = event.workflow_execution_signaled_event_attributes
                if signalled.signal_name == EVENT_SIGNAL:
                    # Plain JSON: the bench's processes run without JOURNEYS_ENCRYPTION_KEYS.
                    run.append(json.loads(signalled.input.payloads[0].data)["id"])
        ids = run + ids
        if not previous:
            return ids
        run_id = previous


def _like(column: object, prefix: str) -> object:
    return column.like(prefix + "%")  # type: ignore[attr-defined]


def _trace(db: Database, prefix: str) -> dict[str, list[tuple[str, str | None]]]:
    query = select(StepEvent.contact_id, StepEvent.id, StepEvent.kind, StepEvent.detail).where(
        StepEvent.journey_key == KEY,
        StepEvent.kind.in_(["event", "sent"]),
        _like(StepEvent.contact_id, prefix),
    )
    with db.transaction() as session:
        rows = session.execute(query).all()
    rows.sort(key=lambda row: (row[0], int(row[1].rsplit(":", 1)[1])))  # id: enrollment:seq
    trace: dict[str, list[tuple[str, str | None]]] = defaultdict(list)
    for contact, _, kind, detail in rows:
        # An event row's detail is ``name (id)``.
        event = detail.rsplit("(", 1)[1].rstrip(")") if kind == "event" and detail else None
        trace[contact].append((kind, event))
    return trace


def _messages(db: Database, prefix: str) -> dict[str, list[tuple[str, str]]]:
    query = select(Message.contact_id, Message.idempotency_key, Message.status).where(
        Message.journey_key == KEY, _like(Message.contact_id, prefix)
    )
    found: dict[str, list[tuple[str, str]]] = defaultdict(list)
    with db.transaction() as session:
        for contact, key, status in session.execute(query):
            found[contact].append((key, status))
    return found


def _runs(db: Database, prefix: str) -> dict[str, list[str]]:
    query = select(Enrollment.contact_id, Enrollment.status).where(
        Enrollment.journey_key == KEY, _like(Enrollment.contact_id, prefix)
    )
    found: dict[str, list[str]] = defaultdict(list)
    with db.transaction() as session:
        for contact, status in session.execute(query):
            found[contact].append(status)
    return found


def _outbox_left(db: Database, prefix: str) -> int:
    query = select(func.count()).where(_like(OutboxEntry.contact_id, prefix))
    with db.transaction() as session:
        return session.scalar(query) or 0


def _count(db: Database, query: object) -> int:
    with db.transaction() as session:
        return session.scalar(query) or 0  # type: ignore[call-overload]


def waiting(db: Database, prefix: str) -> int:
    """Runs of the phase that reached their first wait (their trace has ``listen`` entered)."""
    return _count(
        db,
        select(func.count(func.distinct(StepEvent.enrollment_id))).where(
            StepEvent.journey_key == KEY,
            StepEvent.step_id == "listen",
            StepEvent.kind == "entered",
            _like(StepEvent.contact_id, prefix),
        ),
    )


def sent(db: Database, prefix: str) -> int:
    return _count(
        db,
        select(func.count()).where(
            Message.journey_key == KEY, Message.status == "sent", _like(Message.contact_id, prefix)
        ),
    )


def ended(db: Database, prefix: str) -> int:
    return _count(
        db,
        select(func.count()).where(
            Enrollment.journey_key == KEY,
            Enrollment.status != "running",
            _like(Enrollment.contact_id, prefix),
        ),
    )


# --- CPU ---------------------------------------------------------------------------------------


class PostgresBackends:
    """CPU seconds of the Postgres backends serving this database, sampled every ``every``
    seconds from /proc: a backend that ends keeps the figure of its last sample (at most one
    interval of its work is lost). Background processes (WAL writer, checkpointer) are not
    counted: they serve every database of the server, other benches' and tests' too."""

    def __init__(self, url: str, every: float = 0.5) -> None:
        self._db = Database(url, pool_size=1, max_overflow=0)
        self._every = every
        self._seen: dict[int, float] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> PostgresBackends:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self._db.dispose()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            with contextlib.suppress(Exception):  # a missed sample only delays the figure
                self.sample()

    def sample(self) -> None:
        query = text(
            "SELECT pid FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        with self._db.transaction() as session:
            pids = list(session.scalars(query))
        for pid in pids:
            with contextlib.suppress(OSError):  # ended since the query
                seconds = stack.cpu_seconds(pid)
                with self._lock:
                    self._seen[pid] = max(seconds, self._seen.get(pid, 0.0))

    def seconds(self) -> float:
        self.sample()
        with self._lock:
            return sum(self._seen.values())


@dataclass
class Processes:
    pids: dict[str, list[int]]  # component -> its processes
    postgres: PostgresBackends

    def cpu(self) -> dict[str, float]:
        now = {
            name: sum(stack.cpu_seconds(pid) for pid in pids) for name, pids in self.pids.items()
        }
        now["Postgres"] = self.postgres.seconds()
        now["bench"] = time.process_time()
        return now


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def per(cpu: dict[str, float], count: int, unit: float) -> str:
    shown = [f"{name} {unit * cpu[name] / count:.2f}" for name in (*COMPONENTS, "bench")]
    total = sum(cpu[name] for name in COMPONENTS)
    return ", ".join(shown) + f"; total without bench {unit * total / count:.2f}"


# --- load --------------------------------------------------------------------------------------


async def post_rounds(
    urls: list[str],
    headers: dict[str, str],
    groups: list[list[str]],
    rounds: list[Callable[[str], dict]],
    concurrency: int,
) -> None:
    """Each group posts its rounds in order (the next once the API accepted the last), round
    ``r`` of group ``g`` to API ``(g + r) % len(urls)``; ``concurrency`` requests at once."""
    gate = asyncio.Semaphore(concurrency)
    clients = [httpx.AsyncClient(base_url=url, headers=headers, timeout=120) for url in urls]

    async def group(number: int, contacts: list[str]) -> None:
        for index, event in enumerate(rounds):
            http = clients[(number + index) % len(clients)]
            body = {"batch": [event(contact) for contact in contacts]}
            async with gate:
                await post(http, body)

    try:
        await asyncio.gather(*(group(n, contacts) for n, contacts in enumerate(groups)))
    finally:
        for http in clients:
            await http.aclose()


async def post(http: httpx.AsyncClient, body: dict) -> None:
    """POST /v1/batch; a 503 (the database briefly unreachable or out of connections: this
    Postgres is shared) is retried as its Retry-After says, as a client should: the batch
    was not stored, and its messageIds make a repeat harmless anyway."""
    for _ in range(30):
        response = await http.post("/v1/batch", json=body)
        if response.status_code != 503:
            response.raise_for_status()
            return
        await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
    response.raise_for_status()


def track(event: str, message_id: Callable[[str], str]) -> Callable[[str], dict]:
    return lambda contact: {
        "type": "track",
        "userId": contact,
        "event": event,
        "messageId": message_id(contact),
    }


# --- a phase -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """One measured stretch of a phase: ``count`` contacts or events in ``seconds``, and the
    CPU seconds each component spent meanwhile."""

    count: int
    seconds: float
    cpu: dict[str, float]

    @property
    def rate(self) -> float:
        return self.count / self.seconds


@dataclass
class Result:
    layout: Layout
    ticks: int
    enrolment: Window  # contacts: so.start to every run waiting for its first tick
    events: Window  # ticks: posted to every message sent
    views: Window  # events no run listens to: posted to the outbox empty
    database_bytes: int  # Postgres growth over the phase
    history_bytes: int  # dev server SQLite growth over the phase
    problems: list[str]
    # CPU seconds of each relay process over the phase: whether the relays shared the work
    relay_cpu: list[float] = field(default_factory=list)


@contextlib.contextmanager
def relay_process(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``journeys relay`` in its own process; returns once it listens for notifications."""
    command = [sys.executable, "-m", "temporal_journeys.cli", "relay"]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        for line in process.stderr:
            sys.stderr.write(line)
            if "listening for the API's notifications" in line:
                break
        else:
            raise RuntimeError("the relay did not start")
        # Its log drained from then on, so a full pipe never blocks it.
        threading.Thread(target=_drain, args=(process.stderr,), daemon=True).start()
        yield process
    finally:
        process.terminate()  # SIGTERM: it ends after its pass, its contacts' locks released
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _drain(stream: IO[str]) -> None:
    for line in stream:
        sys.stderr.write(line)


@contextlib.contextmanager
def processes(env: dict[str, str], layout: Layout, server_pid: int) -> Iterator[tuple]:
    """The phase's processes; yields the API URLs and the pids of each component."""
    with contextlib.ExitStack() as started:
        workers = [started.enter_context(stack.worker(env)).pid for _ in range(layout.workers)]
        relays = [started.enter_context(relay_process(env)).pid for _ in range(layout.relays)]
        serving = {**env, "JOURNEYS_RELAY": "false"}
        apis = [started.enter_context(stack.api_process(serving)) for _ in range(layout.apis)]
        pids = {
            "API": [process.pid for _, process in apis],
            "relay": relays,
            "worker": workers,
            "Temporal server": [server_pid],
        }
        yield [url for url, _ in apis], pids


async def phase(
    number: int,
    layout: Layout,
    args: argparse.Namespace,
    env: dict[str, str],
    db: Database,
    url: str,
    server: stack.DevServer,
    headers: dict[str, str],
) -> Result:
    prefix = f"so{number}-"
    contacts = [f"{prefix}{n:06}" for n in range(args.contacts)]
    fixtures.contacts(db, contacts)
    groups = [contacts[i : i + args.group] for i in range(0, len(contacts), args.group)]
    deadline = max(900.0, args.contacts * args.ticks / 2)
    print(f"phase {number}: {layout}; load average {os.getloadavg()[0]:.1f}", flush=True)
    sizes = database_bytes(db), file_bytes(server.file)
    with (
        PostgresBackends(url) as postgres,
        processes(env, layout, server.pid) as (urls, pids),
    ):
        measured = Processes(pids, postgres)
        relays_before = [stack.cpu_seconds(pid) for pid in pids["relay"]]

        async def window(rounds: list[Callable[[str], dict]], done: Callable[[], bool]) -> Window:
            before, began = measured.cpu(), time.perf_counter()
            await post_rounds(urls, headers, groups, rounds, args.concurrency)
            await fixtures.until(done, "the phase's work", deadline, 0.25)
            seconds = time.perf_counter() - began
            return Window(len(contacts) * len(rounds), seconds, spent(before, measured.cpu()))

        enrolment = await window(
            [track("so.start", start_id)], lambda: waiting(db, prefix) == len(contacts)
        )
        ticks = [
            track("so.tick", lambda contact, n=n: tick_id(contact, n))
            for n in range(1, args.ticks + 1)
        ]
        events = await window(ticks, lambda: sent(db, prefix) == len(contacts) * args.ticks)
        views = [
            track("so.view", lambda contact, n=n: f"{contact}.v{n:04}")
            for n in range(1, args.views + 1)
        ]
        unheard = await window(views, lambda: _outbox_left(db, prefix) == 0)
        await post_rounds(urls, headers, groups, [track("so.stop", stop_id)], args.concurrency)
        await fixtures.until(
            lambda: ended(db, prefix) == len(contacts), "every run to end", deadline, 0.25
        )
        client = await Client.connect(server.address)
        relay_cpu = [
            stack.cpu_seconds(pid) - before
            for pid, before in zip(pids["relay"], relays_before, strict=True)
        ]
        problems = check(contacts, args.ticks, await observe(db, client, prefix, contacts))
    result = Result(
        layout=layout,
        ticks=args.ticks,
        enrolment=enrolment,
        events=events,
        views=unheard,
        database_bytes=database_bytes(db) - sizes[0],
        history_bytes=file_bytes(server.file) - sizes[1],
        problems=problems,
        relay_cpu=relay_cpu,
    )
    report(result)
    return result


def database_bytes(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(text("SELECT pg_database_size(current_database())")) or 0


def file_bytes(path: Path) -> int:
    """The dev server's SQLite file with its WAL: what Temporal keeps of the histories."""
    files = [path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")]
    return sum(f.stat().st_size for f in files if f.exists())


def row_sizes(db: Database) -> str:
    """Bytes per row of the tables the runs fill, indexes and TOAST included."""
    shown = []
    with db.transaction() as session:
        for table in ("events", "messages", "step_events", "enrollments", "contacts"):
            rows = session.scalar(text(f"SELECT count(*) FROM {table}")) or 0
            # With its partitions (``events``, by month): the parent itself holds nothing.
            size = (
                session.scalar(
                    text(
                        "SELECT sum(pg_total_relation_size(relid)) "
                        f"FROM pg_partition_tree('{table}')"
                    )
                )
                or 0
            )
            shown.append(f"{table} {size / max(rows, 1):,.0f} B ({rows:,} rows)")
    return ", ".join(shown)


def report(result: Result) -> None:
    enrolment, events, views = result.enrolment, result.events, result.views
    contacts = enrolment.count
    print(
        f"  enrolment: {contacts:,} contacts started (so.start through /v1/batch, relay, start) "
        f"and waiting in {enrolment.seconds:.1f} s: {enrolment.rate:.1f} contacts/s",
        flush=True,
    )
    print(f"  CPU ms per contact entered: {per(enrolment.cpu, contacts, 1000)}")
    print(
        f"  events: {events.count:,} ticks accepted, routed, taken and each answered by a sent "
        f"email in {events.seconds:.1f} s: {events.rate:.1f} events/s, {events.rate:.1f} "
        f"messages/s"
    )
    print(f"  CPU s per 1,000 events: {per(events.cpu, events.count, 1000)}")
    print(
        f"  events no run listens to: {views.count:,} accepted and routed (no signal) in "
        f"{views.seconds:.1f} s: {views.rate:.1f} events/s"
    )
    print(f"  CPU s per 1,000 of them: {per(views.cpu, views.count, 1000)}")
    posted_events = contacts * (result.ticks + 2) + views.count
    print(
        f"  storage growth: Postgres {result.database_bytes / 2**20:.1f} MiB "
        f"({result.database_bytes / contacts / 1024:.1f} KiB per contact, "
        f"{result.database_bytes / posted_events:,.0f} B per event posted, messages and traces "
        f"included); dev server SQLite {result.history_bytes / 2**20:.1f} MiB "
        f"({result.history_bytes / contacts / 1024:.1f} KiB per run of {result.ticks + 2} "
        f"signals and {result.ticks} sends)"
    )
    shares = ", ".join(f"{seconds:.1f}" for seconds in result.relay_cpu)
    print(f"  CPU s of each relay process over the phase: {shares}")
    if result.problems:
        print(f"  checks FAILED ({len(result.problems)} problems), the first ones:")
        for problem in result.problems[:20]:
            print(f"    {problem}")
    else:
        print(
            f"  checks passed: {contacts:,} runs each signalled once per event in the order "
            f"posted ({result.ticks + 2} each), every tick taken once in order with one send "
            f"after it, {events.count:,} messages each sent once, every run exited, outbox empty",
            flush=True,
        )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=400, help="per phase")
    parser.add_argument("--ticks", type=int, default=10, help="events per contact after start")
    parser.add_argument(
        "--views", type=int, default=10, help="events per contact no run listens to"
    )
    parser.add_argument("--group", type=int, default=20, help="contacts per /v1/batch")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at once")
    parser.add_argument("--rounds", type=int, default=1, help="pairs of phases, mirrored")
    parser.add_argument("--quick", action="store_true", help="60 contacts, 5 ticks, 5 views")
    args = parser.parse_args(argv)
    if args.quick:
        args.contacts, args.ticks, args.views = 60, 5, 5
    return args


async def run(args: argparse.Namespace, layouts: tuple[Layout, ...] = PHASES) -> list[Result]:
    """Each layout in turn on one dev server and one fresh database; its result printed."""
    with stack.database() as url, stack.dev_server() as server:
        db = Database(url)
        fixtures.journey(db, JOURNEY)
        headers = fixtures.admin_key(db)
        env = stack.settings_env(url, server.address, QUEUE)
        # Signals are read back as plain JSON, and run ids name the contact: no codec here.
        env.pop("JOURNEYS_ENCRYPTION_KEYS", None)
        try:
            results = [
                await phase(number, layout, args, env, db, url, server, headers)
                for number, layout in enumerate(layouts, 1)
            ]
            print(f"rows: {row_sizes(db)}")
        finally:
            db.dispose()
    return results


def order(rounds: int) -> tuple[Layout, ...]:
    """The phases of every round, mirrored from one round to the next (1, 2, then 2, 1) so a
    drift of the shared machine falls on both layouts."""
    return tuple(
        layout for r in range(rounds) for layout in (PHASES if r % 2 == 0 else PHASES[::-1])
    )


def ratios(results: list[Result]) -> list[tuple[float, float, float]]:
    """Per round, phase 2 against phase 1: events/s, contacts entered/s, views/s."""
    found = []
    for start in range(0, len(results), 2):
        pair = sorted(results[start : start + 2], key=lambda r: PHASES.index(r.layout))
        one, two = pair
        found.append(
            (
                two.events.rate / one.events.rate,
                two.enrolment.rate / one.enrolment.rate,
                two.views.rate / one.views.rate,
            )
        )
    return found


async def main() -> None:
    args = parse_args()
    print(
        f"{args.contacts:,} contacts per phase, {args.ticks} ticks and {args.views} views each "
        f"(batches of {args.group}, {args.concurrency} requests at once), {args.rounds} round(s); "
        f"{os.cpu_count()} cores",
        flush=True,
    )
    results = await run(args, order(args.rounds))
    found = ratios(results)
    for number, (events, enrolled, views) in enumerate(found, 1):
        print(
            f"round {number}, {PHASES[1]} against {PHASES[0]}: events/s {events:.2f}, "
            f"messages/s {events:.2f}, contacts entered/s {enrolled:.2f}, events no run "
            f"listens to/s {views:.2f}"
        )
    if len(found) > 1:
        medians = [statistics.median(column) for column in zip(*found, strict=True)]
        print(
            f"median of {len(found)} rounds: events/s {medians[0]:.2f}, contacts entered/s "
            f"{medians[1]:.2f}, events no run listens to/s {medians[2]:.2f}"
        )
    if any(result.problems for result in results):
        raise SystemExit(1)


if __name__ == "__main__":
    asyncio.run(main())
