"""Segments on Postgres: a full recompute of a window segment, and what 10 segments cost ingest.

    .venv/bin/python -m bench.segments [--quick] [--contacts 100000] [--events 1000000]

1. Fills a fresh database with contacts (traits, tags, scores) and events spread over the last
   year, in bulk SQL. Times a full recompute of the win-back segment (`no-purchase-90d`: bought
   before, nothing in 90 days) the way its schedule runs it (`store/segments.py` `recompute`,
   one transaction): the first one, which adds every member and records their
   `segment.entered` events, then one a week later on the clock (time alone moves people in).
   Goal: 60 s or less for 100,000 contacts and 1,000,000 events.
2. Starts uvicorn (relay off: ingestion alone) and posts the same kind of traffic (tracks of the
   events the segments count, and identifies changing traits) with no segment defined and with
   10 defined, in 8 alternating rounds in the same run (a round's rate drifts by a fifth with
   the shared machine, so more alternations than 4 steady the ratio); prints calls/s of each
   and the ratio. The bodies are encoded before the clock starts and posted by `bench.http_load`
   (the clients share the 2 cores with the API and Postgres, and theirs is not the CPU measured).
   The 10 are backfilled before their first round, as the backfill workflow leaves a new
   segment before live traffic reaches it: ingest then moves the contacts whose calls change
   what they are (without it, every contact's first evaluation entered every segment it
   matched, a transient that a deployment goes through once).
   Goal: 0.9 or more. Each round also prints the CPU the API process and Postgres (every
   backend on the machine) spent per batch of 100 calls: where the segments' cost lands.

`--quick` is 5,000 contacts, 50,000 events and 8 rounds of 2,000 calls: a check that it runs.
`--statements` adds, after the rounds, one round of each mode run in this process through the
ingest service (no HTTP, one batch at a time) with the time of each kind of statement per batch
of 100 calls: where the segments' share goes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, event, text

from bench import http_load, stack
from temporal_journeys.api.schemas import BatchBody
from temporal_journeys.api.services.ingest import ingest
from temporal_journeys.journeys.segments import Segment, in_dependency_order
from temporal_journeys.store import keys
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.store.models import SegmentMember, SegmentRow
from tests.support.postgres import DEFAULT_URL, fresh_database

NAMES = ("order.completed", "Product Viewed", "email.opened", "page")
CITIES = ("Paris", "Lyon", "Montreuil", "Nantes", "Lille", "Vincennes")

WINDOW_SEGMENT = Segment(
    key="no-purchase-90d",
    name="Bought nothing in 90 days",
    condition={
        "all": [
            {"event": "order.completed", "min": 1},
            {"event": "order.completed", "within": "P90D", "max": 0},
        ]
    },
)
TEN: list[dict[str, Any]] = [
    {"key": "no-purchase-90d", "condition": WINDOW_SEGMENT.model_dump(mode="json")["condition"]},
    {
        "key": "vip",
        "condition": {
            "any": [
                {"tag": "vip"},
                {"score": "lifetime_value", "gte": 1000},
                {
                    "event": "order.completed",
                    "within": "P365D",
                    "min": 5,
                    "where": [{"property": "total", "gte": 100}],
                },
            ]
        },
    },
    {
        "key": "paris-runners",
        "condition": {
            "all": [
                {"trait": "age", "type": "number", "gte": 18},
                {"trait": "city", "in": ["Paris", "Montreuil", "Vincennes"]},
                {"trait": "interests", "contains": "running"},
                {"last_event": "email.opened", "within": "P30D"},
            ]
        },
    },
    {"key": "adults", "condition": {"trait": "age", "gte": 18}},
    {"key": "lyon", "condition": {"trait": "city", "eq": "Lyon"}},
    {"key": "tagged-vip", "condition": {"tag": "vip"}},
    {"key": "leads", "condition": {"score": "lead", "gte": 50}},
    {
        "key": "browsers",
        "condition": {"event": "Product Viewed", "within": "P7D", "min": 3},
    },
    {
        "key": "big-spenders",
        "condition": {
            "event": "order.completed",
            "min": 2,
            "where": [{"property": "total", "gte": 100}],
        },
    },
    {
        "key": "vip-paris-runners",
        "condition": {"all": [{"segment": "vip"}, {"segment": "paris-runners"}]},
    },
]


def fill(db: Database, contacts: int, events: int) -> float:
    """Contacts and events in bulk (generate_series): the benchmark's data, not its subject."""
    started = time.perf_counter()
    with db.transaction() as session:
        session.execute(
            text(
                """
                INSERT INTO contacts (id, email, timezone, traits, tags, scores, unsubscribed,
                                      created_at, updated_at)
                SELECT 'user-' || n, 'user-' || n || '@example.com', 'UTC',
                       jsonb_build_object('age', n % 70 + 10,
                                          'city', (ARRAY['Paris','Lyon','Montreuil','Nantes',
                                                         'Lille','Vincennes'])[n % 6 + 1],
                                          'interests', CASE WHEN n % 3 = 0
                                                            THEN '["running","cinema"]'::jsonb
                                                            ELSE '["chess"]'::jsonb END),
                       CASE WHEN n % 50 = 0 THEN '["vip"]'::jsonb ELSE '[]'::jsonb END,
                       jsonb_build_object('lead', n % 100, 'lifetime_value', n % 1500),
                       '[]'::jsonb, now(), now()
                FROM generate_series(1::bigint, :contacts) AS n
                """
            ),
            {"contacts": contacts},
        )
        session.execute(
            text(
                """
                INSERT INTO events (message_id, contact_id, name, properties, timestamp,
                                    received_at)
                SELECT 'bench-' || n,
                       'user-' || (1 + (hashtext('c' || n) & 2147483647) % :contacts),
                       CASE WHEN n % 20 < 2 THEN 'order.completed'
                            WHEN n % 20 < 12 THEN 'Product Viewed'
                            WHEN n % 20 < 17 THEN 'email.opened'
                            ELSE 'page' END,
                       jsonb_build_object('total', n % 300),
                       now() - make_interval(
                           secs => (hashtext('t' || n) & 2147483647) % (365 * 86400)),
                       now()
                FROM generate_series(1::bigint, :events) AS n
                """
            ),
            {"contacts": contacts, "events": events},
        )
        session.execute(text("ANALYZE contacts"))
        session.execute(text("ANALYZE events"))
    return time.perf_counter() - started


