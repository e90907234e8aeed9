"""Membership computed in SQL, the same on Postgres and SQLite: each kind of condition, the
set-based recompute, and the entered / exited events it queues for routing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from temporal_journeys.journeys.segments import Segment
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Event, OutboxEntry

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _contact(db: Database, contact_id: str, **fields: Any) -> None:
    with db.transaction() as session:
        contacts_store.upsert(session, contact_id, fields.pop("traits", {}))
        contact = session.get(Contact, contact_id)
        for name, value in fields.items():
            setattr(contact, name, value)


def _event(db: Database, contact_id: str, name: str, at: datetime, **properties: Any) -> None:
    with db.transaction() as session:
        events_store.record(
            session,
            message_id=f"{contact_id}-{name}-{at.isoformat()}-{len(properties)}-{properties}",
            contact_id=contact_id,
            name=name,
            properties=properties,
            timestamp=at,
        )


def _members(db: Database, condition: dict[str, Any], key: str = "s") -> list[str]:
    segment = Segment(key=key, name=key, condition=condition)
    with db.transaction() as session:
        segments_store.put(session, segment)
        segments_store.apply(session, segment, NOW)
        return [c for c, _ in segments_store.members(session, key, after=None, limit=100)]


@pytest.fixture
def people(db: Database) -> Database:
    _contact(
        db,
        "ada",
        traits={
            "age": 36,
            "city": "Paris",
            "interests": ["running", "yoga"],
            "vip": True,
            "birthday": "1990-12-10",
            "plan": "pro",
        },
        tags=["vip"],
        scores={"lead": 60},
        email="ada@example.com",
    )
    _contact(
        db,
        "bob",
        traits={
            "age": "unknown",
            "city": "Lyon",
            "interests": ["chess"],
            "vip": False,
            "birthday": "not a date",
        },
        tags=[],
        scores={"lead": 5},
    )
    _contact(db, "cy", traits={"age": 17, "city": "Paris"})
    _event(db, "ada", "order.completed", NOW - timedelta(days=10), total=120)
    _event(db, "ada", "order.completed", NOW - timedelta(days=200), total=20)
    _event(db, "bob", "order.completed", NOW - timedelta(days=120), total=300)
    return db


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"trait": "age", "gte": 18}, ["ada"]),  # "unknown" is no number: never an error
        ({"trait": "age", "lt": 18}, ["cy"]),
        ({"trait": "city", "in": ["Paris", "Nice"]}, ["ada", "cy"]),
        ({"trait": "city", "ne": "Paris"}, ["bob"]),
        ({"trait": "interests", "contains": "running"}, ["ada"]),
        ({"trait": "plan", "exists": True}, ["ada"]),
        ({"trait": "plan", "exists": False}, ["bob", "cy"]),
        ({"trait": "vip", "eq": True}, ["ada"]),
        ({"trait": "email", "exists": True}, ["ada"]),
        ({"trait": "birthday", "type": "date", "before": "2000-01-01"}, ["ada"]),
        ({"trait": "birthday", "type": "date", "after": "P3660D"}, []),
        ({"tag": "vip"}, ["ada"]),
        ({"field": "tags", "contains": "vip"}, ["ada"]),
        ({"score": "lead", "gte": 50}, ["ada"]),
        ({"score": "lead", "lt": 10}, ["bob", "cy"]),  # a missing score counts as 0
        ({"field": "contact.city", "eq": "Lyon"}, ["bob"]),
        ({"event": "order.completed", "within": "P90D"}, ["ada"]),
        ({"event": "order.completed", "within": "P90D", "max": 0}, ["bob", "cy"]),
        ({"event": "order.completed", "min": 2}, ["ada"]),
        ({"event": "order.completed", "where": [{"property": "total", "gte": 200}]}, ["bob"]),
        ({"last_event": "order.completed", "before": "P90D"}, ["bob"]),
        ({"last_event": "order.completed", "within": "P30D"}, ["ada"]),
        ({"not": {"tag": "vip"}}, ["bob", "cy"]),
        # A missing or mistyped trait is unknown, so "not" of a comparison on it holds.
        ({"not": {"trait": "age", "gte": 18}}, ["bob", "cy"]),
        ({"not": {"trait": "plan", "eq": "pro"}}, ["bob", "cy"]),
        ({"any": [{"tag": "vip"}, {"trait": "age", "lt": 18}]}, ["ada", "cy"]),
        ({"all": [{"trait": "city", "eq": "Paris"}, {"trait": "age", "gte": 18}]}, ["ada"]),
    ],
)
def test_each_condition_selects_the_same_contacts_on_both_databases(
    people: Database, condition: dict[str, Any], expected: list[str]
):
    assert _members(people, condition) == expected


def test_membership_of_another_segment(people: Database):
    _members(people, {"tag": "vip"}, key="vip")
    assert _members(people, {"not": {"segment": "vip"}}, key="others") == ["bob", "cy"]


def test_recompute_records_entered_and_exited_events_and_queues_them(people: Database):
    assert _members(people, {"event": "order.completed", "within": "P30D"}) == ["ada"]
    with people.transaction() as session:
        # Time alone: 25 days later ada's order is 35 days old.
        segment = segments_store.segment_of(segments_store.get(session, "s"))
        changes = segments_store.apply(session, segment, NOW + timedelta(days=25))
    assert (changes.entered, changes.exited) == ([], ["ada"])
    with people.transaction() as session:
        stored = session.execute(
            select(Event.name, Event.contact_id, Event.properties)
            .where(Event.name.like("segment.%"))
            .order_by(Event.id)
        ).all()
        queued = session.scalars(
            select(Event.name).join(OutboxEntry, OutboxEntry.event_id == Event.id)
        ).all()
    assert [tuple(row) for row in stored] == [
        ("segment.entered", "ada", {"segment": "s"}),
        ("segment.exited", "ada", {"segment": "s"}),
    ]
    assert sorted(queued) == ["segment.entered", "segment.exited"]


def test_a_second_apply_changes_nothing(people: Database):
    segment = Segment(key="s", name="s", condition={"trait": "city", "eq": "Paris"})
    with people.transaction() as session:
        segments_store.put(session, segment)
        first = segments_store.apply(session, segment, NOW)
        again = segments_store.apply(session, segment, NOW)
    assert first.entered == ["ada", "cy"]
    assert len(again) == 0


def test_react_moves_out_a_member_whose_trait_was_removed(people: Database):
    """An identify (or update step) that removes a trait makes the comparison unknown: the
    contact leaves, it is not left in as "not evaluated"."""
    assert _members(people, {"trait": "plan", "eq": "pro"}) == ["ada"]
    with people.transaction() as session:
        contacts_store.upsert(session, "ada", {"plan": None})
        session.flush()
        changes = segments_store.react(session, profile={"ada": {"plan"}}, events=(), now=NOW)
    assert (changes.entered, changes.exited) == ([], ["ada"])


def test_react_re_evaluates_tag_and_score_segments_for_changed_contact_state(people: Database):
    _members(people, {"tag": "vip"}, key="vip")
    _members(people, {"score": "lead", "gte": 50}, key="hot")
    _members(people, {"trait": "city", "eq": "Lyon"}, key="lyon")
    with people.transaction() as session:
        ada, bob = session.get(Contact, "ada"), session.get(Contact, "bob")
        ada.tags, bob.scores = [], {"lead": 80}
        # Moved by hand into Lyon: a segment reading no tag nor score is not re-evaluated.
        bob.traits = {**bob.traits, "city": "Paris"}
        session.flush()
        changes = segments_store.react(
            session, profile={}, events=(), now=NOW, state=["ada", "bob"]
        )
        memberships = {c: segments_store.keys_of(session, c) for c in ("ada", "bob")}
    assert (changes.entered, changes.exited) == (["bob"], ["ada"])
    assert memberships == {"ada": ["hot"], "bob": ["hot", "lyon"]}
