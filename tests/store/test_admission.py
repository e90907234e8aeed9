"""When a starter may admit an entry itself, and when it leaves the decision to the run."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from temporal_journeys.journeys.spec import ReEntryAfter
from temporal_journeys.store import enrollments
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def _workflow_id() -> str:
    return f"journey/admission/{uuid.uuid4().hex[:8]}"


def _entered(db: Database, workflow_id: str, status: str, at: datetime) -> None:
    entry = uuid.uuid4().hex
    with db.connection() as connection:
        enrollments.record_start(
            connection,
            enrollment_id=entry,
            workflow_id=workflow_id,
            journey_key="admission",
            version=1,
            contact_id="c1",
            step="first",
            at=at,
        )
        table = Enrollment.__table__
        connection.execute(update(table).where(table.c.id == entry).values(status=status))


def _admissible(db: Database, workflow_id: str, rule: object = "never") -> bool:
    with db.connection() as connection:
        return enrollments.admissible(connection, workflow_id, rule, NOW)  # type: ignore[arg-type]


def test_a_first_entry_is_admitted(engine_db: Database):
    assert _admissible(engine_db, _workflow_id())


def test_an_entry_whose_lock_another_starter_holds_is_left_to_the_run(engine_db: Database):
    workflow_id = _workflow_id()
    with engine_db.connection() as holder:
        assert enrollments.admissible(holder, workflow_id, "never", NOW)
        assert not _admissible(engine_db, workflow_id)
    assert _admissible(engine_db, workflow_id)


def test_a_contact_with_a_running_entry_is_left_to_that_run(engine_db: Database):
    workflow_id = _workflow_id()
    _entered(engine_db, workflow_id, "running", NOW - timedelta(days=30))
    assert not _admissible(engine_db, workflow_id, "always")


def test_re_entry_rules_decide_after_an_ended_entry(engine_db: Database):
    workflow_id = _workflow_id()
    _entered(engine_db, workflow_id, "completed", NOW - timedelta(days=2))

    assert not _admissible(engine_db, workflow_id, "never")
    assert not _admissible(engine_db, workflow_id, ReEntryAfter(after=timedelta(days=7)))
    assert _admissible(engine_db, workflow_id, ReEntryAfter(after=timedelta(days=1)))
    assert _admissible(engine_db, workflow_id, "always")


def test_sqlite_leaves_every_decision_to_the_run(sqlite_url: str):
    db = Database(sqlite_url)
    try:
        assert not _admissible(db, _workflow_id(), "always")
    finally:
        db.dispose()
