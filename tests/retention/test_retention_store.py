"""Retention's statements on Postgres and SQLite: old events deleted in bounded batches, except
those a condition, the outbox or deduplication still needs; old messages' content cleared."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from temporal_journeys.journeys.segments import parse_segment
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import retention
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message, OutboxEntry
from tests.support import harness as h
from tests.support.retention import CONTENT, add_event, add_message, event_ids

NOW = datetime(2026, 6, 1, tzinfo=UTC)
KEEP = timedelta(days=30)


def _event(db: Database, name: str, age_days: float, received_days: float | None = None) -> int:
    return add_event(db, NOW, name, age_days, received_days)


def _conditions(db: Database) -> None:
    """A segment and a journey whose conditions read some event names, with and without
    windows."""
    segment = parse_segment(
        {
            "kind": "segment",
            "key": h.unique("seg"),
            "name": "Readers of stored events",
            "condition": {
                "all": [
                    {"event": "order.completed"},  # ever: kept forever
                    {"event": "cart.abandoned", "within": "P60D"},
                    {"last_event": "email.opened", "within": "P45D"},
                ]
            },
        }
    )
    journey = parse_journey(
        {
            "key": h.unique("ret"),
            "name": "History branches",
            "trigger": {"event": "signup"},
            "steps": [
                {
                    "id": "check",
                    "branch": {
                        "cases": [
                            {"when": {"event": "signup.done", "within": "P90D"}, "next": "a"},
                            {"when": {"event": "trial.started", "min": 2}, "next": "a"},
                        ],
                        "default": "b",
                    },
                },
                {"id": "a", "exit": {}},
                {"id": "b", "exit": {}},
            ],
        }
    )
    with db.transaction() as session:
        segments_store.put(session, segment)
        journeys_store.publish(session, journey)


def _run(db: Database, *, limit: int, dry_run: bool = False) -> list[retention.EventsBatch]:
    batches: list[retention.EventsBatch] = []
    after = 0
    while True:
        with db.transaction() as session:
            needed = retention.events_needed(session)
            batch = retention.delete_old_events(
                session,
                now=NOW,
                keep=KEEP,
                after_id=after,
                limit=limit,
                needed=needed,
                dry_run=dry_run,
            )
        batches.append(batch)
        after = batch.last_id
        if batch.done:
            return batches


def test_the_conditions_stored_name_the_events_to_keep(db: Database):
    _conditions(db)
    with db.transaction() as session:
        needed = retention.events_needed(session)
    assert needed.forever == {"order.completed", "trial.started"}
    assert needed.windows == {
        "cart.abandoned": timedelta(days=60),
        "email.opened": timedelta(days=45),
        "signup.done": timedelta(days=90),
    }


def test_batches_delete_exactly_the_old_events_nothing_still_needs(db: Database):
    _conditions(db)
    gone = {
        _event(db, "page.viewed", 400),
        _event(db, "page.viewed", 40),
        _event(db, "cart.abandoned", 70),  # its 60-day window is over
        _event(db, "email.opened", 50),
        _event(db, "signup.done", 100),
        _event(db, "page.viewed", 31),
    }
    kept = {
        _event(db, "order.completed", 500),  # counted by a condition without a window
        _event(db, "trial.started", 500),  # a journey's history without a window
        _event(db, "cart.abandoned", 40),
        _event(db, "email.opened", 40),
        _event(db, "signup.done", 80),
        # Sent today with an old timestamp: its messageId must still deduplicate a retry.
        _event(db, "page.viewed", 400, received_days=1),
    }
    routed = _event(db, "page.viewed", 45)  # still in the outbox: the relay will route it
    with db.transaction() as session:
        session.add(
            OutboxEntry(
                event_id=routed, contact_id="ada", attempts=0, received_at=NOW - timedelta(days=45)
            )
        )
    kept |= {routed}
    kept |= {_event(db, "page.viewed", days) for days in (29, 10, 1, 0, 0, 0, 0, 0, 0)}

    batches = _run(db, limit=3)

    assert event_ids(db) == kept
    assert sum(b.deleted for b in batches) == len(gone)
    assert len([b for b in batches if b.deleted]) >= 2, "more than one batch deleted rows"
    assert all(b.scanned <= 3 and b.deleted <= 3 for b in batches)
    # The walk stops at the first batch with nothing received before the cutoff, short of
    # the newest events.
    assert sum(b.scanned for b in batches) <= len(gone) + len(kept) - 3


def test_a_dry_run_counts_the_same_rows_and_deletes_none(db: Database):
    _conditions(db)
    ids = {_event(db, "page.viewed", days) for days in (90, 60, 45, 20)}
    ids |= {_event(db, "order.completed", 90)}

    batches = _run(db, limit=2, dry_run=True)

    assert sum(b.deleted for b in batches) == 3
    assert event_ids(db) == ids
    assert sum(b.deleted for b in _run(db, limit=2)) == 3


def test_without_conditions_every_old_event_goes(db: Database):
    old = [_event(db, "order.completed", 31 + n) for n in range(5)]
    recent = _event(db, "order.completed", 29)
    assert old
    batches = _run(db, limit=10_000)
    assert event_ids(db) == {recent}
    assert [b.deleted for b in batches] == [5]


def _message(db: Database, age_days: float, **content: object) -> str:
    return add_message(db, NOW, age_days, **content)


def _with_content(db: Database) -> set[str]:
    with db.transaction() as session:
        return set(session.scalars(select(Message.id).where(retention.HAS_CONTENT)))


def test_old_messages_lose_their_content_in_batches_and_keep_the_rest(db: Database):
    old = {_message(db, days, **CONTENT) for days in (400, 200, 120, 91, 91)}
    old.add(_message(db, 100, body="SMS text", headers=None))  # JSON null headers too
    bare = _message(db, 150)  # never had content: nothing to clear
    recent = {_message(db, days, **CONTENT) for days in (89, 10, 0)}
    before = NOW - timedelta(days=90)

    after, counts = None, []
    while True:
        with db.transaction() as session:
            batch = retention.clear_old_bodies(session, before=before, after=after, limit=2)
        counts.append(batch.cleared)
        after = batch.after
        if batch.done:
            break

    assert sum(counts) == len(old) and max(counts) <= 2 and len(counts) >= 3
    assert _with_content(db) == recent
    with db.transaction() as session:
        cleared = session.scalars(select(Message).where(Message.id.in_(old | {bare}))).all()
        assert all(m.status == "delivered" and m.reached == 1 for m in cleared)
        assert all(len(m.status_history) == 2 for m in cleared)
        # SQL NULL, not JSON null: the row has left the partial index for good.
        assert session.scalar(
            select(func.count()).where(Message.id.in_(old), Message.headers.is_(None))
        ) == len(old)
        kept = session.scalars(select(Message).where(Message.id.in_(recent))).all()
        assert {m.subject for m in kept} == {"Hello Ada"}
        assert {m.html for m in kept} == {"<p>Hi Ada</p>"}


def test_a_dry_run_of_message_contents_counts_and_clears_nothing(db: Database):
    for days in (200, 150, 100, 95, 91):
        _message(db, days, **CONTENT)
    _message(db, 30, **CONTENT)
    after, total = None, 0
    while True:
        with db.transaction() as session:
            batch = retention.clear_old_bodies(
                session, before=NOW - timedelta(days=90), after=after, limit=2, dry_run=True
            )
        total += batch.cleared
        after = batch.after
        if batch.done:
            break
    assert total == 5
    assert len(_with_content(db)) == 6
