"""Date-based entry end to end on a real dev server: the journey's Temporal Schedule, fired at
moments the test chooses (the fire's moment travels in the schedule's action), enters contacts
created before the journey was published at 09:00 in their own zones, once per occurrence, and
follows the journey's pause, resume and archive."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import (
    ScheduleActionStartWorkflow,
    ScheduleHandle,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.services import schedules
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store.models import Contact, Enrollment
from temporal_journeys.workflows.date_entry import (
    DATE_ENTRY_WORKFLOW,
    AdmitDatesResult,
    DateEntryInput,
    schedule_id,
)
from temporal_journeys.workflows.starter import run_names
from temporal_journeys.workflows.types import JourneyResult
from tests.support import harness as h
from tests.support.dev_server import DevStack

pytestmark = pytest.mark.slow

HISTORIES = Path(__file__).parent / "histories"
EVERY = timedelta(minutes=15)
ZONES = {"tokyo": "Asia/Tokyo", "paris": "Europe/Paris", "new-york": "America/New_York"}
# 09:00 local on 15 January 2027 in each zone, in UTC.
NINE_LOCAL = {
    "tokyo": datetime(2027, 1, 15, 0, 0, tzinfo=UTC),
    "paris": datetime(2027, 1, 15, 8, 0, tzinfo=UTC),
    "new-york": datetime(2027, 1, 15, 14, 0, tzinfo=UTC),
}


def birthday_journey(key: str, **trigger: object) -> dict:
    return {
        "key": key,
        "name": "Birthday",
        "trigger": {"date_attribute": "birthday", "yearly": True, "at": "09:00", **trigger},
        "steps": [
            {"id": "celebrate", "update": {"add_tags": ["birthday-celebrated"]}},
        ],
    }


async def identify(stack: DevStack, user_id: str, **traits: object) -> None:
    body = {"userId": user_id, "traits": traits}
    response = await stack.http.post("/v1/identify", json=body, headers=stack.track)
    assert response.status_code == 202, response.text


async def fire(
    stack: DevStack, key: str, at: datetime | None, *, record: str | None = None
) -> AdmitDatesResult:
    """Trigger the journey's schedule as if it fired at ``at``: the moment goes into the
    action's input (``fire_at``; None: the schedule's own scheduled time), then the schedule
    starts the fire's workflow; its result. ``record``: keep its history under that name
    when JOURNEYS_RECORD_HISTORIES=1, for the replay test."""
    handle = stack.client.get_schedule_handle(schedule_id(key))

    def with_moment(update: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = update.description.schedule
        assert isinstance(schedule.action, ScheduleActionStartWorkflow)
        moment = DateEntryInput(journey_key=key, every=EVERY, fire_at=at)
        action = dataclasses.replace(schedule.action, args=[moment])
        return ScheduleUpdate(schedule=dataclasses.replace(schedule, action=action))

    await handle.update(with_moment)
    handle = stack.client.get_schedule_handle(schedule_id(key))
    before = len((await handle.describe()).info.recent_actions)
    await handle.trigger()
    for _ in range(200):
        actions = (await handle.describe()).info.recent_actions
        if len(actions) > before:
            started = actions[-1].action
            run = stack.client.get_workflow_handle(
                started.workflow_id,
                run_id=started.first_execution_run_id,
                result_type=AdmitDatesResult,
            )
            result = await run.result()
            if record and os.environ.get("JOURNEYS_RECORD_HISTORIES") == "1":
                history = await run.fetch_history()
                document = {"workflow_id": run.id, "history": json.loads(history.to_json())}
                (HISTORIES / f"{record}.json").write_text(json.dumps(document, indent=1) + "\n")
            return result
        await asyncio.sleep(0.05)
    raise AssertionError("the schedule did not start a fire")


async def settled_state(handle: ScheduleHandle, *, paused: bool) -> ScheduleState:
    """The schedule's state once it shows ``paused``: the scheduler takes a pause as a
    signal, so a describe right after the call may not show it yet."""
    for _ in range(100):
        state = (await handle.describe()).schedule.state
        if state.paused == paused:
            return state
        await asyncio.sleep(0.1)
    raise AssertionError(f"the schedule never showed paused={paused}: {state}")


def entries(stack: DevStack, key: str) -> list[Enrollment]:
    with stack.db.transaction() as session:
        rows = session.scalars(select(Enrollment).where(Enrollment.journey_key == key))
        return sorted(rows, key=lambda row: row.started_at)


async def finished(stack: DevStack, key: str) -> dict[str, str]:
    """contact -> occurrence of every entry, once all their runs have completed."""
    found = entries(stack, key)
    for row in found:
        handle = stack.client.get_workflow_handle(row.workflow_id, result_type=JourneyResult)
        result = await handle.result()
        assert result.status == "completed"
    return {row.contact_id: row.correlation for row in found}


async def test_birthdays_enter_at_nine_local_in_three_zones_once_each(dates: DevStack):
    key = h.unique("birthday")
    people = {city: h.unique(city) for city in ZONES}
    for city, user_id in people.items():  # all of them on file before the journey exists
        await identify(dates, user_id, birthday="1990-01-15", timezone=ZONES[city])
    other_day = h.unique("other-day")
    await identify(dates, other_day, birthday="1990-01-16", timezone="Europe/Paris")
    await dates.publish(key, birthday_journey(key))

    # The journey has its schedule, visible as journey-dates/<key>.
    described = await dates.client.get_schedule_handle(schedule_id(key)).describe()
    schedule = described.schedule
    assert not schedule.state.paused
    assert schedule.spec.intervals == [ScheduleIntervalSpec(every=EVERY)]
    assert schedule.policy.overlap == ScheduleOverlapPolicy.BUFFER_ALL
    assert isinstance(schedule.action, ScheduleActionStartWorkflow)
    assert schedule.action.workflow == DATE_ENTRY_WORKFLOW

    # The quarter before 09:00 in Tokyo: nobody yet.
    assert (await fire(dates, key, NINE_LOCAL["tokyo"] - EVERY)).due == 0
    entered: dict[str, str] = {}
    for city in ("tokyo", "paris", "new-york"):
        result = await fire(dates, key, NINE_LOCAL[city], record=f"fire_entering_{city}")
        assert (result.due, result.entered, result.already) == (1, 1, 0), city
        entered[people[city]] = "2027-01-15"
        assert await finished(dates, key) == entered
        # The next quarter enters nobody more.
        assert (await fire(dates, key, NINE_LOCAL[city] + EVERY)).due == 0

    # A fire that runs again (retried, or triggered twice) finds each occurrence entered.
    again = await fire(dates, key, NINE_LOCAL["paris"])
    assert (again.due, again.entered, again.already) == (1, 0, 1)
    assert await finished(dates, key) == entered
    assert other_day not in entered

    with dates.db.transaction() as session:
        tags = {c.id: c.tags for c in session.scalars(select(Contact))}
    assert all(tags[user_id] == ["birthday-celebrated"] for user_id in people.values())
    # Each run is keyed by its occurrence, so next year's birthday is a run of its own.
    [row] = [row for row in entries(dates, key) if row.contact_id == people["tokyo"]]
    assert row.workflow_id == run_names(dates.client).workflow_id(
        key, people["tokyo"], "2027-01-15"
    )
    if dates.client.data_converter.payload_codec is None:  # ids unhashed without encryption
        assert row.workflow_id == f"journey/{key}/{people['tokyo']}/2027-01-15"
    next_year = await fire(dates, key, NINE_LOCAL["tokyo"].replace(year=2028))
    assert (next_year.due, next_year.entered) == (1, 1)


async def test_concurrent_fires_of_one_window_enter_each_contact_once(dates: DevStack):
    key = h.unique("birthday")
    users = [h.unique("twin") for _ in range(8)]
    for user_id in users:
        await identify(dates, user_id, birthday="2000-01-20", timezone="Europe/Paris")
    await dates.publish(key, birthday_journey(key))

    # Two fire workflows of the same window at once (an operator's manual run beside the
    # schedule's own): every contact is entered by one of them, nobody by both.
    nine_in_paris = NINE_LOCAL["paris"].replace(day=20)
    moment = DateEntryInput(journey_key=key, every=EVERY, fire_at=nine_in_paris)
    queue = dates.app.state.settings.task_queue
    results = await asyncio.gather(
        *(
            dates.client.execute_workflow(
                DATE_ENTRY_WORKFLOW,
                moment,
                id=f"{schedule_id(key)}-by-hand-{n}",
                task_queue=queue,
                result_type=AdmitDatesResult,
            )
            for n in range(2)
        )
    )

    assert [r.due for r in results] == [8, 8]
    assert sum(r.entered for r in results) <= 8  # a start may reach the other's running run
    assert sorted((await finished(dates, key)).items()) == [
        (u, "2027-01-20") for u in sorted(users)
    ]
    assert len(entries(dates, key)) == 8


async def test_pausing_the_journey_pauses_its_schedule_and_archiving_deletes_it(dates: DevStack):
    key = h.unique("birthday")
    user_id = h.unique("paused")
    await identify(dates, user_id, birthday="1990-02-10", timezone="Asia/Tokyo")
    await dates.publish(key, birthday_journey(key, offset="-P3D"))
    handle = dates.client.get_schedule_handle(schedule_id(key))

    response = await dates.http.post(f"/v1/journeys/{key}/pause", headers=dates.admin)
    assert response.status_code == 200, response.text
    state = await settled_state(handle, paused=True)
    assert state.note == f"journey {key} is paused"
    # A fire while paused (one buffered before the pause, or triggered by hand) enters nobody.
    # 7 February 2027, 09:00 in Tokyo: three days before the birthday.
    three_days_before = datetime(2027, 2, 7, 0, 0, tzinfo=UTC)
    paused = await fire(dates, key, three_days_before)
    assert paused.entered == 0 and paused.reason == f"journey {key} is not live"

    response = await dates.http.post(f"/v1/journeys/{key}/resume", headers=dates.admin)
    assert response.status_code == 200, response.text
    await settled_state(handle, paused=False)
    resumed = await fire(dates, key, three_days_before)
    assert (resumed.due, resumed.entered) == (1, 1)
    assert await finished(dates, key) == {user_id: "2027-02-10"}

    # Publishing a new version keeps one schedule; archiving removes it.
    await dates.publish(key, birthday_journey(key, offset="-P2D"))
    await settled_state(handle, paused=False)
    response = await dates.http.post(f"/v1/journeys/{key}/archive", headers=dates.admin)
    assert response.status_code == 200, response.text
    with pytest.raises(RPCError) as gone:
        await handle.describe()
    assert gone.value.status == RPCStatusCode.NOT_FOUND


async def test_a_fire_without_a_moment_takes_the_schedules_scheduled_time(dates: DevStack):
    key = h.unique("birthday")
    await dates.publish(key, birthday_journey(key))
    handle = dates.client.get_schedule_handle(schedule_id(key))

    result = await fire(dates, key, None, record="fire_at_the_scheduled_time")

    assert result.reason is None
    [action] = (await handle.describe()).info.recent_actions
    run = dates.client.get_workflow_handle(action.action.workflow_id)
    history = await run.fetch_history()
    [scheduled] = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    window = json.loads(scheduled.input.payloads[0].data)
    until = datetime.fromisoformat(window["until"])
    # The search attribute keeps whole seconds: a fire on the schedule's interval has no more.
    assert until == action.scheduled_at.replace(microsecond=0)
    assert datetime.fromisoformat(window["after"]) == until - EVERY


async def test_journeys_changed_behind_temporals_back_get_their_schedules_reconciled(
    dates: DevStack,
):
    # Published straight into the store, as `journeys dev` loads its examples: no schedule yet.
    active, paused = h.unique("birthday"), h.unique("birthday")
    h.publish(dates.db, birthday_journey(active))
    h.publish(dates.db, birthday_journey(paused))
    with dates.db.transaction() as session:
        journeys_store.get(session, paused).status = "paused"  # type: ignore[union-attr]
    settings = dates.app.state.settings

    assert await schedules.reconcile(dates.db, dates.client, settings) >= 2

    await settled_state(dates.client.get_schedule_handle(schedule_id(active)), paused=False)
    await settled_state(dates.client.get_schedule_handle(schedule_id(paused)), paused=True)
