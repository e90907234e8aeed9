"""Membership kept up to date by the ingest (``segments.react``): what it costs in statements,
and that it agrees with the set-based ``apply`` for every kind of condition, on both databases.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.exc import OperationalError

from temporal_journeys.api.schemas import BatchBody
from temporal_journeys.api.services.ingest import ingest
from temporal_journeys.journeys.segments import SEGMENT_ENTERED, SEGMENT_EXITED, Segment
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Event, OutboxEntry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# Two levels: ``adult-buyers`` reads the members the first level writes.
SEGMENTS = [
    Segment(key="adults", name="Adults", condition={"trait": "age", "gte": 18}),
    Segment(key="buyers", name="Buyers", condition={"event": "order.completed", "min": 1}),
    Segment(
        key="big-buyers",
        name="Big buyers",
        condition={
            "event": "order.completed",
            "within": "P30D",
            "min": 2,
            "where": [{"property": "total", "gte": 100}],
        },
    ),
    Segment(key="vip", name="VIP", condition={"tag": "vip"}),
    Segment(
        key="adult-buyers",
        name="Adult buyers",
        condition={"all": [{"segment": "adults"}, {"segment": "buyers"}]},
    ),
]


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)


def _calls(count: int, seed: int) -> list[Any]:
    """Half identifies moving contacts across the age of 18, half tracks of counted orders."""
    rng = random.Random(seed)
    calls: list[dict[str, Any]] = []
    for n in range(count):
        user = f"user-{seed}-{n}"
        if n % 2:
            calls.append(
                {"type": "identify", "userId": user, "traits": {"age": rng.randint(10, 80)}}
            )
        else:
            total = rng.randint(1, 300)
            calls.append(
                {
                    "type": "track",
                    "userId": user,
                    "event": "order.completed",
                    "properties": {"total": total},
                }
            )
    for n, call in enumerate(calls):
        call["messageId"] = f"m-{seed}-{n}"
        call["timestamp"] = NOW.isoformat()
    return list(BatchBody.model_validate({"batch": calls}).batch)


def _define(db: Database, segments: list[Segment]) -> None:
    with db.transaction() as session:
        for segment in segments:
            segments_store.put(session, segment)


def _segment_statements(seen: list[str]) -> list[str]:
    """Statements of the segments' part of an ingest (the rest is there without segments)."""
    return [s for s in seen if "segment_members" in s or "ON CONFLICT (id) DO UPDATE" in s]


def _plan_mode_statements(seen: list[str]) -> list[str]:
    return [s for s in seen if "set_config('plan_cache_mode'" in s]


def _everyone(db: Database, contacts: list[str]) -> dict[str, list[str]]:
    with db.transaction() as session:
        return {c: segments_store.keys_of(session, c) for c in contacts}


def test_a_batch_runs_as_many_segment_statements_whatever_its_size(db: Database):
    """6 calls or 200: the same statements, one per level of segments on Postgres (plus the one
    that creates and locks the contacts); and what they decide is what a recompute decides."""

    def run(seed: int, size: int) -> tuple[int, int]:
        with statements(db) as seen, db.transaction() as session:
            ingest(session, _calls(size, seed), ("batch",), now=NOW)
        return len(seen), len(_segment_statements(seen))

    without = run(0, 200)
    _define(db, SEGMENTS)
    # The first ingest after a change reads the definitions (later ones their digests alone).
    first = run(3, 6)
    counts = {size: run(seed, size) for seed, size in ((1, 6), (2, 200))}
    assert counts[6][1] == counts[200][1]
    if db.engine.dialect.name == "postgresql":
        assert first[0] == counts[6][0] + 1
        # The whole ingest too (SQLite's writes some rows one by one). What segments add: one
        # statement per level of segments concerned (two here), with the members and the
        # events they wrote, and the two that set the plan cache mode around them. The hold
        # (create and lock the contacts) stands in for the INSERT that creates identified
        # contacts without segments.
        assert counts[6][0] == counts[200][0]
        assert counts[200][1] == 3
        assert counts[200][0] - without[0] == 2 + 2
    contacts = [
        f"user-{seed}-{n}" for seed, size in ((3, 6), (1, 6), (2, 200)) for n in range(size)
    ]
    live = _everyone(db, contacts)
    # The same contacts, recomputed set-based from scratch, are in the same segments.
    with db.transaction() as session:
        for segment in SEGMENTS:
            segments_store.recompute(session, segment.key, NOW)
    assert _everyone(db, contacts) == live
    assert sum("adult-buyers" in keys for keys in live.values()) == 0  # none did both
    assert sum("adults" in keys for keys in live.values()) > 50


