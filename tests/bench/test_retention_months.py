"""`bench.retention_months`: both ways of the pass delete the same rows of a month, and each
round measures what it says (time, WAL) and leaves January empty for the next."""

from __future__ import annotations

from sqlalchemy import text

from bench.retention_months import JANUARY, measure
from temporal_journeys.store import partitions
from temporal_journeys.store.db import Database
from tests.support.retention import add_segment


def test_both_ways_delete_the_same_rows_and_leave_january_empty(own_postgres_url: str) -> None:
    db = Database(own_postgres_url)
    try:
        with db.transaction() as session:
            partitions.ensure_months(session, JANUARY)
        add_segment(db, {"event": "order.completed"})

        batches = measure(db, 2_000, "batches")
        swap = measure(db, 2_000, "swap")

        assert (batches.deleted, batches.left) == (swap.deleted, swap.left) == (1_900, 100)
        assert batches.wal_bytes > 0 and swap.wal_bytes > 0
        with db.transaction() as session:
            assert session.execute(text("SELECT count(*) FROM events")).scalar() == 0
            names = [m.table for m in partitions.months(session)]
        assert partitions.month_table(JANUARY) in names
    finally:
        db.dispose()
