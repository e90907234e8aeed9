"""The snapshot and its keyset pages, on Postgres and SQLite: taken once, due per zone, paged in
``(due_at, contact_id)`` order without gaps or repeats, outcomes counted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporal_journeys.activities.broadcast import local_due
from temporal_journeys.journeys.segments import Segment
from temporal_journeys.store import broadcasts as store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Broadcast
from tests.support import broadcasts as b

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _setup(db: Database, prefix: str) -> str:
    b.add_contacts(db, f"{prefix}-a", 5, timezone="Asia/Tokyo", batch=prefix)
    b.add_contacts(db, f"{prefix}-b", 7, timezone="Europe/Paris", batch=prefix)
    key = f"bc-{prefix}"
    with db.transaction() as session:
        segments_store.put(
            session,
            Segment.model_validate(
                {"key": key, "name": key, "condition": {"trait": "batch", "eq": prefix}}
            ),
        )
    with db.transaction() as session:
        segments_store.recompute(session, key, START)
        store.add(
            session,
            Broadcast(
                id=prefix, segment_key=key, channel="email", template="t", data={}, status="sending"
            ),
        )
    return key


def test_the_snapshot_is_taken_once_and_paged_without_gaps_or_repeats(db: Database):
    prefix = b.unique("st")
    _setup(db, prefix)

    def due(zone: str) -> datetime:
        return local_due(START, "09:00", zone)

    with db.transaction() as session:
        assert store.snapshot(session, prefix, due) == 12
    with db.transaction() as session:
        # Taken again (a retried activity): counted, not retaken.
        assert store.snapshot(session, prefix, due) == 12
        assert store.snapshot(session, "nope", due) is None

    tokyo, paris = (
        local_due(START, "09:00", "Asia/Tokyo"),
        local_due(START, "09:00", "Europe/Paris"),
    )
    assert tokyo < paris  # 21:00 in Tokyo at the start, 13:00 in Paris
    seen: list[str] = []
    after = None
    with db.transaction() as session:
        # Only Tokyo is due by its 09:00; Paris's morning comes later.
        early = store.page(session, prefix, after=None, now=tokyo, limit=100)
        assert [r.contact_id for r in early] == [f"{prefix}-a-{n:04d}" for n in range(5)]
        while page := store.page(session, prefix, after=after, now=paris, limit=5):
            seen += [r.contact_id for r in page]
            after = (page[-1].due_at, page[-1].contact_id)
        assert store.next_due(session, prefix, after) is None
        assert store.next_due(session, prefix, None) is not None
    assert len(seen) == 12 and len(set(seen)) == 12
    assert seen[:5] == [f"{prefix}-a-{n:04d}" for n in range(5)]

    later = paris + timedelta(hours=1)
    with db.transaction() as session:
        store.record(
            session,
            prefix,
            [
                store.Outcome(seen[0], "sent", None, "msg_1"),
                store.Outcome(seen[1], "skipped", "unsubscribed from email", "msg_2"),
                store.Outcome(seen[2], "deferred", "quiet hours", "msg_3", later),
            ],
        )
    with db.transaction() as session:
        assert store.counts(session, prefix) == {
            "queued": 9,
            "sent": 1,
            "skipped": 1,
            "deferred": 1,
        }
        assert store.skip_reasons(session, prefix) == {"unsubscribed from email": 1}
        assert store.deferred_page(session, prefix, now=paris, limit=10) == []
        [held] = store.deferred_page(session, prefix, now=later, limit=10)
        assert held.contact_id == seen[2]
        assert store.live_using_segment(session, f"bc-{prefix}") == [prefix]
        assert store.remove_for_contact(session, seen[0]) == 1