def test_the_second_level_follows_and_events_are_stored_and_queued_in_order(db: Database):
    _define(db, SEGMENTS)
    calls = list(
        BatchBody.model_validate(
            {
                "batch": [
                    {"type": "identify", "userId": "ada", "traits": {"age": 36}, "messageId": "a1"},
                    {
                        "type": "track",
                        "userId": "ada",
                        "event": "order.completed",
                        "properties": {"total": 120},
                        "messageId": "a2",
                    },
                    {"type": "identify", "userId": "bob", "traits": {"age": 12}, "messageId": "b1"},
                ]
            }
        ).batch
    )
    with db.transaction() as session:
        ingest(session, calls, ("batch",), now=NOW)
    assert _everyone(db, ["ada", "bob"]) == {"ada": ["adult-buyers", "adults", "buyers"], "bob": []}
    # Ada turns 12 again: she leaves adults, then adult-buyers, in the same transaction.
    later = list(
        BatchBody.model_validate(
            {
                "batch": [
                    {"type": "identify", "userId": "ada", "traits": {"age": 12}, "messageId": "a3"}
                ]
            }
        ).batch
    )
    with db.transaction() as session:
        ingest(session, later, ("batch",), now=NOW + timedelta(minutes=1))
    assert _everyone(db, ["ada"]) == {"ada": ["buyers"]}
    with db.transaction() as session:
        rows = session.execute(
            select(Event.name, Event.properties, Event.message_id, OutboxEntry.id)
            .join(OutboxEntry, OutboxEntry.event_id == Event.id)
            .where(Event.contact_id == "ada", Event.name.in_([SEGMENT_ENTERED, SEGMENT_EXITED]))
            .order_by(OutboxEntry.id)
        ).all()
    # Queued for routing in the order of the levels: adults and buyers before adult-buyers.
    assert [(name, props["segment"]) for name, props, _, _ in rows] == [
        (SEGMENT_ENTERED, "adults"),
        (SEGMENT_ENTERED, "buyers"),
        (SEGMENT_ENTERED, "adult-buyers"),
        (SEGMENT_EXITED, "adults"),
        (SEGMENT_EXITED, "adult-buyers"),
    ]
    assert all(m.startswith(f"segment:{p['segment']}:{n}:ada:") for n, p, m, _ in rows)


# Every kind of condition, with values that need quoting in SQL.
CONDITIONS: list[dict[str, Any]] = [
    {"trait": "age", "gte": 18},
    {"trait": "age", "type": "number", "lt": 18},
    {"trait": "city", "in": ["Paris", "Nice"]},
    {"trait": "city", "ne": "Paris"},
    {"trait": "motto", "eq": "it's 100% \\ fine"},
    {"trait": "motto", "contains": "100%"},
    {"trait": "interests", "contains": "running"},
    {"trait": "plan", "exists": True},
    {"trait": "plan", "exists": False},
    {"trait": "vip", "eq": True},
    {"trait": "email", "exists": True},
    {"trait": "email", "contains": "example"},
    {"trait": "birthday", "type": "date", "before": "2000-01-01"},
    {"trait": "birthday", "type": "date", "within": "P30D"},
    {"tag": "o'brien"},
    {"field": "tags", "contains": "vip"},
    {"score": "lead", "gte": 50},
    {"score": "lead", "in": [5, 60]},
    {"field": "contact.city", "eq": "Lyon"},
    {"field": "scores.lead", "lt": 10},
    {"event": "order.completed", "within": "P90D"},
    {"event": "order.completed", "within": "P90D", "max": 0},
    {"event": "order.completed", "min": 2},
    {"event": "order.completed", "where": [{"property": "note", "eq": "50% off 'now'"}]},
    {"event": "order.completed", "where": [{"property": "total", "gte": 200}]},
    {"last_event": "order.completed", "before": "P90D"},
    {"last_event": "order.completed", "within": "P30D"},
    {"not": {"trait": "age", "gte": 18}},
    {"any": [{"tag": "vip"}, {"trait": "age", "lt": 18}]},
    {"all": [{"trait": "city", "eq": "Paris"}, {"segment": "base"}]},
]


@pytest.fixture
def people(db: Database) -> Database:
    profiles = {
        "ada": (
            {
                "age": 36,
                "city": "Paris",
                "interests": ["running", "yoga"],
                "vip": True,
                "birthday": (NOW - timedelta(days=10)).date().isoformat(),
                "plan": "pro",
                "motto": "it's 100% \\ fine",
            },
            ["vip", "o'brien"],
            {"lead": 60},
            "ada@example.com",
        ),
        "bob": (
            {"age": "unknown", "city": "Lyon", "birthday": "1990-02-03", "motto": "no"},
            [],
            {"lead": 5},
            None,
        ),
        "cy": ({"age": 17, "city": "Paris"}, [], {}, None),
    }
    with db.transaction() as session:
        for contact_id, (traits, tags, scores, email) in profiles.items():
            contacts_store.upsert(session, contact_id, traits)
            contact = session.get(Contact, contact_id)
            contact.tags, contact.scores, contact.email = tags, scores, email
        orders = [
            ("ada", 10, {"total": 120, "note": "50% off 'now'"}),
            ("ada", 200, {"total": 20}),
            ("bob", 120, {"total": 300}),
        ]
        for contact_id, days, properties in orders:
            events_store.record(
                session,
                message_id=f"{contact_id}-{days}",
                contact_id=contact_id,
                name="order.completed",
                properties=properties,
                timestamp=NOW - timedelta(days=days),
            )
    base = Segment(key="base", name="base", condition={"trait": "city", "exists": True})
    _define(db, [base])
    with db.transaction() as session:
        segments_store.apply(session, base, NOW)
    return db


