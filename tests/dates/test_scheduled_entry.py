"""Scheduled entry end to end on a real dev server (the time-skipping server has no
schedules): a journey with ``trigger: {schedule, segment}`` gets its Temporal Schedule, each
fire enters the segment's members once, a fire that runs again (a retried action) enters
nobody twice, the journey's pause pauses the schedule, and a one-off ``at`` fires by itself."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from temporalio.client import ScheduleActionStartWorkflow, ScheduleHandle, ScheduleState
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.activities import scheduled_entry
from temporal_journeys.api.services import schedules
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store.models import Contact, Enrollment
from temporal_journeys.workflows import date_entry
from temporal_journeys.workflows.scheduled_entry import (
    SCHEDULED_ENTRY_WORKFLOW,
    AdmitScheduledResult,
    ScheduledEntryInput,
    fire_key,
    schedule_id,
)
from temporal_journeys.workflows.starter import run_names
from temporal_journeys.workflows.types import JourneyResult
from tests.support import harness as h
from tests.support.dev_server import DevStack

pytestmark = pytest.mark.slow

HISTORIES = Path(__file__).parent / "scheduled_histories"
PARIS = ZoneInfo("Europe/Paris")


def newsletter(key: str, segment: str, schedule: dict, **extra: object) -> dict:
    return {
        "key": key,
        "name": "Weekly newsletter",
        "trigger": {"schedule": schedule, "segment": segment},
        "steps": [{"id": "read", "update": {"score": {"newsletters": 1}}}],
        **extra,
    }


MONDAYS = {"cron": "0 9 * * MON", "timezone": "Europe/Paris"}


async def vip_segment(stack: DevStack, *members: str, others: int = 1) -> str:
    """A segment of the ``members`` (plan vip), with ``others`` contacts outside it."""
    key = h.unique("vips")
    document = {"name": "VIPs", "condition": {"trait": key, "eq": "vip"}}
    response = await stack.http.put(f"/v1/segments/{key}", json=document, headers=stack.admin)
    assert response.status_code == 200, response.text
    for user_id in members:
        await identify(stack, user_id, **{key: "vip"})
    for _ in range(others):
        await identify(stack, h.unique("regular"), **{key: "regular"})
    count = await stack.http.get(f"/v1/segments/{key}/count", headers=stack.admin)
    assert count.json()["count"] == len(members), count.text
    return key


async def identify(stack: DevStack, user_id: str, **traits: object) -> None:
    body = {"userId": user_id, "traits": traits}
    response = await stack.http.post("/v1/identify", json=body, headers=stack.track)
    assert response.status_code == 202, response.text


async def fired(
    stack: DevStack, key: str, before: int, *, record: str | None = None, wait: float = 10
) -> tuple[datetime, AdmitScheduledResult]:
    """The schedule's next action after the first ``before``: its scheduled time and result.
    ``record``: keep its history under that name when JOURNEYS_RECORD_HISTORIES=1."""
    handle = stack.client.get_schedule_handle(schedule_id(key))
    for _ in range(int(wait / 0.05)):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) > before:
            action = actions[before]
            started = action.action
            run = stack.client.get_workflow_handle(
                started.workflow_id,
                run_id=started.first_execution_run_id,
                result_type=AdmitScheduledResult,
            )
            result = await run.result()
            if record and os.environ.get("JOURNEYS_RECORD_HISTORIES") == "1":
                HISTORIES.mkdir(exist_ok=True)
                history = await run.fetch_history()
                document = {"workflow_id": run.id, "history": json.loads(history.to_json())}
                (HISTORIES / f"{record}.json").write_text(json.dumps(document, indent=1) + "\n")
            return action.scheduled_at, result
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule did not fire")


async def trigger(stack: DevStack, key: str, *, record: str | None = None):
    """Fire the schedule now, as an operator's "Trigger" in the UI does."""
    handle = stack.client.get_schedule_handle(schedule_id(key))
    before = len((await handle.describe()).info.recent_actions)
    # Fires are keyed to the second: wait for a second no earlier fire of this test had.
    await asyncio.sleep(1.05 - datetime.now(UTC).microsecond / 1e6)
    await handle.trigger()
    return await fired(stack, key, before, record=record)


def entries(stack: DevStack, key: str) -> list[Enrollment]:
    with stack.db.transaction() as session:
        rows = session.scalars(select(Enrollment).where(Enrollment.journey_key == key))
        return sorted(rows, key=lambda row: (row.contact_id, row.started_at))


async def finished(stack: DevStack, key: str) -> list[tuple[str, str | None]]:
    """(contact, fire) of every entry, once all their runs have completed."""
    found = entries(stack, key)
    for row in found:
        handle = stack.client.get_workflow_handle(row.workflow_id, result_type=JourneyResult)
        assert (await handle.result()).status == "completed"
    return [(row.contact_id, row.correlation) for row in found]


