"""Store functions behave the same on Postgres and SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.journeys.spec import ReEntry, ReEntryAfter, Update
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import contacts, enrollments, events, journeys, keys
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, StepEvent

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
SPEC = {
    "key": "welcome",
    "name": "Welcome",
    "trigger": {"event": "user.signed_up"},
    "steps": [{"id": "hello", "send": {"channel": "email", "template": "t"}}],
}


def test_identify_traits_fill_profile_columns_and_merge(db: Database):
    with db.transaction() as session:
        contacts.upsert(
            session, "u1", {"email": "a@example.com", "timezone": "Asia/Tokyo", "plan": "pro"}
        )
        contacts.upsert(session, "u1", {"plan": None, "first_name": "Ada"})
    with db.transaction() as session:
        snap = contacts.snapshot(contacts.get_or_create(session, "u1"))
    assert (snap.email, snap.timezone) == ("a@example.com", "Asia/Tokyo")
    assert snap.traits == {"first_name": "Ada"}


def test_an_update_applies_once_per_operation_key(db: Database):
    update = Update(score={"lead": 10}, add_tags=["hot"], attributes={"stage": "mql"})
    for _ in range(2):
        with db.transaction() as session:
            contacts.apply_update(session, "u2", update, "journey/x/u2/run/step/1")
    with db.transaction() as session:
        contacts.apply_update(session, "u2", update, "journey/x/u2/run/step/2")
    with db.transaction() as session:
        snap = contacts.snapshot(contacts.get_or_create(session, "u2"))
    assert snap.scores == {"lead": 20.0}
    assert snap.tags == ["hot"]
    assert snap.traits == {"stage": "mql"}


def test_publish_numbers_versions_and_the_latest_is_live(db: Database):
    journey = parse_journey(SPEC)
    with db.transaction() as session:
        assert journeys.publish(session, journey) == 1
        assert journeys.publish(session, journey.model_copy(update={"name": "Welcome 2"})) == 2
    with db.transaction() as session:
        version, live = journeys.live_version(session, "welcome")
    assert (version, live.name) == (2, "Welcome 2")


def test_re_entry_rules(db: Database):
    _write(db, [], "running", enrollment_id="run-1")
    with db.connection() as connection:

        def refusal(entry: str, rule: ReEntry, now: datetime) -> str | None:
            return enrollments.re_entry_refusal(connection, "journey/welcome/u7", entry, rule, now)

        assert refusal("run-2", "always", NOW) is None
        assert "never" in (refusal("run-2", "never", NOW) or "")
        rule = ReEntryAfter(after=timedelta(days=7))
        assert refusal("run-2", rule, NOW + timedelta(days=3))
        assert refusal("run-2", rule, NOW + timedelta(days=8)) is None
        assert refusal("run-1", "never", NOW) is None


def test_event_counts_respect_the_window(db: Database):
    with db.transaction() as session:
        for n, age in enumerate((1, 10, 40)):
            events.record(
                session,
                message_id=f"m{n}",
                contact_id="u4",
                name="order.completed",
                properties={},
                timestamp=NOW - timedelta(days=age),
            )
    with db.transaction() as session:
        assert events.count(session, "u4", "order.completed", NOW - timedelta(days=30)) == 2
        assert events.count(session, "u4", "order.completed", None) == 3
        assert events.count(session, "u4", "cart.abandoned", None) == 0


def _write(db: Database, entries: list[TraceEntry], status: str, **fields: Any) -> None:
    with db.connection() as connection:
        enrollments.write_progress(
            connection,
            enrollment_id=fields.pop("enrollment_id", "run-7"),
            workflow_id="journey/welcome/u7",
            journey_key="welcome",
            version=1,
            contact_id="u7",
            correlation=fields.pop("correlation", None),
            started_at=NOW,
            entries=entries,
            status=status,
            step=fields.pop("step", "hello"),
            variant=fields.pop("variant", None),
            reason=fields.pop("reason", None),
        )


def test_written_progress_makes_the_row_once_and_ends_it_once(db: Database):
    first = [TraceEntry(seq=1, at=NOW, step="hello", kind="entered")]
    for _ in range(2):  # a retried write adds nothing
        _write(db, first, "running", correlation="c-1")
    later = NOW + timedelta(minutes=5)
    rest = [
        TraceEntry(seq=2, at=later, step="hello", kind="sent"),
        TraceEntry(seq=3, at=later, step="hello", kind="converted"),
    ]
    for _ in range(2):
        _write(db, rest, "converted", variant="b", reason="goal")
    _write(db, [], "converted", variant="b", reason="goal")
    with db.transaction() as session:
        row = session.get(Enrollment, "run-7")
        kinds = [
            (e.id, e.kind, e.journey_key, e.contact_id)
            for e in session.query(StepEvent).filter_by(enrollment_id="run-7").order_by("id")
        ]
    assert (row.status, row.current_step, row.variant, row.exit_reason) == (
        "converted",
        "hello",
        "b",
        "goal",
    )
    assert row.correlation == "c-1" and row.converted
    assert row.ended_at is not None and row.ended_at.replace(tzinfo=UTC) == later
    assert kinds == [
        ("run-7:1", "entered", "welcome", "u7"),
        ("run-7:2", "sent", "welcome", "u7"),
        ("run-7:3", "converted", "welcome", "u7"),
    ]


def _relays_row(started_at: datetime) -> Enrollment:
    """The enrollment row the outbox relay writes when it starts a run."""
    return Enrollment(
        id="run-7",
        workflow_id="journey/welcome/u7",
        journey_key="welcome",
        version=1,
        contact_id="u7",
        status="running",
        converted=False,
        started_at=started_at,
    )


def test_written_progress_fills_in_the_relays_row(db: Database):
    with db.transaction() as session:
        session.add(_relays_row(NOW - timedelta(seconds=1)))
    _write(
        db, [TraceEntry(seq=1, at=NOW, step="hello", kind="entered")], "running", correlation="c-2"
    )
    _write(db, [], "running", step="next")  # later calls know no correlation: it stays
    with db.transaction() as session:
        row = session.get(Enrollment, "run-7")
    assert (row.correlation, row.current_step, row.ended_at) == ("c-2", "next", None)
    assert row.started_at.replace(tzinfo=UTC) == NOW - timedelta(seconds=1)


def test_a_contact_snapshot_is_read_or_the_contact_made(db: Database):
    with db.connection() as connection:
        made = contacts.load_snapshot(connection, "u8")
    with db.transaction() as session:
        contacts.upsert(session, "u8", {"email": "u8@example.com", "plan": "pro"})
    with db.connection() as connection:
        read = contacts.load_snapshot(connection, "u8")
    assert (made.id, made.email, made.timezone, made.traits, made.tags) == (
        "u8",
        None,
        "UTC",
        {},
        [],
    )
    assert (read.email, read.traits) == ("u8@example.com", {"plan": "pro"})


def test_a_run_writing_progress_while_the_relay_writes_its_row_waits_for_it(postgres_url: str):
    database = Database(postgres_url)
    try:
        with database.transaction() as session:
            session.query(Enrollment).filter_by(id="run-7").delete()
        relay = database.sessions()
        relay.add(_relays_row(NOW))
        relay.flush()
        entries = [TraceEntry(seq=1, at=NOW, step="hello", kind="entered")]
        thread = threading.Thread(
            target=_write, args=(database, entries, "running"), kwargs={"correlation": "c-3"}
        )
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the run's upsert should wait for the relay's transaction"
        relay.commit()
        relay.close()
        thread.join(10)
        assert not thread.is_alive()
        with database.transaction() as session:
            [row] = session.query(Enrollment).filter_by(id="run-7").all()
            assert (row.correlation, row.current_step) == ("c-3", "hello")
            session.query(StepEvent).filter_by(enrollment_id="run-7").delete()
            session.delete(row)
    finally:
        database.dispose()


def test_a_revoked_key_is_refused_and_revoking_it_again_finds_nothing(db: Database):
    with db.transaction() as session:
        shop, also_shop = (
            keys.create(session, "shop", "track"),
            keys.create(session, "shop", "track"),
        )
        ops = keys.create(session, "ops", "admin")
    with db.transaction() as session:
        assert keys.revoke(session, key=ops) == ["ops"]
        assert keys.revoke(session, key=ops) == []
        assert keys.revoke(session, name="shop") == ["shop", "shop"]
    with db.transaction() as session:
        assert [keys.scope_of(session, k) for k in (shop, also_shop, ops)] == [None, None, None]
