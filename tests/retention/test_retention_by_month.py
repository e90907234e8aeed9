"""On Postgres, events live in a partition per month of receipt, and retention swaps a month
received wholly before its cutoff for the rows it still needs instead of deleting row by row;
deduplication by messageId holds across the months (``event_ids``), on both databases."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, func, select, text
from sqlalchemy.exc import OperationalError

from temporal_journeys.activities.retention import events_pass
from temporal_journeys.api.services.retention import prepare_months
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import events as events_store
from temporal_journeys.store import partitions
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import downgrade, upgrade
from temporal_journeys.store.models import Event, EventId, OutboxEntry
from tests.support.postgres import fresh_database
from tests.support.retention import add_segment

# Months ahead of the real clock, so that they are partitions of their own (the migration's
# ``events_before_...`` holds everything up to next month).
MARCH = datetime(2031, 3, 10, tzinfo=UTC)
APRIL = datetime(2031, 4, 20, tzinfo=UTC)
MAY = datetime(2031, 5, 25, tzinfo=UTC)
NOW = datetime(2031, 6, 15, tzinfo=UTC)  # keep 30 days: the cutoff is 2031-05-16
KEEP = timedelta(days=30)


def _accept(
    db: Database, now: datetime, *calls: tuple[str, str], timestamp: datetime | None = None
) -> int:
    rows = [
        {
            "message_id": message_id,
            "contact_id": "ada",
            "name": name,
            "properties": {},
            "timestamp": timestamp or now,
        }
        for message_id, name in calls
    ]
    with db.transaction() as session:
        return events_store.accept(session, rows, now)


def _where(db: Database) -> dict[str, str]:
    """Each stored event's messageId and the partition holding it."""
    with db.transaction() as session:
        rows = session.execute(
            select(Event.message_id, text("events.tableoid::regclass::text"))
        ).all()
    return dict(rows)


def _remembered(db: Database) -> set[str]:
    with db.transaction() as session:
        return set(session.scalars(select(EventId.message_id)))


def _tables(db: Database) -> list[str]:
    with db.transaction() as session:
        return [m.table for m in partitions.months(session)]


def _pass(db: Database, url: str, *, dry_run: bool = False) -> list:
    settings = Settings(database_url=url, retention_events_days=KEEP.days)
    return list(events_pass(db, settings, now=NOW, dry_run=dry_run, batch_size=2))


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def month_db(own_postgres_url: str):
    db = Database(own_postgres_url)
    with db.transaction() as session:
        partitions.ensure_months(session, MARCH)  # March to June 2031
    yield db
    db.dispose()


def test_events_land_in_the_month_they_were_received_and_else_in_the_default(month_db):
    _accept(month_db, MARCH, ("m1", "page.viewed"))
    _accept(month_db, APRIL, ("m2", "page.viewed"))
    _accept(month_db, datetime(2040, 1, 1, tzinfo=UTC), ("m3", "page.viewed"))

    assert _where(month_db) == {
        "m1": "events_2031_03",
        "m2": "events_2031_04",
        "m3": partitions.DEFAULT,
    }


def test_a_month_whose_rows_the_default_holds_is_left_there(month_db):
    far = datetime(2040, 1, 5, tzinfo=UTC)
    _accept(month_db, far, ("m1", "page.viewed"))

    with month_db.transaction() as session:
        created = partitions.ensure_months(session, far)

    assert "events_2040_01" not in created
    assert created == ["events_2040_02", "events_2040_03", "events_2040_04"]
    assert _where(month_db) == {"m1": partitions.DEFAULT}


def test_a_repeated_message_id_is_stored_once_within_a_batch_and_across_months(db: Database):
    march, june = datetime(2031, 3, 10, tzinfo=UTC), datetime(2031, 6, 10, tzinfo=UTC)
    assert _accept(db, march, ("a", "first"), ("b", "second"), ("a", "again")) == 2
    assert _accept(db, june, ("a", "later"), ("c", "third")) == 1

    with db.transaction() as session:
        stored = session.execute(select(Event.message_id, Event.name).order_by(Event.id)).all()
        queued = session.scalar(select(func.count()).select_from(OutboxEntry))
    assert [tuple(r) for r in stored] == [("a", "first"), ("b", "second"), ("c", "third")]
    assert queued == 3


def test_a_month_wholly_past_the_cutoff_is_swapped_for_the_rows_it_still_needs(
    month_db: Database, own_postgres_url: str
):
    add_segment(month_db, {"event": "order.completed"})  # read without a window: forever
    _accept(month_db, MARCH, ("march-view", "page.viewed"), ("march-order", "order.completed"))
    _accept(
        month_db,
        APRIL,
        ("april-view", "page.viewed"),
        ("april-queued", "page.viewed"),
        # Received in April with a timestamp in June: not old enough by its own time.
        ("april-future", "page.viewed"),
    )
    _accept(month_db, datetime(2031, 5, 2, tzinfo=UTC), ("may-early", "page.viewed"))
    _accept(month_db, MAY, ("may-late", "page.viewed"))
    with month_db.transaction() as session:  # routed, but for one
        session.execute(delete(OutboxEntry))
        queued = session.scalar(select(Event.id).where(Event.message_id == "april-queued"))
        session.add(OutboxEntry(event_id=queued, contact_id="ada", attempts=0, received_at=APRIL))
        session.execute(
            Event.__table__.update().where(Event.message_id == "april-future").values(timestamp=NOW)
        )

    dry = _pass(month_db, own_postgres_url, dry_run=True)
    assert dry[-1].deleted == 3 and set(_where(month_db)) == {
        "march-view",
        "march-order",
        "april-view",
        "april-queued",
        "april-future",
        "may-early",
        "may-late",
    }

    done = _pass(month_db, own_postgres_url)[-1]

    # March and April swapped whole (and the empty months before), May straddles the cutoff:
    # its early event went by the batches.
    assert {"events_2031_03", "events_2031_04"} <= set(done.months)
    assert done.deleted == 3 and done.done
    assert _where(month_db) == {
        "march-order": "events_2031_03_kept",
        "april-queued": "events_2031_04_kept",
        "april-future": "events_2031_04_kept",
        "may-late": "events_2031_05",
    }
    tables = _tables(month_db)
    assert "events_2031_03" not in tables and "events_2031_03_kept" in tables
    assert _remembered(month_db) >= {"march-order", "april-queued", "april-future", "may-late"}
    assert not _remembered(month_db) & {"march-view", "april-view", "may-early"}

    # A repeat of an event that went is stored again; of one kept, skipped.
    assert _accept(month_db, NOW, ("march-view", "page.viewed"), ("march-order", "x")) == 1

    # The next day's pass swaps nothing again, and reads the kept rows in its batches.
    again = _pass(month_db, own_postgres_url)[-1]
    assert again.months == [] and again.deleted == 0
    assert "events_2031_03_kept" in _tables(month_db)


