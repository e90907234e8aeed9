"""Helpers for journey workflow tests: publish specs, make contacts, start runs, read traces."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.records import JourneyEvent, TraceEntry
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Message, StepEvent
from temporal_journeys.workflows.codec import encryption_codec
from temporal_journeys.workflows.contract import EVENT_SIGNAL, STATE_QUERY
from temporal_journeys.workflows.starter import RunNames, names_of, start_run
from temporal_journeys.workflows.types import JourneyResult, RunView

TASK_QUEUE = "journeys-test"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def publish(db: Database, spec: str | dict[str, Any], **overrides: Any) -> tuple[int, Journey]:
    document = yaml.safe_load(spec) if isinstance(spec, str) else dict(spec)
    document.update(overrides)
    journey = parse_journey(document)
    with db.transaction() as session:
        return journeys_store.publish(session, journey), journey


def template(db: Database, key: str, channel: str = "email", **parts: str | None) -> None:
    with db.transaction() as session:
        templates_store.put(session, key, channel, **parts)


def contact(db: Database, id: str | None = None, **traits: Any) -> str:
    contact_id = id or unique("contact")
    traits.setdefault("email", f"{contact_id}@example.com")
    with db.transaction() as session:
        contacts_store.upsert(session, contact_id, traits)
    return contact_id


def event(name: str, **properties: Any) -> JourneyEvent:
    return JourneyEvent(id=unique("evt"), name=name, properties=properties)


async def start(
    client: Client,
    journey: Journey,
    version: int,
    contact_id: str,
    trigger: JourneyEvent | None = None,
    **options: Any,
) -> WorkflowHandle:
    return await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact_id,
        task_queue=TASK_QUEUE,
        event=trigger,
        **options,
    )


async def signal(handle: WorkflowHandle, name: str, **properties: Any) -> JourneyEvent:
    sent = event(name, **properties)
    await handle.signal(EVENT_SIGNAL, sent)
    return sent


# Beside the replay test that reads them.
HISTORIES = Path(__file__).parents[1] / "engine" / "histories"


async def finish(
    handle: WorkflowHandle, env: WorkflowEnvironment | None = None
) -> tuple[JourneyResult, RunView]:
    """The run's result and final state. A handle from ``get_workflow_handle`` (not from a
    start) skips time only inside the environment's unlocked block, so pass ``env`` then."""
    raw = await _result(handle, env)
    result = JourneyResult.model_validate(raw)
    view = await handle.query(STATE_QUERY, result_type=RunView)
    await record_history(handle)
    return result, view


async def _result(handle: WorkflowHandle, env: WorkflowEnvironment | None) -> Any:
    if env is None:
        return await handle.result()
    async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
        return await handle.result()


async def record_history(handle: WorkflowHandle, folder: Path = HISTORIES) -> None:
    """Keep the run's history for the replay test (in ``folder``, named after the test) when
    JOURNEYS_RECORD_HISTORIES=1."""
    if os.environ.get("JOURNEYS_RECORD_HISTORIES") != "1":
        return
    test = os.environ["PYTEST_CURRENT_TEST"].split(" ")[0].split("::")[-1]
    history = await handle.fetch_history()
    folder.mkdir(exist_ok=True)  # noqa: ASYNC240 - a test helper, once per recording
    # Histories do not name their workflow, and the interpreter's keys depend on it.
    record = {"workflow_id": handle.id, "history": json.loads(history.to_json())}
    (folder / f"{test}.json").write_text(json.dumps(record, indent=1) + "\n")


def local_activities(history: Any) -> int:
    """Local activities a run's history records (one marker each)."""
    return sum(
        e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        for e in history.events
    )


def at(view: RunView, kind: str) -> list[TraceEntry]:
    return [entry for entry in view.trace if entry.kind == kind]


SLACK = timedelta(seconds=3)


def close(actual: datetime | timedelta, expected: datetime | timedelta) -> bool:
    """Workflow time moves on by what each task and activity takes (milliseconds; a second on
    a cold worker), so a schedule is checked to within a few seconds."""
    return abs(actual - expected) <= SLACK  # type: ignore[operator]


def offsets(view: RunView, kind: str) -> list[timedelta]:
    """When each ``kind`` entry happened, counted from the run's start."""
    return [entry.at - view.trace[0].at for entry in at(view, kind)]


def assert_schedule(view: RunView, kind: str, expected: list[timedelta]) -> None:
    actual = offsets(view, kind)
    assert len(actual) == len(expected), (actual, expected)
    for got, want in zip(actual, expected, strict=True):
        assert close(got, want), (actual, expected)


def messages(db: Database, contact_id: str) -> list[Message]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Message).where(Message.contact_id == contact_id).order_by(Message.created_at)
            )
        )


def assert_recorded(db: Database, view: RunView, correlation: str | None = None) -> Enrollment:
    """The run's enrollment and funnel rows say what its trace says, entry for entry (the
    contact's only entry into the journey); returns the enrollment."""
    run_workflow_id = suite_names().workflow_id(view.journey, view.contact_id, correlation)
    with db.transaction() as session:
        enrollment = session.scalars(
            select(Enrollment).where(Enrollment.workflow_id == run_workflow_id)
        ).one()
        rows = session.scalars(select(StepEvent).where(StepEvent.enrollment_id == enrollment.id))
        recorded = {(r.id.rsplit(":", 1)[1], r.step_id, r.kind, r.detail, r.at) for r in rows}
    assert recorded == {(str(e.seq), e.step, e.kind, e.detail, e.at) for e in view.trace}
    assert (enrollment.status, enrollment.current_step) == (view.status, view.step)
    return enrollment


def workflow_id_of(journey: Journey, contact_id: str, correlation: str | None = None) -> str:
    return suite_names().workflow_id(journey.key, contact_id, correlation)


@cache
def suite_names() -> RunNames:
    """How the shared test server's clients name runs (conftest gives them the converter of
    ``Settings()``): hashed when JOURNEYS_ENCRYPTION_KEYS runs the suite encrypted."""
    return names_of(encryption_codec(Settings()))


async def wait_for_enrollments(
    db: Database, journey_key: str, count: int, seconds: float = 240
) -> list[Enrollment]:
    """Wait until ``count`` runs of a journey have ended (faster than a result call per run)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        with db.transaction() as session:
            ended = list(
                session.scalars(
                    select(Enrollment).where(
                        Enrollment.journey_key == journey_key, Enrollment.ended_at.is_not(None)
                    )
                )
            )
        if len(ended) >= count:
            return ended
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"only {len(ended)} of {count} runs ended in {seconds} s")
        await asyncio.sleep(0.5)


async def wait_until(check: Callable[[], bool], what: str, seconds: float = 30) -> None:
    """Poll a condition that a worker makes true in real time (no timer to skip to)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"gave up waiting for {what} after {seconds} s")
        await asyncio.sleep(0.1)