def recompute(db: Database, now: datetime) -> tuple[float, int, int]:
    started = time.perf_counter()
    with db.transaction() as session:
        found = segments_store.recompute(session, WINDOW_SEGMENT.key, now)
    changes = found[WINDOW_SEGMENT.key]
    return time.perf_counter() - started, len(changes.entered), len(changes.exited)


def define(db: Database, documents: list[dict[str, Any]]) -> None:
    """Exactly these segments defined. Members are left as they are: a segment defined again
    keeps those of its backfill (``backfill``), as a deployment's do between ingests."""
    with db.transaction() as session:
        session.execute(delete(SegmentRow))
        for document in documents:
            segments_store.put(
                session,
                Segment(name=document["key"], **document),  # type: ignore[arg-type]
            )


def backfill(db: Database, now: datetime) -> float:
    """Every defined segment computed over every contact, in dependency order, as the backfill
    workflow leaves them before live traffic; returns the seconds it took."""
    started = time.perf_counter()
    with db.transaction() as session:
        session.execute(delete(SegmentMember))
        segments = segments_store.definitions(session)
        for segment in in_dependency_order(segments.values()):
            segments_store.apply(session, segment, now)
    return time.perf_counter() - started


def traffic(calls: int, contacts: int, seed: int) -> list[list[dict[str, Any]]]:
    """Batches of 100: three tracks of what the segments count for one identify."""
    rng = random.Random(seed)
    now = datetime.now(UTC).isoformat()
    out = []
    for n in range(calls):
        user = f"user-{rng.randint(1, contacts)}"
        if n % 4 == 3:
            call = {
                "type": "identify",
                "userId": user,
                "traits": {"city": rng.choice(CITIES), "age": rng.randint(10, 80)},
            }
        else:
            call = {
                "type": "track",
                "userId": user,
                "event": rng.choice(NAMES[:3]),
                "properties": {"total": rng.randint(1, 300)},
            }
        out.append({**call, "messageId": str(uuid.uuid4()), "timestamp": now})
    return [out[i : i + 100] for i in range(0, len(out), 100)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 contacts, 50,000 events.")
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--calls", type=int, default=20_000, help="Calls per ingest round.")
    parser.add_argument("--rounds", type=int, default=8, help="Ingest rounds (even: alternating).")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument(
        "--statements", action="store_true", help="Time each kind of statement per batch."
    )
    parser.add_argument(
        "--server", default=os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)
    )
    args = parser.parse_args()
    if args.quick:
        args.contacts, args.events, args.calls = 5_000, 50_000, 2_000
    with fresh_database(args.server) as url:
        upgrade(url)
        db = Database(url)
        filled = fill(db, args.contacts, args.events)
        print(f"data: {args.contacts:,} contacts, {args.events:,} events ({filled:.1f} s to fill)")

        define(db, [{"key": WINDOW_SEGMENT.key, "condition": TEN[0]["condition"]}])
        now = datetime.now(UTC)
        first, entered, _ = recompute(db, now)
        later, moved_in, moved_out = recompute(db, now + timedelta(days=7))
        print(
            f"full recompute of {WINDOW_SEGMENT.key}: {first:.2f} s the first time "
            f"({entered:,} entered, their events recorded); {later:.2f} s a week later "
            f"({moved_in:,} entered, {moved_out:,} left)"
        )
        print(f"goal <= 60 s: {'met' if max(first, later) <= 60 else 'NOT met'}")

        with db.transaction() as session:
            key = keys.create(session, "bench", "track")
        rates = ingest_rounds(url, key, db, args)
        if args.statements:
            for mode in ("none", "ten"):
                statement_times(db, mode, args)
        db.dispose()
    none, ten = rates["none"], rates["ten"]
    print(f"ingest, no segment: {none:,.0f} calls/s; 10 segments: {ten:,.0f} calls/s")
    verdict = "met" if ten / none >= 0.9 else "NOT met"
    print(f"ratio ten/none: {ten / none:.2f}; goal >= 0.9: {verdict}")