def test_an_erasure_waits_while_a_month_is_being_swapped(month_db: Database):
    _accept(month_db, MARCH, ("m1", "page.viewed"))
    holding, release = threading.Event(), threading.Event()

    def swap_in_progress() -> None:
        with month_db.transaction() as session:
            partitions.hold_erasures(session)
            holding.set()
            release.wait(10)

    swapper = threading.Thread(target=swap_in_progress)
    swapper.start()
    try:
        assert holding.wait(10)
        with (
            pytest.raises(OperationalError, match="lock timeout"),
            month_db.transaction() as session,
        ):
            session.execute(text("SET LOCAL lock_timeout = '300ms'"))
            events_store.remove_for_contact(session, "ada")
    finally:
        release.set()
        swapper.join()
    with month_db.transaction() as session:
        assert events_store.remove_for_contact(session, "ada") == 1


async def test_a_worker_start_makes_the_coming_months(month_db: Database):
    with month_db.transaction() as session:
        session.execute(text("DROP TABLE IF EXISTS events_2031_03"))
        missing = partitions.month_table(partitions.next_month(partitions.month_start(_now())))
        session.execute(text(f"DROP TABLE IF EXISTS {missing}"))

    await prepare_months(month_db)

    assert missing in _tables(month_db)


def test_the_migration_partitions_a_filled_table_in_place_and_back(postgres_server_url: str):
    with fresh_database(postgres_server_url) as url:
        upgrade(url, "0014_date_entry_index")
        db = Database(url)
        try:
            with db.transaction() as session:
                for n in range(5):
                    session.execute(
                        Event.__table__.insert().values(
                            message_id=f"old-{n}",
                            contact_id="ada",
                            name="page.viewed",
                            properties={},
                            timestamp=MARCH,
                            received_at=MARCH - timedelta(days=3650),
                        )
                    )
            upgrade(url)
            stored = _where(db)
            assert set(stored) == {f"old-{n}" for n in range(5)}
            assert set(stored.values()) == {
                f"events_before_{partitions.next_month(partitions.month_start(_now())):%Y_%m}"
            }
            assert _remembered(db) == set(stored)
            assert _accept(db, _now(), ("old-1", "again"), ("new", "page.viewed")) == 1

            downgrade(url, "0014_date_entry_index")
            with db.transaction() as session:
                assert session.scalar(select(func.count()).select_from(Event)) == 6
                assert not partitions.is_partitioned(session)
        finally:
            db.dispose()


def _march(db: Database, count: int) -> None:
    for start in range(0, count, 500):
        _accept(db, MARCH, *((f"march-{n}", "page.viewed") for n in range(start, start + 500)))
    with db.transaction() as session:
        session.execute(delete(OutboxEntry))


def test_ingest_goes_on_while_a_month_is_swapped_and_nothing_is_lost_or_doubled(
    month_db: Database, own_postgres_url: str
):
    _march(month_db, 20_000)
    stop, sent = threading.Event(), []

    def ingest() -> None:
        while not stop.is_set():
            batch = [(f"june-{len(sent)}-{n}", "page.viewed") for n in range(50)]
            assert _accept(month_db, NOW, *batch) == 50
            sent.extend(key for key, _ in batch)

    posting = threading.Thread(target=ingest)
    posting.start()
    try:
        done = _pass(month_db, own_postgres_url)[-1]
    finally:
        stop.set()
        posting.join()

    assert "events_2031_03" in done.months and done.deleted == 20_000
    with month_db.transaction() as session:
        stored = session.scalars(select(Event.message_id)).all()
    assert sent and sorted(stored) == sorted(sent), "every event accepted meanwhile, once"


def test_a_swap_that_cannot_lock_the_table_changes_nothing(
    month_db: Database, own_postgres_url: str
):
    _march(month_db, 1_000)
    holder = month_db.engine.connect()
    try:
        with holder.begin():
            # A long reader of events: the swap's detach must wait for it, and gives up.
            holder.execute(text("LOCK TABLE events IN ACCESS SHARE MODE"))
            with pytest.raises(OperationalError, match="lock timeout"):
                _pass(month_db, own_postgres_url)
    finally:
        holder.close()

    assert "events_2031_03" in _tables(month_db)
    assert "events_2031_03_kept" not in _tables(month_db)
    assert len(_where(month_db)) == 1_000 and len(_remembered(month_db)) == 1_000

    assert _pass(month_db, own_postgres_url)[-1].deleted == 1_000  # and the next pass does it
