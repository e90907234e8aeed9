"""Runs reporting progress at once share a transaction (``activities/progress.py``): the rows
and counters are those each report alone would have written, a report that cannot be written
fails alone, and a run's second report waits for the next transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import IntegrityError

from temporal_journeys.activities.progress import ProgressWriter
from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.store import stats as stats_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment
from temporal_journeys.workflows.activity_types import RecordProgressInput

AT = datetime(2026, 11, 1, 9, tzinfo=UTC)
EVER = stats_store.Window(since=datetime(2000, 1, 1, tzinfo=UTC))


def _report(n: int, *, status: str = "converted", seq: int = 2) -> RecordProgressInput:
    return RecordProgressInput(
        enrollment_id=f"run-{n}",
        workflow_id=f"journey/together/u{n}",
        journey_key="together",
        version=1,
        contact_id=f"u{n}",
        entries=[
            TraceEntry(seq=seq - 1, at=AT, step="wait", kind="entered"),
            TraceEntry(seq=seq, at=AT + timedelta(minutes=seq), step="wait", kind=status),
        ],
        status=status,
        step="wait",
        variant=None,
    )


@contextmanager
def _commits(db: Database) -> Iterator[list[int]]:
    seen: list[int] = []

    def count(_connection: object) -> None:
        seen.append(1)

    event.listen(db.engine, "commit", count)
    try:
        yield seen
    finally:
        event.remove(db.engine, "commit", count)


def _statuses(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        return {
            row.id: row.status for row in session.execute(select(Enrollment.id, Enrollment.status))
        }


async def test_runs_reporting_at_once_share_one_transaction(db: Database):
    writer = ProgressWriter(db)
    with _commits(db) as commits:
        await asyncio.gather(*(writer.record(_report(n)) for n in range(20)))
    assert len(commits) == 1
    assert _statuses(db) == {f"run-{n}": "converted" for n in range(20)}
    with db.transaction() as session:
        counted = stats_store.step_event_counts(session, "together")
        grouped = stats_store.step_event_counts(session, "together", EVER)
    # The counters hold what the rows hold, added up over the runs' slots.
    assert sorted(counted) == sorted(grouped)
    assert {(step, kind): n for _, step, _, kind, n in counted} == {
        ("wait", "entered"): 20,
        ("wait", "converted"): 20,
    }


async def test_a_report_that_cannot_be_written_fails_alone(db: Database):
    writer = ProgressWriter(db)
    # No journey key: refused by the database (NOT NULL), as a report it cannot take would be.
    broken = _report(99).model_copy(update={"journey_key": None})
    outcomes = await asyncio.gather(
        *(writer.record(_report(n)) for n in range(5)),
        writer.record(broken),
        return_exceptions=True,
    )
    assert outcomes[:5] == [None] * 5
    assert isinstance(outcomes[5], IntegrityError)
    assert _statuses(db) == {f"run-{n}": "converted" for n in range(5)}


async def test_a_runs_second_report_waits_for_the_next_transaction(db: Database):
    # A retried local activity can report again while its first attempt still waits: one
    # statement may not update a row twice, and the later report must land last.
    writer = ProgressWriter(db)
    with _commits(db) as commits:
        await asyncio.gather(
            writer.record(_report(1, status="waited", seq=2)),
            writer.record(_report(2)),
            writer.record(_report(1, status="converted", seq=4)),
        )
    assert len(commits) == 2
    assert _statuses(db) == {"run-1": "converted", "run-2": "converted"}


@pytest.mark.parametrize("reports", [1, 250])
async def test_a_writer_takes_any_number_of_reports(db: Database, reports: int):
    writer = ProgressWriter(db)
    with _commits(db) as commits:
        await asyncio.gather(*(writer.record(_report(n)) for n in range(reports)))
    assert len(_statuses(db)) == reports
    assert len(commits) == (1 if reports == 1 else 2)  # at most 200 to a transaction


async def test_a_writer_stopped_mid_write_tells_its_reports_and_writes_again_after(db: Database):
    writer = ProgressWriter(db)
    waiting = [asyncio.ensure_future(writer.record(_report(n))) for n in range(3)]
    await asyncio.sleep(0)  # the three queued, the writer's task created
    await asyncio.sleep(0)  # the writer has taken the batch and waits for its thread
    assert writer._writing is not None and len(writer._queue) == 0
    writer._writing.cancel()  # as when the worker stops
    outcomes = await asyncio.wait_for(asyncio.gather(*waiting, return_exceptions=True), 10)
    assert all(isinstance(outcome, asyncio.CancelledError) for outcome in outcomes)
    await writer.record(_report(9))
    assert "run-9" in _statuses(db)
