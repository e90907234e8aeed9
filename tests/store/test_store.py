"""Store functions behave the same on Postgres and SQLite."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from journeys.records import TraceEntry
from journeys.spec import ReEntryAfter, Update
from journeys.validation import parse_journey
from store import contacts, enrollments, events, journeys
from store.db import Database
from store.models import Enrollment, StepEvent

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


def _enroll(db: Database, entry: str, started: datetime) -> None:
    with db.transaction() as session:
        enrollments.begin(
            session,
            enrollment_id=entry,
            workflow_id="journey/welcome/u3",
            journey_key="welcome",
            version=1,
            contact_id="u3",
            correlation=None,
            started_at=started,
        )


def test_re_entry_rules(db: Database):
    _enroll(db, "run-1", NOW)
    with db.transaction() as session:
        refusal = enrollments.re_entry_refusal
        assert refusal(session, "journey/welcome/u3", "run-2", "always", NOW) is None
        assert "never" in refusal(session, "journey/welcome/u3", "run-2", "never", NOW)
        rule = ReEntryAfter(after=timedelta(days=7))
        assert refusal(session, "journey/welcome/u3", "run-2", rule, NOW + timedelta(days=3))
        assert (
            refusal(session, "journey/welcome/u3", "run-2", rule, NOW + timedelta(days=8)) is None
        )
        assert refusal(session, "journey/welcome/u3", "run-1", "never", NOW) is None


def test_progress_rows_are_written_once_and_end_the_enrollment(db: Database):
    _enroll(db, "run-9", NOW)
    entries = [
        TraceEntry(seq=1, at=NOW, step="hello", kind="entered"),
        TraceEntry(seq=2, at=NOW, step="hello", kind="sent"),
        TraceEntry(seq=3, at=NOW, step="hello", kind="completed"),
    ]
    for _ in range(2):
        with db.transaction() as session:
            enrollment = session.get(Enrollment, "run-9")
            enrollments.record_progress(
                session,
                enrollment,
                entries,
                status="completed",
                step="hello",
                variant=None,
                reason=None,
                version=1,
            )
    with db.transaction() as session:
        assert session.query(StepEvent).filter_by(enrollment_id="run-9").count() == 3
        enrollment = session.get(Enrollment, "run-9")
        assert enrollment.status == "completed" and enrollment.ended_at is not None


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


def _begin(session: Session, correlation: str | None = "cart-1") -> Enrollment:
    return enrollments.begin(
        session,
        enrollment_id="run-1",
        workflow_id="journey/cart/u9/cart-1",
        journey_key="cart",
        version=1,
        contact_id="u9",
        correlation=correlation,
        started_at=NOW,
    )


def test_a_run_beginning_while_the_relay_writes_its_row_waits_for_it(postgres_url: str):
    """The relay records a run it starts; the run's own first write must give way to that
    row even while it is uncommitted, not fail on the primary key."""
    database = Database(postgres_url)
    try:
        with database.transaction() as session:
            session.query(Enrollment).filter_by(id="run-1").delete()
        relay = database.sessions()
        relay.add(
            Enrollment(
                id="run-1",
                workflow_id="journey/cart/u9/cart-1",
                journey_key="cart",
                version=1,
                contact_id="u9",
                status="running",
                converted=False,
                started_at=NOW,
            )
        )
        relay.flush()  # written, not committed: the run's insert has to wait for it
        began: list[str | None] = []

        def run_begins() -> None:
            with database.transaction() as session:
                began.append(_begin(session).correlation)

        thread = threading.Thread(target=run_begins)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive(), "the run's insert should wait for the relay's transaction"
        relay.commit()
        relay.close()
        thread.join(10)

        assert began == ["cart-1"]
        with database.transaction() as session:
            [row] = session.query(Enrollment).filter_by(id="run-1").all()
            assert (row.correlation, row.status) == ("cart-1", "running")
            session.delete(row)
    finally:
        database.dispose()