async def settled_state(handle: ScheduleHandle, *, paused: bool) -> ScheduleState:
    for _ in range(100):
        state = (await handle.describe()).schedule.state
        if state.paused == paused:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the schedule never showed paused={paused}: {state}")


async def test_a_cron_schedule_enters_the_members_once_per_fire(dates: DevStack):
    members = sorted(h.unique("reader") for _ in range(3))
    segment = await vip_segment(dates, *members)
    key = h.unique("newsletter")
    await dates.publish(key, newsletter(key, segment, MONDAYS, re_entry="always"))

    # The journey has its schedule, journey-schedule/<key>, firing on Mondays 09:00 in Paris.
    described = await dates.client.get_schedule_handle(schedule_id(key)).describe()
    assert described.schedule.spec.time_zone_name == "Europe/Paris"
    assert isinstance(described.schedule.action, ScheduleActionStartWorkflow)
    assert described.schedule.action.workflow == SCHEDULED_ENTRY_WORKFLOW
    assert described.schedule.state.note == (
        f"Enters the members of segment {segment} into journey {key} at `0 9 * * MON` "
        "(Europe/Paris)"
    )
    upcoming = [moment.astimezone(PARIS) for moment in described.info.next_action_times]
    assert upcoming and all((m.weekday(), m.hour, m.minute) == (0, 9, 0) for m in upcoming)

    first_at, first = await trigger(dates, key, record="fire_entering_members")
    assert (first.members, first.entered, first.already, first.skipped) == (3, 3, 0, 0)
    first_fire = fire_key(first_at)
    assert await finished(dates, key) == [(m, first_fire) for m in members]

    second_at, second = await trigger(dates, key)
    assert (second.members, second.entered, second.already) == (3, 3, 0)
    second_fire = fire_key(second_at)
    assert second_fire != first_fire
    assert await finished(dates, key) == sorted(
        [(m, first_fire) for m in members] + [(m, second_fire) for m in members]
    )
    # Each fire's run is keyed by it: journey/<key>/<contact>/<fire>.
    names = run_names(dates.client)
    assert {row.workflow_id for row in entries(dates, key)} == {
        names.workflow_id(key, m, fire) for m in members for fire in (first_fire, second_fire)
    }

    # The first fire's action again (a retried or repeated action: same scheduled time),
    # twice at once: nobody enters a third time.
    again = await asyncio.gather(
        *(
            dates.client.execute_workflow(
                SCHEDULED_ENTRY_WORKFLOW,
                ScheduledEntryInput(journey_key=key, fire_at=first_at),
                id=f"{schedule_id(key)}-again-{n}",
                task_queue=dates.app.state.settings.task_queue,
                result_type=AdmitScheduledResult,
            )
            for n in range(2)
        )
    )
    assert [(r.members, r.entered, r.already) for r in again] == [(3, 0, 3), (3, 0, 3)]
    assert len(entries(dates, key)) == 6

    with dates.db.transaction() as session:
        scores = {c.id: c.scores for c in session.scalars(select(Contact))}
    assert all(scores[m] == {"newsletters": 2} for m in members)

    # The segment cannot go while the journey that enters its members is live.
    response = await dates.http.delete(f"/v1/segments/{segment}", headers=dates.admin)
    assert response.status_code == 409, response.text
    assert response.json()["detail"] == f"segment {segment!r} is used by journey {key}"


async def test_a_fire_pages_through_the_members_and_enters_each_once(
    dates: DevStack, monkeypatch: pytest.MonkeyPatch
):
    # Pages of two: five members take three pages (the page size is a knob, not a fake).
    monkeypatch.setattr(scheduled_entry, "PAGE", 2)
    members = sorted(h.unique("reader") for _ in range(5))
    segment = await vip_segment(dates, *members, others=3)
    key = h.unique("newsletter")
    await dates.publish(key, newsletter(key, segment, MONDAYS))

    # Each page is admitted as one batch (one transaction, its runs started together).
    batches: list[int] = []
    admit = scheduled_entry.start_entries

    async def counted(*args: Any, **kwargs: Any) -> Any:
        batches.append(len(kwargs["entries"]))
        return await admit(*args, **kwargs)

    monkeypatch.setattr(scheduled_entry, "start_entries", counted)

    at, result = await trigger(dates, key)

    assert (result.members, result.entered, result.already) == (5, 5, 0)
    assert batches == [2, 2, 1]
    assert await finished(dates, key) == [(m, fire_key(at)) for m in members]


