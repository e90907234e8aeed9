"""The date-entry candidate query reads the birthday's month and day through its expression
index (migration 0014_date_entry_index) on Postgres and SQLite, a generic plan included, and
still finds exactly the contacts whose date falls on the days asked."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, insert, text

from temporal_journeys.store import date_entry
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact

CONTACTS = 5000
DAYS = ["12-01", "12-02", "12-03"]


def _birthday(n: int) -> str:
    return (date(1960, 1, 1) + timedelta(days=n * 7919 % 18000)).isoformat()


@pytest.fixture
def base(db: Database) -> Database:
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = [
        {
            "id": f"c{n:05}",
            "timezone": "UTC",
            "traits": {"birthday": _birthday(n), "plan": "free"},
            "tags": [],
            "scores": {},
            "unsubscribed": [],
            "created_at": now,
            "updated_at": now,
        }
        for n in range(CONTACTS)
    ]
    # The forms the query accepts: a date-time (its date counts), spaces around the date.
    rows[0]["traits"]["birthday"] = "1984-12-02T08:30:00Z"
    rows[1]["traits"]["birthday"] = " 1990-12-03 "
    rows[2]["traits"] = {"anniversary": "2001-12-01"}  # another trait: not a candidate
    with db.engine.begin() as connection:
        connection.execute(insert(Contact.__table__), rows)
        connection.execute(text("ANALYZE"))  # statistics, as a live base has them
    return db


def _captured(db: Database) -> tuple[list[Any], tuple[str, Any]]:
    statements: list[tuple[str, Any]] = []

    def keep(_c: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        with db.engine.connect() as connection:
            rows = date_entry.candidates(connection, "birthday", DAYS, yearly=True)
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)
    return rows, statements[-1]


def test_the_candidates_are_the_contacts_born_on_those_days(base: Database):
    rows, _ = _captured(base)
    expected = sorted(f"c{n:05}" for n in range(3, CONTACTS) if _birthday(n)[5:] in DAYS) + [
        "c00000",
        "c00001",
    ]
    assert [row.id for row in rows] == sorted(expected)
    assert {row.id: row.date for row in rows}["c00001"] == "1990-12-03"


def test_the_candidate_query_uses_the_birthday_index(base: Database):
    _, (statement, parameters) = _captured(base)
    with base.engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            assert any("USING INDEX ix_contacts_birthday_day" in row[3] for row in plan)
            return
        for mode in ("force_custom_plan", "force_generic_plan"):
            # A prepared statement's generic plan too: the attribute and the positions are
            # constants in the statement, so the expression is the index's with any plan.
            connection.exec_driver_sql(f"SET plan_cache_mode = {mode}")
            found = "\n".join(
                row[0]
                for row in connection.exec_driver_sql(
                    "EXPLAIN (COSTS OFF) " + statement, parameters
                )
            )
            assert "Index Scan on ix_contacts_birthday_day" in found, (mode, found)
