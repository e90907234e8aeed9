"""The enroll API admits a chunk of contacts as a batch (``admission.start_entries``): a
number of statements that does not grow with the chunk, and per contact the same answer and
the same re-entry rules as one start at a time, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime

import pytest_asyncio
import yaml
from sqlalchemy import event, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.activities.date_entry import DateEntryActivities, Due
from temporal_journeys.api.services.journeys import ENROLL_CHUNK, enroll
from temporal_journeys.journeys.records import ContactSnapshot
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import DateAttributeTrigger
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment
from temporal_journeys.workflows.date_entry import AdmitDatesResult
from tests.support import harness as h
from tests.support.own_worker import own_worker

# An hour's wait: a run enrolled here is still running when the next enrolment comes.
WAITING = """
key: {key}
name: Batch admission
trigger: {{event: user.signed_up}}
steps:
  - id: wait
    wait: PT1H
  - id: done
    exit: {{}}
"""


@pytest_asyncio.fixture
async def engine(
    database_url: str, time_env: WorkflowEnvironment
) -> AsyncIterator[tuple[Database, str]]:
    """A worker of its own on the backend under test, and the API's own ``Database``."""
    async with own_worker(time_env.client, database_url, "batch-admission") as (settings, db):
        yield db, settings.task_queue


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    seen: list[str] = []

    def keep(_conn, _cursor, statement, _parameters, _context, _many) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", keep)


def _rows(db: Database, key: str, contact_id: str) -> list[Enrollment]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Enrollment)
                .where(Enrollment.journey_key == key, Enrollment.contact_id == contact_id)
                .order_by(Enrollment.started_at)
            )
        )


def _admitted(history: object) -> bool:
    started = history.events[0].workflow_execution_started_event_attributes  # type: ignore[attr-defined]
    return b'"admission":{' in started.input.payloads[0].data


async def test_a_chunk_is_admitted_in_a_number_of_statements_that_does_not_grow_with_it(
    engine: tuple[Database, str], client: Client, time_env: WorkflowEnvironment
):
    db, queue = engine
    _, journey = h.publish(db, WAITING.format(key=h.unique("batch-count")))
    counts, started = [], []
    for size in (3, ENROLL_CHUNK):
        users = [h.unique("user") for _ in range(size)]
        with statements(db) as seen:
            results = await enroll(db, client, journey.key, users, {}, queue)
        assert [(r.userId, r.workflow_id, r.error) for r in results] == [
            (u, h.suite_names().workflow_id(journey.key, u), None) for u in users
        ]
        counts.append(len(seen))
        started += [r.workflow_id or "" for r in results]
        with db.transaction() as session:
            recorded = session.scalars(
                select(Enrollment.contact_id).where(Enrollment.journey_key == journey.key)
            ).all()
        assert set(users) <= set(recorded)
    # The journey read, the contacts loaded (one SELECT, the new ones inserted and read back),
    # on Postgres the locks and the latest entries, the enrollments' one INSERT, and the runs'
    # first funnel rows (one INSERT) and their counters (one upsert).
    assert counts[0] == counts[1] <= 10, counts
    # One chunk more, a chunk's statements more (the journey is read once per request).
    users = [h.unique("user") for _ in range(ENROLL_CHUNK + 1)]
    with statements(db) as seen:
        results = await enroll(db, client, journey.key, users, {}, queue)
    assert counts[0] < len(seen) < 2 * counts[0], (len(seen), counts)
    # Every run to its end: one terminated while a task of it is out would keep the shared
    # test server's clock from skipping for the tests after it.
    started += [r.workflow_id or "" for r in results]
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        ended = [await client.get_workflow_handle(w).result() for w in started]
    assert {result["status"] for result in ended} == {"completed"}


