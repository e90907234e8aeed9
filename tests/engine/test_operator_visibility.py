"""Operators see where a contact is: search attributes, current details, and the trace."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, StepEvent
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.contract import STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h
from tests.support.specs import ABANDONED_CART, SHORT_WAIT


async def test_a_run_waiting_in_wait_for_shows_step_status_details_and_trace(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment
):
    h.template(
        engine_db,
        "cart-reminder",
        subject="You left {{ event.item | default: 'your cart' }}",
        text="Still there?",
    )
    version, journey = h.publish(engine_db, ABANDONED_CART.format(key=h.unique("cart")))
    contact = h.contact(engine_db)
    handle = await h.start(
        client, journey, version, contact, h.event("cart.abandoned", cart_id="v", item="a hat")
    )
    await time_env.sleep(timedelta(hours=2))

    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.JOURNEY_KEY) == journey.key
    assert attributes.get(sa.JOURNEY_VERSION) == version
    assert attributes.get(sa.CONTACT_ID) == h.suite_names().shown(contact)
    assert attributes.get(sa.STEP) == "opened?"
    assert attributes.get(sa.STATUS) == "running"

    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata.current_details
    assert "waiting for email.opened (message reminder) on step opened? until" in details
    view = await handle.query(STATE_QUERY, result_type=RunView)
    assert view.step == "opened?" and view.status == "running"
    assert view.until is not None
    assert h.close(view.until - view.trace[0].at, timedelta(days=1, hours=1))
    assert [(e.step, e.kind) for e in view.trace] == [
        ("wait-1h", "entered"),
        ("wait-1h", "waited"),
        ("reminder", "entered"),
        ("reminder", "sent"),
        ("opened?", "entered"),
    ]

    # The funnel rows and the enrollment are in the database while the run waits.
    with engine_db.transaction() as session:
        enrollment = session.query(Enrollment).filter_by(workflow_id=handle.id).one()
        steps = [
            row.step_id
            for row in session.query(StepEvent)
            .filter_by(enrollment_id=enrollment.id)
            .order_by(StepEvent.at, StepEvent.id)
        ]
    assert enrollment.status == "running" and enrollment.current_step == "opened?"
    assert steps.count("opened?") == 1 and "reminder" in steps and "wait-1h" in steps

    await h.signal(handle, "order.completed")
    result, _ = await h.finish(handle)
    attributes = (await handle.describe()).typed_search_attributes
    assert result.status == "converted"
    assert attributes.get(sa.STATUS) == "converted"


async def test_a_wait_of_a_second_records_its_progress_with_the_end_of_the_run(
    client: Client, engine_db: Database
):
    """Waits under a few seconds skip the progress write and the search-attribute upsert
    before them; every funnel row still reaches the database, once."""
    h.template(engine_db, "short-hello", subject="Hello", text="Hello")
    version, journey = h.publish(engine_db, SHORT_WAIT.format(key=h.unique("short")))
    contact = h.contact(engine_db)
    handle = await h.start(client, journey, version, contact, h.event("user.signed_up"))
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert len(h.messages(engine_db, contact)) == 2
    attributes = (await handle.describe()).typed_search_attributes
    # Set when the run started, not moved for the pause: the next durable wait would.
    assert attributes.get(sa.STEP) == "hello" and attributes.get(sa.STATUS) == "completed"
    enrollment = h.assert_recorded(engine_db, view)  # every funnel row, once
    assert enrollment.status == "completed" and not enrollment.converted
    assert enrollment.ended_at is not None
    history = await handle.fetch_history()
    assert h.local_activities(history) == 1  # begin_enrollment; the last send recorded the end
    # Decided by the run's input, not a patch: no marker, and no TemporalChangeVersion upsert
    # (a visibility write on the server) before the pause.
    markers = {e.marker_recorded_event_attributes.marker_name for e in history.events}
    assert markers == {"", "core_local_activity"}
    upserts = [e.upsert_workflow_search_attributes_event_attributes for e in history.events]
    upserted = [name for u in upserts for name in u.search_attributes.indexed_fields]
    assert upserted == [sa.STATUS.name]
