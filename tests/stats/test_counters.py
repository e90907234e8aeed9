"""The counts behind the journey page without reading every row: funnel rows counted into
``step_counters`` as the runs write them, and each message keeping its run's variant
(``messages.variant``) so the stats per variant need no join to the runs. Both must give what
the rows themselves give: the time-range path still groups ``step_events``, and the tests
compare the two."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select, text
from temporalio.client import Client

from temporal_journeys.api.services.stats import journey_stats
from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import stats as stats_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import downgrade, upgrade
from temporal_journeys.store.models import Message, StepCounter, StepEvent
from tests.support import harness as h

SPLIT = """
key: {key}
name: Subject line test
trigger: {{api: true}}
steps:
  - id: pick
    split:
      variants:
        - {{name: plain, weight: 50, next: plain}}
        - {{name: emoji, weight: 50, next: emoji}}
  - id: plain
    send: {{channel: email, template: counters-plain}}
    next: done
  - id: emoji
    send: {{channel: email, template: counters-emoji}}
  - id: done
    exit: {{}}
"""
EVER = datetime(2000, 1, 1, tzinfo=UTC)  # a time range that takes every row: the grouping


def _grouped(session, key: str) -> list[tuple[int, str, str | None, str, int]]:
    """The funnel rows grouped, as the time-range path reads them."""
    return _sorted(stats_store.step_event_counts(session, key, stats_store.Window(since=EVER)))


def _counted(session, key: str) -> list[tuple[int, str, str | None, str, int]]:
    return _sorted(stats_store.step_event_counts(session, key))


def _sorted(
    rows: list[tuple[int, str, str | None, str, int]],
) -> list[tuple[int, str, str | None, str, int]]:
    return sorted(rows, key=lambda row: (row[0], row[1], row[2] or "", row[3]))


async def test_runs_count_their_steps_and_their_messages_keep_the_variant(
    client: Client, engine_db: Database
):
    h.template(engine_db, "counters-plain", subject="Our new range", text="See it")
    h.template(engine_db, "counters-emoji", subject="Our new range ✨", text="See it")
    version, journey = h.publish(engine_db, SPLIT.format(key=h.unique("counters")))
    contacts = [h.contact(engine_db) for _ in range(8)]
    await asyncio.gather(*(h.start(client, journey, version, c) for c in contacts))
    ended = await h.wait_for_enrollments(engine_db, journey.key, len(contacts))

    with engine_db.transaction() as session:
        messages = session.execute(
            select(Message.contact_id, Message.step_id, Message.variant).where(
                Message.journey_key == journey.key
            )
        ).all()
        counted, grouped = _counted(session, journey.key), _grouped(session, journey.key)
        from_counters = journey_stats(session, journey.key)
        from_rows = journey_stats(session, journey.key, since=EVER)
    variants = {e.contact_id: e.variant for e in ended}
    assert len(messages) == len(contacts)
    for contact, step, variant in messages:
        assert variant == variants[contact] == step  # each variant sends its own step
    assert counted == grouped and counted
    entered = {(step, kind): n for _, step, v, kind, n in counted if v is None}
    assert entered[("pick", "entered")] == len(contacts)
    assert [v.model_dump() for v in from_counters] == [v.model_dump() for v in from_rows]
    [stats] = from_counters
    per_variant = {v.variant: v.messages for v in stats.variants}
    assert {v: m.sent for v, m in per_variant.items() if m} == {
        v: list(variants.values()).count(v) for v in set(variants.values())
    }


def _write(db: Database, entries: list[TraceEntry], *, variant: str | None) -> None:
    with db.connection() as connection:
        enrollments_store.write_progress(
            connection,
            enrollment_id="run-1",
            workflow_id="journey/counted/u1",
            journey_key="counted",
            version=1,
            contact_id="u1",
            correlation=None,
            started_at=entries[0].at,
            entries=entries,
            status="running",
            step=entries[-1].step,
            variant=variant,
            reason=None,
        )


def test_a_retried_progress_write_counts_nothing_twice(db: Database):
    at = datetime(2026, 11, 1, 9, tzinfo=UTC)
    first = [
        TraceEntry(seq=1, at=at, step="pick", kind="entered"),
        TraceEntry(seq=2, at=at, step="pick", kind="variant", detail="a"),
        TraceEntry(seq=3, at=at, step=None, kind="started"),  # names no step: not counted
    ]
    later = [TraceEntry(seq=4, at=at + timedelta(hours=1), step="send", kind="entered")]
    for _ in range(2):  # a retried activity writes the same entries again
        _write(db, first, variant=None)
        _write(db, [*first, *later], variant="a")  # and a later one overlaps an earlier one
    with db.transaction() as session:
        counted, grouped = _counted(session, "counted"), _grouped(session, "counted")
        rows = session.scalar(select(func.count()).select_from(StepEvent))
        slots = session.scalar(select(func.count(func.distinct(StepCounter.slot))))
    assert (
        counted
        == grouped
        == [
            (1, "pick", None, "entered", 1),
            (1, "pick", None, "variant", 1),
            (1, "send", "a", "entered", 1),
        ]
    )
    assert rows == 4 and slots == 1  # one run: one slot


@pytest.fixture(params=["postgres", "sqlite"])
def before_0013(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'before.db'}"
    else:
        url = request.getfixturevalue("own_postgres_url")
        downgrade(url, "0012_step_since")
    upgrade(url, "0012_step_since")
    return url


ENROLLMENT = """INSERT INTO enrollments (id, workflow_id, journey_key, version, contact_id,
    status, variant, converted, started_at)
    VALUES (:id, :workflow, 'j', 1, 'c', 'completed', :variant, false, :at)"""
MESSAGE = """INSERT INTO messages (id, idempotency_key, contact_id, journey_key, version, step_id,
    workflow_id, channel, template, provider, status, status_history, created_at, updated_at,
    test) VALUES (:id, :key, 'c', :journey, 1, 's', :workflow, 'email', 't', 'sendgrid', 'sent',
    '[]', :at, :at, false)"""
STEP = """INSERT INTO step_events (id, enrollment_id, journey_key, version, step_id, contact_id,
    kind, variant, at) VALUES (:id, :run, 'j', 1, :step, 'c', :kind, :variant, :at)"""


def test_migration_0013_gives_old_messages_their_variant_and_counts_old_funnel_rows(
    before_0013: str,
):
    engine = create_engine(before_0013)
    at = "2026-11-01 09:00:00"
    # Two entries of one contact (one workflow id), the second an id the first's prefixes
    # with LIKE's own wildcard: each message must find its own entry.
    runs = {"e_1": "a", "e_10": "b", "e%1": None}
    with engine.begin() as connection:
        for run, variant in runs.items():
            connection.execute(
                text(ENROLLMENT),
                {"id": run, "workflow": "journey/j/c", "variant": variant, "at": at},
            )
            connection.execute(
                text(MESSAGE),
                {
                    "id": f"m-{run}",
                    "key": f"journey/j/c/{run}/s/1",
                    "journey": "j",
                    "workflow": "journey/j/c",
                    "at": at,
                },
            )
        connection.execute(
            text(MESSAGE),
            {"id": "broadcast", "key": "b/1", "journey": None, "workflow": None, "at": at},
        )
        for n, (run, step, kind, variant) in enumerate(
            [
                ("e_1", "s", "entered", None),
                ("e_1", "s", "sent", "a"),
                ("e_10", "s", "entered", None),
                ("e_10", "s", "sent", "b"),
                ("e_10", None, "started", None),
            ]
        ):
            connection.execute(
                text(STEP),
                {
                    "id": str(n),
                    "run": run,
                    "step": step,
                    "kind": kind,
                    "variant": variant,
                    "at": at,
                },
            )
    upgrade(before_0013)
    with engine.connect() as connection:
        variants = dict(connection.execute(text("SELECT id, variant FROM messages")).all())
        counters = sorted(
            connection.execute(
                text("SELECT step_id, variant, kind, count FROM step_counters")
            ).all()
        )
    engine.dispose()

    assert variants == {"m-e_1": "a", "m-e_10": "b", "m-e%1": None, "broadcast": None}
    assert [tuple(row) for row in counters] == [
        ("s", "", "entered", 2),
        ("s", "a", "sent", 1),
        ("s", "b", "sent", 1),
    ]
    # And the stats read them as the rows say.
    database = Database(before_0013)
    try:
        with database.transaction() as session:
            assert _counted(session, "j") == _grouped(session, "j")
    finally:
        database.dispose()