async def test_a_mixed_batch_keeps_each_contacts_answer_and_re_entry_rule(
    engine: tuple[Database, str], client: Client, time_env: WorkflowEnvironment
):
    db, queue = engine
    _, journey = h.publish(db, WAITING.format(key=h.unique("batch-mixed")))
    key = journey.key
    names = h.suite_names()
    done, running, new, other = (h.unique(p) for p in ("done", "running", "new", "other"))
    await enroll(db, client, key, [done], {}, queue)
    first_done = client.get_workflow_handle(names.workflow_id(key, done))
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        assert (await first_done.result())["status"] == "completed"
    await enroll(db, client, key, [running], {}, queue)
    running_run = await client.get_workflow_handle(names.workflow_id(key, running)).describe()

    # Refused by ``re_entry: never``, already running, new, new, and the first new one again.
    users = [done, running, new, other, new]
    results = await enroll(db, client, key, users, {}, queue)

    assert [(r.userId, r.workflow_id, r.error) for r in results] == [
        (u, names.workflow_id(key, u), None) for u in users
    ]
    # The running contact's start reached its run; the new contact named twice began one run.
    described = await client.get_workflow_handle(names.workflow_id(key, running)).describe()
    assert described.run_id == running_run.run_id
    assert [r.id for r in _rows(db, key, running)] == [running_run.run_id]
    assert len(_rows(db, key, new)) == len(_rows(db, key, other)) == 1
    postgres = db.engine.dialect.name == "postgresql"
    for user in (new, other):
        history = await client.get_workflow_handle(names.workflow_id(key, user)).fetch_history()
        # On SQLite nothing vouches for the rule: the run checks it, as before.
        assert _admitted(history) is postgres
    again = client.get_workflow_handle(names.workflow_id(key, done))
    assert not _admitted(await again.fetch_history())  # entered before: left to the run

    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        finished = {
            u: (await client.get_workflow_handle(names.workflow_id(key, u)).result())
            for u in (done, running, new, other)
        }
    assert (finished[done]["status"], finished[done]["reason"]) == (
        "skipped",
        "re-entry: never (entered before)",
    )
    assert {finished[u]["status"] for u in (running, new, other)} == {"completed"}
    assert [r.status for r in _rows(db, key, done)] == ["completed", "skipped"]
    for user in (running, new, other):
        assert [r.status for r in _rows(db, key, user)] == ["completed"]


async def test_a_date_fires_batch_is_admitted_in_the_same_statements_whatever_its_size(
    engine: tuple[Database, str], client: Client, time_env: WorkflowEnvironment
):
    """Date-based entry (``DateEntryActivities._enter``): a batch's locks, lookups, admission
    and rows in a number of statements that does not grow with it; a second fire of the same
    window finds every run entered and starts none."""
    db, queue = engine
    spec = yaml.safe_load(WAITING.format(key=h.unique("batch-dates")))
    spec["trigger"] = {"date_attribute": "birthday", "yearly": True, "at": "09:00"}
    version, journey = h.publish(db, spec)
    assert isinstance(journey.trigger, DateAttributeTrigger)
    settings = Settings(database_url=str(db.engine.url), task_queue=queue)
    activities = DateEntryActivities(db, settings)
    occurrence = date(2026, 5, 1)
    moment = datetime(2026, 5, 1, 9, tzinfo=UTC)
    counts, started = [], []
    for size in (2, 20):
        batch = [
            Due(ContactSnapshot(id=h.unique("born")), "1990-05-01", occurrence, moment)
            for _ in range(size)
        ]
        with db.transaction() as session:  # contacts exist when a date finds them
            for due in batch:
                contacts_store.upsert(session, due.contact.id, {})
        result = AdmitDatesResult()
        with statements(db) as seen:
            await activities._enter(client, journey, version, journey.trigger, batch, result)
        counts.append(len(seen))
        assert (result.entered, result.already, result.refused) == (size, 0, [])
        again = AdmitDatesResult()
        await activities._enter(client, journey, version, journey.trigger, batch, again)
        assert (again.entered, again.already) == (0, size)
        names = h.suite_names()
        started += [names.workflow_id(journey.key, d.contact.id, str(occurrence)) for d in batch]
    # The existing runs read, the locks, the lookup again under them, the latest entries
    # (Postgres: two statements), the rows' one INSERT, the first funnel rows' INSERT and
    # their counters' upsert.
    assert counts[0] == counts[1] <= 8, counts
    async with time_env.time_skipping_unlocked():  # type: ignore[attr-defined]
        ended = [await client.get_workflow_handle(w).result() for w in started]
    assert {result["status"] for result in ended} == {"completed"}