async def test_re_entry_never_enters_a_member_at_the_first_fire_only(dates: DevStack):
    member = h.unique("reader")
    segment = await vip_segment(dates, member)
    key = h.unique("newsletter")
    await dates.publish(key, newsletter(key, segment, MONDAYS))  # re_entry: never

    _, first = await trigger(dates, key)
    assert (first.entered, first.skipped) == (1, 0)
    await finished(dates, key)
    _, second = await trigger(dates, key)
    assert (second.members, second.entered, second.skipped) == (1, 0, 1)
    assert len(await finished(dates, key)) == 1

    # A newcomer to the segment enters at the next fire; the earlier member still does not.
    newcomer = h.unique("newcomer")
    await identify(dates, newcomer, **{segment: "vip"})
    _, third = await trigger(dates, key)
    assert (third.members, third.entered, third.skipped) == (2, 1, 1)
    assert sorted(c for c, _ in await finished(dates, key)) == sorted([member, newcomer])


async def test_pausing_the_journey_pauses_its_schedule_publishing_updates_archiving_deletes(
    dates: DevStack,
):
    member = h.unique("reader")
    segment = await vip_segment(dates, member)
    key = h.unique("newsletter")
    # First entered by a date: its schedule is journey-dates/<key>.
    birthday = {"date_attribute": "birthday", "yearly": True}
    await dates.publish(key, newsletter(key, segment, MONDAYS) | {"trigger": birthday})
    dates_handle = dates.client.get_schedule_handle(date_entry.schedule_id(key))
    await dates_handle.describe()

    # A new version entered by a schedule: the date schedule goes, the new one comes.
    await dates.publish(key, newsletter(key, segment, MONDAYS, re_entry="always"))
    with pytest.raises(RPCError) as gone:
        await dates_handle.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND
    handle = dates.client.get_schedule_handle(schedule_id(key))

    response = await dates.http.post(f"/v1/journeys/{key}/pause", headers=dates.admin)
    assert response.status_code == 200, response.text
    state = await settled_state(handle, paused=True)
    assert state.note == f"journey {key} is paused"
    # An action that still comes (buffered before the pause, or triggered by hand) enters
    # nobody: the database's status is the truth.
    _, paused = await trigger(dates, key)
    assert paused.entered == 0 and paused.reason == f"journey {key} is not live"

    response = await dates.http.post(f"/v1/journeys/{key}/resume", headers=dates.admin)
    assert response.status_code == 200, response.text
    await settled_state(handle, paused=False)
    _, resumed = await trigger(dates, key)
    assert (resumed.members, resumed.entered) == (1, 1)

    # Publishing a new version updates the schedule in place.
    fridays = {"cron": "30 17 * * FRI", "timezone": "America/New_York"}
    await dates.publish(key, newsletter(key, segment, fridays, re_entry="always"))
    described = await handle.describe()
    assert described.schedule.spec.time_zone_name == "America/New_York"
    upcoming = [
        m.astimezone(ZoneInfo("America/New_York")) for m in described.info.next_action_times
    ]
    assert upcoming and all((m.weekday(), m.hour, m.minute) == (4, 17, 30) for m in upcoming)

    response = await dates.http.post(f"/v1/journeys/{key}/archive", headers=dates.admin)
    assert response.status_code == 200, response.text
    with pytest.raises(RPCError) as deleted:
        await handle.describe()
    assert deleted.value.status == RPCStatusCode.NOT_FOUND


async def test_a_one_off_at_fires_by_itself_once_at_its_moment(dates: DevStack):
    members = sorted(h.unique("guest") for _ in range(2))
    segment = await vip_segment(dates, *members)
    key = h.unique("announcement")
    at = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    await dates.publish(key, newsletter(key, segment, {"at": at.astimezone(PARIS).isoformat()}))
    handle = dates.client.get_schedule_handle(schedule_id(key))
    assert [m.astimezone(UTC) for m in (await handle.describe()).info.next_action_times] == [at]

    # Nobody triggers it: Temporal fires it at `at`, which keys the entries.
    scheduled_at, result = await fired(dates, key, 0, wait=30, record="fire_at_the_scheduled_time")
    assert scheduled_at == at
    assert (result.members, result.entered) == (2, 2)
    assert await finished(dates, key) == [(m, fire_key(at)) for m in members]
    assert (await handle.describe()).info.next_action_times == []


async def test_scheduled_journeys_changed_behind_temporals_back_get_their_schedules(
    dates: DevStack,
):
    segment = await vip_segment(dates, h.unique("reader"))
    active, paused = h.unique("newsletter"), h.unique("newsletter")
    h.publish(dates.db, newsletter(active, segment, MONDAYS))
    h.publish(dates.db, newsletter(paused, segment, MONDAYS))
    with dates.db.transaction() as session:
        journeys_store.get(session, paused).status = "paused"  # type: ignore[union-attr]

    assert await schedules.reconcile(dates.db, dates.client, dates.app.state.settings) >= 2

    await settled_state(dates.client.get_schedule_handle(schedule_id(active)), paused=False)
    await settled_state(dates.client.get_schedule_handle(schedule_id(paused)), paused=True)
