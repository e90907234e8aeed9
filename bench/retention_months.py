"""What a month of events costs retention on Postgres: swapped whole against deleted in batches.

    .venv/bin/python -m bench.retention_months [--events 1000000] [--rounds 2] [--quick]

On a fresh, migrated database, each round fills January 2031 with ``events`` events as ingest
leaves them (the event, its ``event_ids`` row; 5% are ``order.completed``, which a segment
reads without a window, so they stay) and runs the daily pass on it two ways, in turn:

- **batches** (the reference, as every pass ran before migration 0015 and as SQLite still
  runs): ``store.retention.delete_old_events`` in batches of 5,000 ids, then the ``VACUUM`` the
  deleted rows need before their space is reused;
- **swap**: ``store.retention.swap_old_month``, what the pass now does with a month received
  wholly before its cutoff, then the same ``VACUUM``.

For each it prints the wall time, the WAL written (``pg_current_wal_lsn`` before and after: what
every replica receives) and the rows left, and the swap's figures against the batches'. The same
rows go either way (the script checks it). ``--quick`` is 100,000 events, one round.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import text

from temporal_journeys.journeys.segments import parse_segment
from temporal_journeys.store import partitions
from temporal_journeys.store import retention as retention_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from tests.support.postgres import DEFAULT_URL, fresh_database

JANUARY = datetime(2031, 1, 1, tzinfo=UTC)
NOW = datetime(2031, 3, 15, tzinfo=UTC)
KEEP = timedelta(days=30)  # cutoff 2031-02-13: January wholly before it
BATCH = 5_000
KEPT_SHARE = 20  # one event in 20 is an order, kept


@dataclass
class Run:
    seconds: float
    vacuum_seconds: float
    wal_bytes: int
    deleted: int
    left: int


def fill(db: Database, events: int) -> None:
    """January's events and their messageIds, set-based (the ingest path's rows, not its speed)."""
    with db.transaction() as session:
        session.execute(
            text(
                """
                WITH made AS (
                    INSERT INTO events (message_id, contact_id, name, properties, timestamp,
                                        received_at)
                    SELECT 'bench-' || n || '-' || :tag, 'contact-' || (n % 10000),
                           CASE WHEN n % :share = 0 THEN 'order.completed' ELSE 'page.viewed' END,
                           jsonb_build_object('url', '/products/' || (n % 500), 'n', n),
                           :start + (n % 2592000) * interval '1 second',
                           :start + (n % 2592000) * interval '1 second'
                    FROM generate_series(1, :events) AS n
                    RETURNING message_id, received_at
                )
                INSERT INTO event_ids SELECT message_id, received_at FROM made
                """
            ),
            {"events": events, "share": KEPT_SHARE, "start": JANUARY, "tag": time.time_ns()},
        )
    vacuum(db)


def vacuum(db: Database) -> float:
    started = time.perf_counter()
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM (ANALYZE) events, event_ids"))
    return time.perf_counter() - started


def wal(db: Database) -> int:
    with db.transaction() as session:
        return int(
            session.execute(text("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')")).scalar()
        )


def left(db: Database) -> int:
    with db.transaction() as session:
        return int(session.execute(text("SELECT count(*) FROM events")).scalar())


def batches(db: Database) -> int:
    deleted, after = 0, 0
    while True:
        with db.transaction() as session:
            batch = retention_store.delete_old_events(
                session,
                now=NOW,
                keep=KEEP,
                after_id=after,
                limit=BATCH,
                needed=retention_store.events_needed(session),
            )
        deleted, after = deleted + batch.deleted, batch.last_id
        if batch.done:
            return deleted


def swap(db: Database) -> int:
    with db.transaction() as session:
        months = retention_store.old_months(session, now=NOW, keep=KEEP)
    january = next(m for m in months if m.table == partitions.month_table(JANUARY))
    with db.transaction() as session:
        swapped = retention_store.swap_old_month(
            session,
            january,
            now=NOW,
            keep=KEEP,
            needed=retention_store.events_needed(session),
        )
    return swapped.deleted


def measure(db: Database, events: int, way: str) -> Run:
    fill(db, events)
    before, started = wal(db), time.perf_counter()
    deleted = batches(db) if way == "batches" else swap(db)
    seconds = time.perf_counter() - started
    vacuum_seconds = vacuum(db)
    run = Run(seconds, vacuum_seconds, wal(db) - before, deleted, left(db))
    with db.transaction() as session:  # the next round starts from an empty January
        session.execute(text("TRUNCATE events, event_ids"))
        if way == "swap":
            session.execute(text(f"DROP TABLE {partitions.month_table(JANUARY)}_kept"))
            partitions.ensure_months(session, JANUARY)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="100,000 events, one round")
    parser.add_argument("--server", default=DEFAULT_URL)
    args = parser.parse_args()
    if args.quick:
        args.events, args.rounds = 100_000, 1
    with fresh_database(args.server) as url:
        upgrade(url)
        db = Database(url)
        try:
            with db.transaction() as session:
                partitions.ensure_months(session, JANUARY)
                segments_store.put(
                    session,
                    parse_segment(
                        {
                            "kind": "segment",
                            "key": "ever-ordered",
                            "name": "Ever ordered",
                            "condition": {"event": "order.completed"},
                        }
                    ),
                )
            runs: dict[str, list[Run]] = {"batches": [], "swap": []}
            for number in range(1, args.rounds + 1):
                order = ["batches", "swap"] if number % 2 else ["swap", "batches"]
                for way in order:
                    run = measure(db, args.events, way)
                    runs[way].append(run)
                    print(
                        f"round {number} {way:>7}: {run.deleted:,} deleted, {run.left:,} left in "
                        f"{run.seconds:.2f} s (VACUUM {run.vacuum_seconds:.2f} s), "
                        f"WAL {run.wal_bytes / 2**20:,.1f} MiB",
                        flush=True,
                    )
            for way in runs:
                assert {(r.deleted, r.left) for r in runs[way]} == {
                    (runs["batches"][0].deleted, runs["batches"][0].left)
                }, "both ways must delete the same rows"
            median = {
                way: (
                    statistics.median(r.seconds + r.vacuum_seconds for r in found),
                    statistics.median(r.wal_bytes for r in found),
                )
                for way, found in runs.items()
            }
            (swap_s, swap_wal), (batch_s, batch_wal) = median["swap"], median["batches"]
            print(
                f"{args.events:,} events in a month, {runs['swap'][0].left:,} kept: swap "
                f"{swap_s:.2f} s and {swap_wal / 2**20:,.1f} MiB of WAL against batches "
                f"{batch_s:.2f} s and {batch_wal / 2**20:,.1f} MiB (with VACUUM, medians): "
                f"time {swap_s / batch_s:.2f}, WAL {swap_wal / batch_wal:.2f} of the batches'"
            )
        finally:
            db.dispose()


if __name__ == "__main__":
    main()
