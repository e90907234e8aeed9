"""A relay's claim on Postgres locks the contacts of its batch only, however long the backlog.

The claim once took its session lock in the filter of the table scan. With the statistics of a
freshly filled table Postgres sorts after a sequential scan, so the filter ran on every pending
row: 20,000 entries asked for 20,000 locks and the server's shared lock table ran out ("out of
shared memory") for every connection, the relay's and the API's alike."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, insert, select, text

from temporal_journeys.store import outbox
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, OutboxEntry

BACKLOG = 20_000


@pytest.fixture
def backlog_db(own_postgres_url: str) -> Iterator[Database]:
    db = Database(own_postgres_url)
    now = datetime.now(UTC)
    with db.engine.begin() as connection:
        connection.execute(
            insert(Event),
            [
                {
                    "id": n,
                    "message_id": f"m-{n}",
                    "contact_id": f"contact-{n}",
                    "name": "page.viewed",
                    "properties": {},
                    "timestamp": now,
                    "received_at": now,
                }
                for n in range(1, BACKLOG + 1)
            ],
        )
        connection.execute(
            insert(OutboxEntry),
            [
                {"event_id": n, "contact_id": f"contact-{n}", "received_at": now}
                for n in range(1, BACKLOG + 1)
            ],
        )
    yield db
    db.dispose()


def _advisory_locks(db: Database) -> int:
    with db.engine.connect() as connection:
        query = select(func.count()).select_from(text("pg_locks"))
        return connection.execute(query.where(text("locktype = 'advisory'"))).scalar_one()


async def test_a_claim_on_a_long_backlog_locks_only_its_batch(backlog_db: Database):
    async with outbox.claim(backlog_db, 100) as claimed:
        assert [c.entry_id for c in claimed] == sorted(c.entry_id for c in claimed)
        assert len(claimed) == 100
        assert {c.event_name for c in claimed} == {"page.viewed"}
        assert _advisory_locks(backlog_db) == 100
    assert _advisory_locks(backlog_db) == 0


async def test_a_second_relay_takes_the_next_contacts_and_none_of_the_first_ones(
    backlog_db: Database,
):
    async with outbox.claim(backlog_db, 100) as first, outbox.claim(backlog_db, 100) as second:
        assert len(second) == 100
        assert {c.contact_id for c in first}.isdisjoint(c.contact_id for c in second)
        assert min(c.entry_id for c in second) > max(c.entry_id for c in first)
