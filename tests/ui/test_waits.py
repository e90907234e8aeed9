"""How long runs have waited at their step: kept on the enrollment (``step_since``) by the
runs' progress writes, read by the operator page's waits and stuck view (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.store import enrollments, views
from temporal_journeys.store.db import Database

T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def progress(db: Database, n: int, step: str, entries: list[TraceEntry], status="running"):
    with db.engine.begin() as connection:
        enrollments.write_progress(
            connection,
            enrollment_id=f"e{n}",
            workflow_id=f"journey/cart/c{n}",
            journey_key="cart",
            version=1,
            contact_id=f"c{n}",
            correlation=None,
            started_at=T0,
            entries=entries,
            status=status,
            step=step,
            variant=None,
            reason=None,
        )


def entry(seq: int, hours: int, step: str | None, kind: str) -> TraceEntry:
    return TraceEntry(seq=seq, at=T0 + hours * HOUR, step=step, kind=kind)


def aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def test_a_run_waits_since_it_entered_its_step_not_since_its_last_report(db: Database):
    with db.engine.begin() as connection:
        enrollments.record_start(
            connection,
            enrollment_id="e1",
            workflow_id="journey/cart/c1",
            journey_key="cart",
            version=1,
            contact_id="c1",
            step="wait-1h",
            at=T0,
        )
    with db.transaction() as session:
        assert {k: aware(v) for k, v in views.oldest_waits(session, "cart", 1).items()} == {
            "wait-1h": T0
        }
    progress(
        db,
        1,
        "wait-3d",
        [
            entry(0, 0, "wait-1h", "entered"),
            entry(1, 1, "wait-1h", "waited"),
            entry(2, 2, "wait-3d", "entered"),
        ],
    )
    # A later report at the same step (an event buffered, say) moves nothing.
    progress(db, 1, "wait-3d", [entry(3, 30, None, "event")])
    # Another run, at the same step since later, and one at another step.
    progress(db, 2, "wait-3d", [entry(0, 5, "wait-3d", "entered")])
    progress(db, 3, "reminder", [entry(0, 7, "reminder", "entered")])
    # An ended run counts nowhere.
    progress(db, 4, "wait-3d", [entry(0, 1, "wait-3d", "entered")], status="completed")
    with db.transaction() as session:
        oldest = {k: aware(v) for k, v in views.oldest_waits(session, "cart", 1).items()}
        assert oldest == {"wait-3d": T0 + 2 * HOUR, "reminder": T0 + 7 * HOUR}
        late, rows = views.waiting_longer(session, "cart", 1, "wait-3d", T0 + 4 * HOUR, 10)
        assert late == 1 and [(c, aware(s)) for c, _, s in rows] == [("c1", T0 + 2 * HOUR)]
        late, rows = views.waiting_longer(session, "cart", 1, "wait-3d", T0 + 6 * HOUR, 1)
        assert late == 2 and [c for c, _, _ in rows] == ["c1"]
