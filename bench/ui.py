"""The operator page's server time with many enrollments in the store.

    .venv/bin/python -m bench.ui [--enrollments 100000] [--quick] [--rounds 7]

Seeds a fresh Postgres database with set-based INSERTs (``INSERT ... SELECT`` over
``generate_series``, seconds for 100,000 enrollments): a journey with an A/B split and three
sends, one contact, one trigger event and one enrollment per contact, the funnel rows of ten
paths through the journey (three still running, at three steps, over the last 30 days; the
others done by an open, a purchase or the last email) and a message per send with a spread of
delivery outcomes. Then signs in to the API's app in process and times each page: the
``Server-Timing`` header (the route's own time: queries and template) and the time of the whole
request, median and worst of ``--rounds`` after one warm-up. The goal: each page under 200 ms
at 100,000 enrollments (docs/ui.md).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from sqlalchemy import text

from bench import fixtures, stack
from temporal_journeys.api.app import create_app
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database

KEY = "bench-ui"
GOAL_MS = 200.0
JOURNEY = {
    "key": KEY,
    "name": "Abandoned cart with a subject-line test",
    "trigger": {"event": "cart.abandoned", "correlate": "cart_id"},
    "goal": {"event": "order.completed"},
    "steps": [
        {"id": "wait-1h", "wait": "PT1H"},
        {
            "id": "subject-test",
            "split": {
                "variants": [
                    {"name": "a", "weight": 50, "next": "reminder-a"},
                    {"name": "b", "weight": 50, "next": "reminder-b"},
                ]
            },
        },
        {"id": "reminder-a", "send": {"channel": "email", "template": "bench"}, "next": "opened?"},
        {"id": "reminder-b", "send": {"channel": "email", "template": "bench"}},
        {
            "id": "opened?",
            "wait_for": {"event": "email.opened", "timeout": "P1D"},
            "on_timeout": "discount",
            "next": "done",
        },
        {"id": "discount", "send": {"channel": "email", "template": "bench"}},
        {"id": "wait-3d", "wait": "P3D"},
        {"id": "last-chance", "send": {"channel": "email", "template": "bench"}},
        {"id": "done", "exit": {}},
    ],
}
R = "R"  # the run's reminder: reminder-a or reminder-b, by its variant
TO_OPENED = [("wait-1h", "entered"), ("wait-1h", "waited"), ("subject-test", "entered")]
TO_OPENED += [("subject-test", "variant"), (R, "entered"), (R, "sent"), ("opened?", "entered")]
TO_WAIT = [*TO_OPENED, ("opened?", "timeout"), ("discount", "entered"), ("discount", "sent")]
TO_WAIT += [("wait-3d", "entered")]
OPENED = [*TO_OPENED, ("opened?", "event"), ("done", "entered")]
LAST = [*TO_WAIT, ("wait-3d", "waited"), ("last-chance", "entered"), ("last-chance", "sent")]
LAST += [("done", "entered")]
# Path n % 10 of enrollment n: (status, the step it is at, its funnel rows).
PATHS: list[tuple[str, str | None, list[tuple[str, str]]]] = [
    ("running", "wait-1h", [("wait-1h", "entered")]),
    ("running", "opened?", TO_OPENED),
    ("running", "wait-3d", TO_WAIT),
    ("completed", None, OPENED),
    ("completed", None, OPENED),
    ("completed", None, OPENED),
    ("converted", None, [*TO_WAIT, ("wait-3d", "converted")]),
    ("completed", None, LAST),
    ("completed", None, LAST),
    ("completed", None, LAST),
]
# The status of the messages of enrollment n, by n / 10 % 5 (apart from its path, n % 10):
# clicked, opened, delivered twice, sent (no receipt yet).
STATUSES = ("clicked", "opened", "delivered", "delivered", "sent")

SEED = [
    # The paths as a table: (path, seq, step, kind).
    "CREATE TEMPORARY TABLE bench_paths (path int, seq int, step text, kind text)",
    "INSERT INTO bench_paths VALUES {paths}",
    """INSERT INTO contacts (id, email, timezone, traits, tags, scores, unsubscribed,
        created_at, updated_at)
    SELECT 'c' || n, 'c' || n || '@example.com', 'UTC',
        json_build_object('first_name', 'Contact ' || n, 'plan', CASE WHEN n % 2 = 0
        THEN 'pro' ELSE 'free' END), '["shopper"]', json_build_object('engagement', n % 50),
        '[]', :now, :now
    FROM generate_series(1, :n) AS n""",
    """INSERT INTO events (message_id, contact_id, name, properties, timestamp, received_at)
    SELECT 'ev' || n, 'c' || n, 'cart.abandoned', json_build_object('cart_id', 'k' || n),
        :now - make_interval(mins => n % 43200), :now - make_interval(mins => n % 43200)
    FROM generate_series(1, :n) AS n""",
    """INSERT INTO enrollments (id, workflow_id, journey_key, version, contact_id, correlation,
        status, current_step, variant, converted, exit_reason, started_at, ended_at)
    SELECT 'e' || n, 'journey/{key}/c' || n || '/k' || n, '{key}', 1, 'c' || n, 'k' || n,
        p.status, p.step, CASE WHEN n % 2 = 0 THEN 'a' ELSE 'b' END, p.status = 'converted',
        NULL, :now - make_interval(mins => n % 43200),
        CASE WHEN p.status = 'running' THEN NULL
             ELSE :now - make_interval(mins => n % 43200) + interval '5 days' END
    FROM generate_series(1, :n) AS n
    JOIN (VALUES {statuses}) AS p (path, status, step) ON p.path = n % 10""",
    """INSERT INTO step_events (id, enrollment_id, journey_key, version, step_id, contact_id,
        kind, variant, detail, at)
    SELECT e.id || ':' || b.seq, e.id, e.journey_key, 1,
        CASE WHEN b.step = 'R' THEN 'reminder-' || e.variant ELSE b.step END, e.contact_id,
        b.kind, CASE WHEN b.seq < 3 THEN NULL ELSE e.variant END, NULL,
        e.started_at + make_interval(hours => b.seq * 4)
    FROM enrollments e
    JOIN bench_paths b ON b.path = CAST(substr(e.id, 2) AS int) % 10
    WHERE e.journey_key = '{key}'""",
    # (Rows before the split's own, seq 3, carry no variant: the run had none yet.)
    """INSERT INTO messages (id, idempotency_key, contact_id, journey_key, version, step_id,
        workflow_id, channel, template, provider, to_address, subject, body, html, headers,
        provider_message_id, status, status_history, error, test, created_at, updated_at,
        sent_at, variant)
    SELECT s.id, e.workflow_id || '/' || e.id || '/' || s.step_id, e.contact_id, e.journey_key,
        1, s.step_id, e.workflow_id, 'email', 'bench', 'sendgrid', e.contact_id ||
        '@example.com', 'Your cart misses you', 'Hello, your cart is waiting.',
        '<p>Hello, your cart is waiting.</p>', '{{"List-Unsubscribe": "<https://x/u>"}}',
        'sg-' || s.id, (ARRAY['{statuses_of_messages}'])[
            1 + CAST(substr(e.id, 2) AS int) / 10 % 5], '[]', NULL, false, s.at, s.at, s.at,
        s.variant
    FROM step_events s JOIN enrollments e ON e.id = s.enrollment_id
    WHERE s.journey_key = '{key}' AND s.kind = 'sent'""",
    # The funnel rows counted, as the runs' progress writes count them (store/enrollments.py),
    # over the same 16 slots.
    """INSERT INTO step_counters (journey_key, version, step_id, variant, kind, slot, count)
    SELECT journey_key, version, step_id, coalesce(variant, ''), kind,
        CAST(substr(enrollment_id, 2) AS int) % 16, count(*)
    FROM step_events WHERE journey_key = '{key}' AND step_id IS NOT NULL
    GROUP BY journey_key, version, step_id, coalesce(variant, ''), kind,
        CAST(substr(enrollment_id, 2) AS int) % 16""",
    # What the delivery reports proved of each message, as the webhooks would have set it.
    """UPDATE messages SET reached = CASE status WHEN 'clicked' THEN 7 WHEN 'opened' THEN 3
        WHEN 'delivered' THEN 1 ELSE 0 END WHERE journey_key = '{key}'""",
    # When each running contact entered its step, as the runs' progress writes keep it.
    """UPDATE enrollments SET step_since = s.at FROM step_events s
    WHERE s.enrollment_id = enrollments.id AND s.step_id = enrollments.current_step
        AND s.kind = 'entered' AND enrollments.status = 'running'
        AND enrollments.journey_key = '{key}'""",
    "ANALYZE",
]


def seed(db: Database, enrollments: int) -> float:
    """The rows, in one transaction; seconds taken."""
    started = time.perf_counter()
    fixtures.journey(db, JOURNEY)
    paths = ", ".join(
        f"({p}, {seq}, '{step}', '{kind}')"
        for p, (_, _, rows) in enumerate(PATHS)
        for seq, (step, kind) in enumerate(rows)
    )
    statuses = ", ".join(
        f"({p}, '{status}', " + (f"'{step}')" if step else "NULL)")
        for p, (status, step, _) in enumerate(PATHS)
    )
    values = {
        "paths": paths,
        "statuses": statuses,
        "key": KEY,
        "statuses_of_messages": "', '".join(STATUSES),
    }
    parameters = {"now": datetime.now(UTC), "n": enrollments}
    with db.engine.connect() as connection:
        for statement in SEED:
            sql = statement.format(**values)
            if sql == "ANALYZE":
                connection.commit()
                connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))
            else:
                connection.execute(text(sql), parameters)
    return time.perf_counter() - started


@dataclass
class Timing:
    page: str
    server_ms: list[float]
    request_ms: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.server_ms)

    @property
    def worst(self) -> float:
        return max(self.server_ms)


async def time_pages(db: Database, url: str, rounds: int) -> list[Timing]:
    # The bench's own key: sessions are signed with it (the app needs one to start).
    settings = Settings(database_url=url, secret_key=secrets.token_hex(16))
    app = create_app(settings, db=db, relay=False)
    with db.transaction() as session:
        admin = keys.create(session, "bench-ui", "admin")
    transport = httpx.ASGITransport(app=app)
    with db.transaction() as session:
        message_id = session.execute(
            text("SELECT id FROM messages WHERE contact_id = 'c13' LIMIT 1")
        ).scalar_one()
    pages = {
        "journeys": "/ui",
        "journey": f"/ui/journeys/{KEY}",
        "journey, a time range": f"/ui/journeys/{KEY}?from=2000-01-01T00:00",
        "stuck": f"/ui/journeys/{KEY}/stuck",
        "contact": "/ui/contacts/c13",
        "message": f"/ui/messages/{message_id}",
    }
    timings = []
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:
        signed = await http.post("/ui/login", data={"key": admin})
        assert signed.status_code == 303, signed.text
        for name, path in pages.items():
            timing = Timing(name, [], [])
            for round_ in range(rounds + 1):
                started = time.perf_counter()
                response = await http.get(path, headers={"Accept": "text/html"})
                elapsed = (time.perf_counter() - started) * 1000
                assert response.status_code == 200, (path, response.status_code, response.text)
                server = float(response.headers["server-timing"].split("dur=")[1])
                if round_:  # the first one warms the caches (parsed specs, templates)
                    timing.server_ms.append(server)
                    timing.request_ms.append(elapsed)
            timings.append(timing)
    return timings


def report(enrollments: int, seeded: float, timings: list[Timing]) -> str:
    lines = [
        f"{enrollments:,} enrollments seeded in {seeded:.1f} s",
        f"{'page':<24}{'server median':>15}{'server worst':>14}{'request median':>16}",
    ]
    for t in timings:
        flag = "" if t.median < GOAL_MS else f"  (over the {GOAL_MS:.0f} ms goal)"
        lines.append(
            f"{t.page:<24}{t.median:>12.1f} ms{t.worst:>11.1f} ms"
            f"{statistics.median(t.request_ms):>13.1f} ms{flag}"
        )
    return "\n".join(lines)


async def run(enrollments: int, rounds: int) -> list[Timing]:
    with stack.database() as url:
        db = Database(url)
        try:
            seeded = seed(db, enrollments)
            timings = await time_pages(db, url, rounds)
        finally:
            db.dispose()
    print(report(enrollments, seeded, timings))
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--enrollments", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="5,000 enrollments, 3 rounds")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    enrollments, rounds = (5_000, 3) if args.quick else (args.enrollments, args.rounds)
    asyncio.run(run(enrollments, rounds))


if __name__ == "__main__":
    main()