@pytest.mark.parametrize("condition", CONDITIONS)
def test_react_decides_as_apply_for_every_kind_of_condition(
    people: Database, condition: dict[str, Any]
):
    """The same condition evaluated by the ingest's statement (for the contacts concerned) and
    by the set-based one (for everyone), in two segments: the same members."""
    live = Segment(key="live", name="live", condition=condition)
    reference = Segment(key="reference", name="reference", condition=condition)
    _define(people, [live, reference])
    contacts = ["ada", "bob", "cy"]
    traits = {"age", "city", "interests", "plan", "vip", "email", "birthday", "motto"}
    with people.transaction() as session:
        segments_store.apply(session, reference, NOW)
        changes = segments_store.react(
            session,
            profile={c: traits for c in contacts},
            events=[(c, "order.completed") for c in contacts],
            state=contacts,
            now=NOW,
        )
        found = [c for c, _ in segments_store.members(session, "live", after=None, limit=10)]
        expected = [
            c for c, _ in segments_store.members(session, "reference", after=None, limit=10)
        ]
    assert found == expected
    # Only ``live`` moved anyone: ``reference`` and ``base`` were up to date.
    assert (sorted(changes.entered), changes.exited) == (expected, [])


@pytest.fixture
def postgres_db(own_postgres_url: str) -> Iterator[Database]:
    """Postgres only: SQLite writes one transaction at a time, so it has no row locks to see."""
    db = Database(own_postgres_url)
    yield db
    db.dispose()


def test_hold_creates_and_locks_the_contacts_without_writing_those_that_exist(
    postgres_db: Database,
):
    """One statement creates the missing contacts and locks the others (ON CONFLICT DO UPDATE
    with a WHERE that lets nothing be updated still locks the row it found)."""
    db = postgres_db
    _define(db, SEGMENTS)
    with db.transaction() as session:
        contacts_store.upsert(session, "ada", {"age": 30})
    with db.engine.connect() as other:
        before = other.execute(text("SELECT xmin::text FROM contacts WHERE id = 'ada'")).scalar()
    with db.transaction() as session:
        segments_store.hold_contacts(
            session, profile=["ada"], events=[("bob", "order.completed"), ("cy", "page")]
        )
        with db.engine.connect() as other:
            with pytest.raises(OperationalError, match="could not obtain lock"):
                other.execute(text("SELECT id FROM contacts WHERE id = 'ada' FOR UPDATE NOWAIT"))
            other.rollback()
            # Bob's row is new (held by the transaction that inserts it, seen at its commit);
            # a track of an event no segment counts holds nothing.
            found = other.execute(text("SELECT id FROM contacts WHERE id IN ('bob', 'cy')"))
            assert found.all() == []
            other.rollback()
    with db.engine.connect() as other:
        rows = other.execute(text("SELECT id, xmin::text FROM contacts ORDER BY id")).all()
    assert [row[0] for row in rows] == ["ada", "bob"]
    assert rows[0][1] == before  # ada's row was locked, not rewritten


def test_the_level_statements_are_planned_once_and_the_plan_mode_restored(
    postgres_db: Database,
):
    """Postgres re-planned each level statement at every ingest (its generic plan's estimate
    exceeded the custom ones'); ``react`` asks for the generic plan around the level
    statements alone and gives the transaction back the mode it had."""
    db = postgres_db
    _define(db, SEGMENTS)
    with db.engine.connect() as connection:
        # The pool's one connection here, so that its prepared statements are read below.
        connection.exec_driver_sql("SET plan_cache_mode = force_custom_plan")
        connection.commit()
    for seed in range(8):
        with statements(db) as seen, db.transaction() as session:
            ingest(session, _calls(20, 100 + seed), ("batch",), now=NOW)
            mode = session.connection().exec_driver_sql("SHOW plan_cache_mode").scalar()
            assert mode == "force_custom_plan"
        assert len(_plan_mode_statements(seen)) == 2
    with db.engine.connect() as connection:
        assert connection.exec_driver_sql("SHOW plan_cache_mode").scalar() == "force_custom_plan"
        plans = connection.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements"
            " WHERE strpos(statement, 'WITH concerned') > 0"
        ).all()
    # psycopg prepares a statement at its sixth run; from then on no level is planned anew.
    assert plans and all(generic > 0 and custom == 0 for generic, custom in plans)
