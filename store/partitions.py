"""Postgres keeps ``events`` in monthly partitions by receipt, so that retention drops a month
as one catalogue change instead of deleting its rows one by one (each a dead row for vacuum and a
WAL record for every replica).

The layout (migration 0015, or ``create_all`` through ``partition_events``):

- ``events`` is ``PARTITION BY RANGE (received_at)`` with the primary key ``(id, received_at)``
  (a unique key of a partitioned table must hold its partition key). Ids still come from
  ``events_id_seq``, so they keep growing with receipt across the partitions.
- ``events_YYYY_MM``: a month, created ahead (``ensure_months``) by the migration, every worker
  start and every retention pass, for the current month and ``MONTHS_AHEAD`` more.
- ``events_default``: a row whose month has no partition lands here (when nothing created the
  month in time), so an ingest never fails for want of one.
- ``events_before_YYYY_MM``: what the table held when it was partitioned, up to that month.
- ``events_YYYY_MM_kept``: the rows a month still needed once retention swapped it for them
  (``swap_month``), never swapped again: the daily batched pass deletes from it row by row.

The names carry the bounds, so nothing here parses Postgres's rendering of them. Deduplication
by messageId lives in ``event_ids`` (``store/events.py``), since ``message_id`` can no longer be
unique across the partitions. SQLite keeps one plain ``events`` table.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

log = logging.getLogger("journeys.store.partitions")

MONTHS_AHEAD = 3
DEFAULT = "events_default"
KEPT_SUFFIX = "_kept"
# A swap waits at most this long for the ingests in flight before it detaches a month; past it
# the swap fails and is tried again (the activity's retry, or the next day's pass).
SWAP_LOCK_TIMEOUT = "2s"
# Erasure and a month's swap exclude each other (``hold_erasures``): a contact erased while a
# month's kept rows were being copied would come back in the copy. Two int4 keys, a key space
# apart from the one-bigint keys of the run and contact locks.
_ERASURE_LOCK = {"a": 0x4A524E59, "b": 1}

_NAME = re.compile(
    r"events_(?:(?P<before>before)_)?(?P<year>\d{4})_(?P<month>\d{2})(?P<kept>_kept)?"
)


@dataclass(frozen=True)
class Month:
    """One partition of ``events`` other than the default: ``[start, end)`` by receipt."""

    table: str
    start: datetime | None  # None: from the first event ever
    end: datetime
    kept: bool  # what retention left of a month, not swapped again


def month_start(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def next_month(start: datetime) -> datetime:
    return datetime(start.year + start.month // 12, start.month % 12 + 1, 1, tzinfo=UTC)


def month_table(start: datetime) -> str:
    return f"events_{start:%Y_%m}"


def parse(table: str) -> Month | None:
    found = _NAME.fullmatch(table)
    if found is None:
        return None
    start = datetime(int(found["year"]), int(found["month"]), 1, tzinfo=UTC)
    if found["before"]:
        return Month(table, None, start, kept=found["kept"] is not None)
    return Month(table, start, next_month(start), kept=found["kept"] is not None)


def is_partition(table: str) -> bool:
    """Whether a table of this name is one of ``events``' partitions (the models list none)."""
    return table == DEFAULT or parse(table) is not None


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's autogenerate hook: the partitions are not the models' tables."""
    return not (type_ == "table" and name is not None and is_partition(name))


def is_partitioned(connection: Connection | Session) -> bool:
    bind = connection if isinstance(connection, Connection) else connection.get_bind()
    if bind.dialect.name != "postgresql":
        return False
    return bool(
        connection.execute(
            text(
                "SELECT EXISTS (SELECT 1 FROM pg_partitioned_table "
                "WHERE partrelid = 'events'::regclass)"
            )
        ).scalar()
    )


def months(connection: Connection | Session) -> list[Month]:
    """Every partition but the default, oldest first."""
    names = connection.execute(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = 'events'::regclass"
        )
    ).scalars()
    found = [m for m in map(parse, names) if m is not None]
    return sorted(found, key=lambda m: (m.end, m.start is not None))


def _literal(moment: datetime) -> str:
    return f"'{moment.isoformat()}'"


def _bounds(month: Month) -> str:
    start = "MINVALUE" if month.start is None else _literal(month.start)
    return f"FROM ({start}) TO ({_literal(month.end)})"


def ensure_months(
    connection: Connection | Session, now: datetime, ahead: int = MONTHS_AHEAD
) -> list[str]:
    """Create the partitions of the current month and ``ahead`` more that no partition covers
    yet; answers the tables created. A month whose rows already went to the default partition
    is left there (Postgres refuses a partition whose rows the default holds). A month whose
    creation cannot lock ``events`` within ``SWAP_LOCK_TIMEOUT`` (ingests hold it) is logged and
    left to the next call (a worker start, the next day's pass); the default partition takes
    its rows meanwhile. Nothing on SQLite, or on a database whose ``events`` is not
    partitioned."""
    if not is_partitioned(connection):
        return []
    existing = months(connection)
    start = month_start(now)
    created = []
    for _ in range(ahead + 1):
        end = next_month(start)
        covered = any((m.start is None or m.start <= start) and end <= m.end for m in existing)
        if not covered and not _in_default(connection, start, end):
            table = month_table(start)
            # Creating a partition locks ``events`` whole: never wait long for the ingests.
            connection.execute(text(f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'"))
            try:
                with connection.begin_nested():
                    connection.execute(
                        text(
                            f"CREATE TABLE IF NOT EXISTS {table} PARTITION OF events FOR VALUES "
                            f"{_bounds(Month(table, start, end, kept=False))}"
                        )
                    )
                created.append(table)
            except OperationalError as exc:
                log.warning("partition %s of events not made yet: %s", table, exc)
        start = end
    return created


def _in_default(connection: Connection | Session, start: datetime, end: datetime) -> bool:
    return bool(
        connection.execute(
            text(
                f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} "
                "WHERE received_at >= :start AND received_at < :end)"
            ),
            {"start": start, "end": end},
        ).scalar()
    )


# The columns of ``events`` as migration 0001 made them, ids from its sequence.
_COLUMNS = (
    "id BIGINT NOT NULL DEFAULT nextval('events_id_seq'::regclass), "
    "message_id VARCHAR(200) NOT NULL, contact_id VARCHAR(200) NOT NULL, "
    "name VARCHAR(200) NOT NULL, properties JSONB NOT NULL, "
    "timestamp TIMESTAMP WITH TIME ZONE NOT NULL, received_at TIMESTAMP WITH TIME ZONE NOT NULL"
)


def partition_events(connection: Connection, now: datetime) -> None:
    """Turn the plain ``events`` table into the partitioned layout, its rows kept in place as
    ``events_before_<next month>`` (no copy). Its ``message_id`` unique constraint must be gone
    already (the caller moves deduplication to ``event_ids`` first)."""
    end = next_month(month_start(now))
    before = Month(f"events_before_{end:%Y_%m}", None, end, kept=False)
    old = before.table
    for statement in (
        f"ALTER TABLE events RENAME TO {old}",
        f"ALTER TABLE {old} DROP CONSTRAINT pk_events",
        f"ALTER INDEX ix_events_contact_name_time RENAME TO ix_{old}_contact_name_time",
        f"ALTER INDEX ix_events_contact_time RENAME TO ix_{old}_contact_time",
        f"ALTER TABLE {old} ADD CONSTRAINT pk_{old} PRIMARY KEY (id, received_at)",
        f"CREATE TABLE events ({_COLUMNS}, CONSTRAINT pk_events PRIMARY KEY (id, received_at)) "
        "PARTITION BY RANGE (received_at)",
        "ALTER SEQUENCE events_id_seq OWNED BY events.id",
        "CREATE INDEX ix_events_contact_name_time ON events (contact_id, name, timestamp)",
        "CREATE INDEX ix_events_contact_time ON events (contact_id, timestamp)",
        f"ALTER TABLE events ATTACH PARTITION {old} FOR VALUES {_bounds(before)}",
        f"CREATE TABLE {DEFAULT} PARTITION OF events DEFAULT",
    ):
        connection.execute(text(statement))
    ensure_months(connection, now)


def unpartition_events(connection: Connection) -> None:
    """The way back (migration 0015's downgrade): one plain table with every row."""
    for statement in (
        "ALTER TABLE events RENAME TO events_partitioned",
        "ALTER TABLE events_partitioned RENAME CONSTRAINT pk_events TO pk_events_partitioned",
        "ALTER INDEX ix_events_contact_name_time RENAME TO ix_events_partitioned_name_time",
        "ALTER INDEX ix_events_contact_time RENAME TO ix_events_partitioned_time",
        f"CREATE TABLE events ({_COLUMNS}, CONSTRAINT pk_events PRIMARY KEY (id))",
        "INSERT INTO events SELECT * FROM events_partitioned ORDER BY id",
        "ALTER SEQUENCE events_id_seq OWNED BY events.id",
        "DROP TABLE events_partitioned",
        "CREATE INDEX ix_events_contact_name_time ON events (contact_id, name, timestamp)",
        "CREATE INDEX ix_events_contact_time ON events (contact_id, timestamp)",
    ):
        connection.execute(text(statement))


def hold_erasures(connection: Connection | Session) -> None:
    """Wait for the erasures in flight, then keep new ones waiting until this transaction ends."""
    connection.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), _ERASURE_LOCK)


