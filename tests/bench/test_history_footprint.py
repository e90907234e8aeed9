"""`bench.history_footprint` (issue 18, item 4): the quick simulated history on a database of
its own leaves the events, messages and empty outbox it says it made, and sizes they explain."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from bench.history_footprint import (
    EMAIL_EVERY_DAYS,
    TRACKS_PER_DAY,
    render,
    simulate,
)
from temporal_journeys.store.db import Database

pytestmark = pytest.mark.slow  # 30 simulated days: about 25 s

CONTACTS, DAYS = 500, 30  # what --quick runs


async def test_the_quick_history_reports_what_it_stored(own_postgres_url: str) -> None:
    lines: list[str] = []
    report = await simulate(own_postgres_url, CONTACTS, DAYS, progress=lines.append)

    # One identify per contact on day 1, then every contact's tracks every day.
    assert report.identifies == CONTACTS
    assert report.tracks == CONTACTS * DAYS * TRACKS_PER_DAY
    assert report.events == CONTACTS * DAYS * TRACKS_PER_DAY + CONTACTS
    # One email per contact per week: each day a seventh of the contacts.
    assert report.messages == sum(
        1
        for day in range(DAYS)
        for n in range(CONTACTS)
        if n % EMAIL_EVERY_DAYS == day % EMAIL_EVERY_DAYS
    )
    assert report.outbox == 0  # the relay removed every entry ingest queued
    # Retention with the defaults (365 and 90 days) has nothing to take within 30 days.
    assert report.deleted_by_retention == 0 and report.cleared_by_retention == 0
    assert len(lines) == DAYS and lines[-1].startswith(f"  day {DAYS}/{DAYS}:")

    # The counts are the database's, not the simulation's own arithmetic.
    db = Database(own_postgres_url)
    try:
        with db.connection() as connection:
            counted = {
                table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in ("contacts", "events", "messages", "outbox")
            }
            sent = connection.scalar(
                text("SELECT count(*) FROM messages WHERE html IS NOT NULL AND status <> 'sending'")
            )
            size = connection.scalar(text("SELECT pg_database_size(current_database())"))
    finally:
        db.dispose()
    assert counted == {
        "contacts": CONTACTS,
        "events": report.events,
        "messages": report.messages,
        "outbox": 0,
    }
    assert sent == report.messages  # each one rendered, kept and settled past sending
    # Measured a moment ago: free space and visibility maps may have grown a few pages since.
    assert abs(report.database_bytes - size) < 0.05 * size

    assert report.bytes_per_event > 0
    assert 0 < report.events_table_bytes_per_event < report.bytes_per_event
    assert report.bytes_per_contact > 0
    assert set(report.tables) >= {"contacts", "events", "messages", "outbox"}
    assert sum(total for total, _ in report.tables.values()) <= report.database_bytes
    printed = render(report)
    assert f"events {report.events:,}" in printed and "outbox 0 left" in printed