def ingest_rounds(url: str, key: str, db: Database, args: argparse.Namespace) -> dict[str, float]:
    # Relay off and no Temporal: ingestion alone.
    env = stack.settings_env(url, "127.0.0.1:1", "unused", relay="false")
    seconds = {"none": 0.0, "ten": 0.0}
    calls = {"none": 0, "ten": 0}
    cpu = {"none": [0.0, 0.0], "ten": [0.0, 0.0]}  # API, Postgres
    with stack.api_process(env) as (api_url, api):
        for round_ in range(args.rounds):
            mode = "none" if round_ % 2 == 0 else "ten"
            define(db, [] if mode == "none" else TEN)
            if mode == "ten" and round_ == 1:
                # Ingest then moves contacts whose calls change what they are, not everyone
                # evaluated for the first time (each would enter the segments it matches).
                took = backfill(db, datetime.now(UTC))
                print(
                    f"  backfill of the 10 segments before the first round with them: {took:.1f} s"
                )
            work = traffic(args.calls, args.contacts, seed=round_)
            # Encoded before the clock starts: the clients' work is not what is measured.
            bodies = [json.dumps({"batch": batch}).encode() for batch in work]
            api_before, postgres_before = stack.cpu_seconds(api.pid), stack.postgres_cpu_seconds()
            took = asyncio.run(
                http_load.post_all(api_url, "/v1/batch", key, bodies, args.concurrency)
            )
            spent = (
                stack.cpu_seconds(api.pid) - api_before,
                stack.postgres_cpu_seconds() - postgres_before,
            )
            seconds[mode] += took
            calls[mode] += args.calls
            cpu[mode] = [total + more for total, more in zip(cpu[mode], spent, strict=True)]
            print(
                f"  round {round_ + 1} ({mode}): {args.calls / took:,.0f} calls/s; CPU per "
                f"batch of 100: API {1e5 * spent[0] / args.calls:.1f} ms, "
                f"Postgres {1e5 * spent[1] / args.calls:.1f} ms"
            )
    for mode, (api_cpu, postgres_cpu) in cpu.items():
        print(
            f"CPU per batch of 100 calls, {mode}: API {1e5 * api_cpu / calls[mode]:.1f} ms, "
            f"Postgres {1e5 * postgres_cpu / calls[mode]:.1f} ms"
        )
    return {mode: calls[mode] / seconds[mode] for mode in seconds}


def statement_times(db: Database, mode: str, args: argparse.Namespace) -> None:
    """One round of ``mode`` through the ingest service in this process, a batch at a time,
    with the time the driver spent on each kind of statement (its first 60 characters)."""
    spent: dict[str, list[float]] = {}
    began: list[float] = []

    def before(*_: Any) -> None:
        began.append(time.perf_counter())

    def after(_connection: Any, _cursor: Any, statement: str, *_: Any) -> None:
        kind = " ".join(statement.split())[:60]
        spent.setdefault(kind, []).append(time.perf_counter() - began.pop())

    define(db, [] if mode == "none" else TEN)
    # Traffic of its own: identifies replayed would change no trait, and write nothing.
    work = traffic(args.calls, args.contacts, seed=100 if mode == "none" else 101)
    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    started = time.perf_counter()
    try:
        for batch in work:
            calls = BatchBody.model_validate({"batch": batch}).batch
            with db.transaction() as session:
                ingest(session, list(calls), ("batch",))
    finally:
        event.remove(db.engine, "before_cursor_execute", before)
        event.remove(db.engine, "after_cursor_execute", after)
    per_batch = 1000 * (time.perf_counter() - started) / len(work)
    in_sql = 1000 * sum(sum(times) for times in spent.values()) / len(work)
    print(f"  {mode}, in process: {per_batch:.1f} ms per batch of 100 calls, {in_sql:.1f} in SQL")
    for kind, times in sorted(spent.items(), key=lambda item: -sum(item[1]))[:8]:
        share = 1000 * sum(times) / len(work)
        print(f"    {share:5.2f} ms  x{len(times) / len(work):.2f}  {kind}")


if __name__ == "__main__":
    main()