def as_an_erasure(connection: Connection | Session) -> None:
    """Taken by an erasure of events: many at once, but never during a month's swap."""
    connection.execute(text("SELECT pg_advisory_xact_lock_shared(:a, :b)"), _ERASURE_LOCK)


def kept_table(month: Month) -> str:
    return month.table + KEPT_SUFFIX


def create_kept(connection: Connection | Session, month: Month) -> str:
    """An empty table shaped as ``events``, to hold what ``month`` keeps."""
    table = kept_table(month)
    connection.execute(text(f"CREATE TABLE {table} (LIKE events INCLUDING DEFAULTS)"))
    return table


def swap_month(connection: Connection | Session, month: Month) -> None:
    """Put ``month``'s kept table in its place and drop the month, in the caller's transaction.

    The kept table gets its keys, indexes and a CHECK of the month's bounds before the month is
    detached, so attaching it builds and scans nothing: the parent's exclusive lock, which the
    detach takes and keeps to the commit, lasts a few catalogue changes. Ingests wait for it at
    most ``SWAP_LOCK_TIMEOUT``; past that the swap fails instead."""
    table = kept_table(month)
    lower = "" if month.start is None else f"received_at >= {_literal(month.start)} AND "
    for statement in (
        f"ALTER TABLE {table} ADD CONSTRAINT ck_{table}_month "
        f"CHECK ({lower}received_at < {_literal(month.end)})",
        f"ALTER TABLE {table} ADD CONSTRAINT pk_{table} PRIMARY KEY (id, received_at)",
        f"CREATE INDEX ix_{table}_contact_name_time ON {table} (contact_id, name, timestamp)",
        f"CREATE INDEX ix_{table}_contact_time ON {table} (contact_id, timestamp)",
        f"SET LOCAL lock_timeout = '{SWAP_LOCK_TIMEOUT}'",
        f"ALTER TABLE events DETACH PARTITION {month.table}",
        f"ALTER TABLE events ATTACH PARTITION {table} FOR VALUES {_bounds(month)}",
        f"ALTER TABLE {table} DROP CONSTRAINT ck_{table}_month",
        f"DROP TABLE {month.table}",
    ):
        connection.execute(text(statement))
