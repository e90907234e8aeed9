"""A send that only an exit follows records the run's end with the message: the run closes
without a local activity, and what comes during that send (a goal, an operator) still counts."""

from __future__ import annotations

from typing import Any

import pytest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from temporal_journeys.store.db import Database
from temporal_journeys.workflows import search_attributes as sa
from temporal_journeys.workflows.contract import EXIT_UPDATE, MIGRATE_UPDATE
from temporal_journeys.workflows.starter import start_run
from temporal_journeys.workflows.types import MigrateRun, RunView
from tests.support import harness as h
from tests.support.channels import CHANNEL_QUEUE
from tests.support.fake_providers import Answer, FakeProviders

# Long enough for the test to act while the provider holds the call, under the 1 s timeout.
HELD = 0.6
STEPS: list[dict[str, Any]] = [
    {"id": "last-call", "send": {"channel": "email", "template": "ch-last"}},
    {"id": "done", "exit": {"reason": "series over"}},
]


def _tail(view: RunView, count: int) -> list[tuple[str | None, str]]:
    return [(entry.step, entry.kind) for entry in view.trace[-count:]]


def _spec(**more: Any) -> dict[str, Any]:
    key = h.unique("last-send")
    return {"key": key, "name": "Last send", "trigger": {"event": "test.started"}, **more}


async def _start(
    db: Database, client: Client, contact: str, spec: dict[str, Any]
) -> WorkflowHandle:
    version, journey = h.publish(db, {"steps": STEPS, **spec})
    return await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=CHANNEL_QUEUE,
        event=h.event("test.started"),
    )


async def _while_sending(fake: FakeProviders) -> None:
    fake.script("sendgrid", Answer(202, headers={"X-Message-Id": "held"}, delay=HELD))
    await h.wait_until(lambda: bool(fake.of("sendgrid")), "the provider to be called")


async def test_a_last_send_records_the_end_and_the_run_writes_nothing_after_it(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-last", subject="Last", text="The last one")
    contact = h.contact(engine_db)

    handle = await _start(engine_db, channel_client, contact, _spec())
    result, view = await h.finish(handle)

    assert (result.status, result.reason) == ("completed", "series over")
    assert _tail(view, 3) == [
        ("last-call", "sent"),
        ("done", "entered"),
        (None, "completed"),
    ]
    enrollment = h.assert_recorded(engine_db, view)
    assert (enrollment.exit_reason, enrollment.ended_at) == ("series over", view.trace[-1].at)
    # begin_enrollment only (this start was not admitted by a starter): no progress write.
    assert h.local_activities(await handle.fetch_history()) == 1
    assert len(fake_providers.accepted("sendgrid")) == 1


async def test_a_goal_during_the_last_send_still_converts_the_contact(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-last", subject="Last", text="The last one")
    contact = h.contact(engine_db)
    spec = _spec(goal={"event": "order.completed"})
    handle = await _start(engine_db, channel_client, contact, spec)

    await _while_sending(fake_providers)
    await h.signal(handle, "order.completed")
    result, view = await h.finish(handle)

    assert (result.status, result.reason) == ("converted", "goal order.completed")
    assert _tail(view, 4) == [
        ("last-call", "sent"),
        ("done", "entered"),
        (None, "completed"),
        (None, "converted"),
    ]
    enrollment = h.assert_recorded(engine_db, view)
    assert enrollment.converted and enrollment.exit_reason == "goal order.completed"
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(sa.STATUS) == "converted"


async def test_an_operator_exit_during_the_last_send_ends_the_run_as_exited(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-last", subject="Last", text="The last one")
    contact = h.contact(engine_db)
    handle = await _start(engine_db, channel_client, contact, _spec())

    await _while_sending(fake_providers)
    assert await handle.execute_update(EXIT_UPDATE, "support asked") == "last-call"
    result, view = await h.finish(handle)

    assert (result.status, result.reason) == ("exited", "support asked")
    assert h.assert_recorded(engine_db, view).exit_reason == "support asked"


async def test_a_migration_asked_for_during_the_last_send_is_refused_as_too_late(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-last", subject="Last", text="The last one")
    contact = h.contact(engine_db)
    spec = _spec()
    handle = await _start(engine_db, channel_client, contact, spec)
    version, newer = h.publish(
        engine_db, {**spec, "steps": [STEPS[0], {"id": "more", "wait": "P1D"}, STEPS[1]]}
    )

    await _while_sending(fake_providers)
    request = MigrateRun(journey=newer, version=version, steps={"last-call": "more"})
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(MIGRATE_UPDATE, request, result_type=str)
    result, view = await h.finish(handle)

    assert isinstance(refused.value.cause, ApplicationError)
    assert refused.value.cause.message == "the run completed before it could move"
    assert result.status == "completed"
    assert h.assert_recorded(engine_db, view).status == "completed"
