"""Entries admitted by their starter begin without a local activity; the rest stay with the run."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.worker import Worker

from temporal_journeys.api.services.admission import start_entry
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import stats as stats_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment
from temporal_journeys.workflows.contract import EVENT_SIGNAL
from tests.support import harness as h
from tests.support.dev_engine import DevEngine
from tests.support.specs import ABANDONED_CART, SHORT_WAIT


async def _enter(
    db: Database,
    client: Client,
    journey: Journey,
    version: int,
    contact_id: str,
    event: JourneyEvent | None = None,
    task_queue: str = h.TASK_QUEUE,
    **options: Any,
) -> WorkflowHandle:
    async with db.held_connection() as connection:
        return await start_entry(
            client,
            connection,
            journey=journey,
            version=version,
            contact=contacts_store.load_snapshot(connection, contact_id),
            task_queue=task_queue,
            event=event or h.event("user.signed_up"),
            **options,
        )


def _admitted(history: object) -> bool:
    started = history.events[0].workflow_execution_started_event_attributes  # type: ignore[attr-defined]
    return b'"admission":{' in started.input.payloads[0].data


async def test_an_entry_admitted_by_its_starter_and_closed_by_its_last_send_takes_no_local_activity(
    client: Client, engine_db: Database
):
    """The starter records the entry, the last send (only an exit after it) records the end:
    the run itself never writes, and the database holds its whole trace, to the moment."""
    h.template(engine_db, "short-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SHORT_WAIT.format(key=h.unique("admitted")))
    contact = h.contact(engine_db, plan="pro")

    handle = await _enter(engine_db, client, journey, version, contact)
    with engine_db.transaction() as session:
        assert session.query(Enrollment).filter_by(workflow_id=handle.id).count() == 1
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert len(h.messages(engine_db, contact)) == 2
    history = await handle.fetch_history()
    assert _admitted(history)
    assert h.local_activities(history) == 0
    enrollment = h.assert_recorded(engine_db, view)
    assert (enrollment.id, enrollment.status) == (handle.result_run_id, "completed")
    assert enrollment.ended_at == view.trace[-1].at
    assert [(e.step, e.kind) for e in view.trace[-3:]] == [
        ("again", "sent"),
        ("done", "entered"),
        (None, "completed"),
    ]


async def test_a_contact_who_entered_before_is_left_to_the_run_which_skips_them(
    client: Client, engine_db: Database
):
    h.template(engine_db, "short-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SHORT_WAIT.format(key=h.unique("again")))
    contact = h.contact(engine_db)
    await h.finish(await _enter(engine_db, client, journey, version, contact))

    second = await _enter(engine_db, client, journey, version, contact)
    result, _ = await h.finish(second)

    assert (result.status, result.reason) == ("skipped", "re-entry: never (entered before)")
    history = await second.fetch_history()
    assert not _admitted(history)
    assert h.local_activities(history) == 1  # begin_enrollment, which refused
    assert len(h.messages(engine_db, contact)) == 2  # the first entry's two, nothing more
    with engine_db.transaction() as session:
        statuses = [e.status for e in session.query(Enrollment).filter_by(contact_id=contact)]
    assert sorted(statuses) == ["completed", "skipped"]


async def test_the_starters_row_names_the_entry_before_its_run_has_taken_a_step(
    client: Client, engine_db: Database, plugin: JourneysPlugin
):
    """Operators and the contact's next events see the entry, its correlation included, as
    soon as the start returns: no worker polls the run's queue until the row has been read,
    so only the starter could have written it."""
    h.template(engine_db, "short-hello", subject="Hello", text="Hello")
    spec = SHORT_WAIT.format(key=h.unique("correlated")).replace(
        "{event: user.signed_up}", "{event: cart.abandoned, correlate: cart_id}"
    )
    version, journey = h.publish(engine_db, spec)
    contact = h.contact(engine_db)
    queue = h.unique("unpolled")

    handle = await _enter(
        engine_db,
        client,
        journey,
        version,
        contact,
        event=h.event("cart.abandoned", cart_id="cart-7"),
        task_queue=queue,
    )
    with engine_db.transaction() as session:
        row = session.query(Enrollment).filter_by(workflow_id=handle.id).one()
    assert (row.id, row.status, row.current_step) == (handle.result_run_id, "running", "hello")
    assert (row.correlation, handle.id) == (
        "cart-7",
        h.suite_names().workflow_id(journey.key, contact, "cart-7"),
    )

    # A run left waiting for a worker would hold the time-skipping clock for later tests.
    async with Worker(client, task_queue=queue, plugins=[plugin]):
        result, _ = await h.finish(handle)
    assert result.status == "completed"


async def test_an_admitted_cart_is_recorded_by_its_starter_and_its_sends_without_a_local_activity(
    client: Client, engine_db: Database
):
    """The starter records the first step entered (the run keeps it in its trace at the
    starter's moment), each send the wait after it (before its timer) and the last send the
    end: the run never writes, and the funnel rows and their counters hold its whole trace."""
    for template in ("cart-reminder", "cart-discount", "cart-last-chance"):
        h.template(engine_db, template, subject="Your cart", text="Still there")
    version, journey = h.publish(engine_db, ABANDONED_CART.format(key=h.unique("cart")))
    contact = h.contact(engine_db)

    cart = h.event("cart.abandoned", cart_id="c1")
    handle = await _enter(engine_db, client, journey, version, contact, event=cart)
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert len(h.messages(engine_db, contact)) == 3
    history = await handle.fetch_history()
    assert _admitted(history)
    assert h.local_activities(history) == 0
    enrollment = h.assert_recorded(engine_db, view, correlation="c1")
    assert view.trace[0].at == enrollment.started_at  # the starter's moment
    waits = [(e.step, e.kind) for e in view.trace if e.step in ("opened?", "wait-3d")]
    assert waits == [
        ("opened?", "entered"),
        ("opened?", "timeout"),
        ("wait-3d", "entered"),
        ("wait-3d", "waited"),
    ]
    with engine_db.transaction() as session:
        counted = stats_store.step_event_counts(session, journey.key)
        grouped = stats_store.step_event_counts(
            session, journey.key, stats_store.Window(since=enrollment.started_at)
        )
    assert sorted(counted) == sorted(grouped)
    assert {(step, kind) for _, step, _, kind, _ in counted} >= {("wait-1h", "entered")}


# Each page view goes round the loop: a few of them make the run continue as new.
VIEWS = """
key: {key}
name: Counts page views
trigger: {{event: lead.created}}
exit_on: [{{event: unsubscribed}}]
steps:
  - id: viewed?
    wait_for: {{event: page.viewed, timeout: P30D}}
    on_timeout: done
  - id: count
    update: {{score: {{views: 1}}}}
    next: viewed?
  - id: done
    exit: {{}}
"""


async def test_a_trigger_that_reaches_a_run_continued_as_new_records_no_second_entry(
    dev_engine: DevEngine, engine_db: Database
):
    """The run alive answers the start with its latest run id; the entry stays recorded under
    its first one's (a real server says which: the time-skipping one does not)."""
    client = dev_engine.client
    version, journey = h.publish(engine_db, VIEWS.format(key=h.unique("views")))
    contact = h.contact(engine_db)
    lead = h.event("lead.created")
    first = await _enter(
        engine_db,
        client,
        journey,
        version,
        contact,
        lead,
        dev_engine.task_queue,
        continue_as_new_after=12,
    )
    latest = client.get_workflow_handle(first.id)
    for _ in range(4):
        await latest.signal(EVENT_SIGNAL, h.event("page.viewed"))

    async def continued() -> bool:
        return (await latest.describe()).run_id != first.result_run_id

    for _ in range(100):
        if await continued():
            break
        await asyncio.sleep(0.1)
    assert await continued(), "the run never continued as new"

    again = await _enter(
        engine_db,
        client,
        journey,
        version,
        contact,
        h.event("lead.created"),
        dev_engine.task_queue,
    )
    assert again.id == first.id and again.result_run_id != first.result_run_id
    assert again.first_execution_run_id == first.result_run_id
    with engine_db.transaction() as session:
        rows = session.query(Enrollment).filter_by(workflow_id=first.id).all()
    assert [(row.id, row.status) for row in rows] == [(first.result_run_id, "running")]
    await latest.signal(EVENT_SIGNAL, h.event("unsubscribed"))
    assert (await latest.result())["status"] == "exited"
