"""The Temporal Schedule of each journey that enters contacts by a date attribute or by a
schedule of its own.

``journey-dates/<key>`` (a ``date_attribute`` trigger) or ``journey-schedule/<key>`` (a
``schedule`` trigger), on the Schedules page of the Temporal UI, exists while the journey's
latest version has that trigger and the journey is active or paused; it is paused with the
journey, updated by each publish, and deleted when the journey is archived or its trigger
changes. The database's status is the truth: a fire of a paused or archived journey enters
nobody (``activities/date_entry.py``, ``activities/scheduled_entry.py``), so a schedule left
behind while Temporal was unreachable does no harm, and ``reconcile`` (run by the API once it
reaches Temporal) brings every schedule in line again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, timedelta

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
)
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.cron import Cron, parse_cron
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import (
    CronSchedule,
    DateAttributeTrigger,
    Journey,
    ScheduleTrigger,
)
from temporal_journeys.store import date_entry as date_store
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.date_entry import (
    DATE_ENTRY_WORKFLOW,
    DateEntryInput,
    schedule_id,
)
from temporal_journeys.workflows.scheduled_entry import (
    SCHEDULED_ENTRY_WORKFLOW,
    ScheduledEntryInput,
)
from temporal_journeys.workflows.scheduled_entry import schedule_id as scheduled_id

log = logging.getLogger("journeys.api.schedules")

CATCHUP_WINDOW = timedelta(days=7)
"""Fires missed while Temporal itself was down are run when it is back, this far back. Fires
that come while the worker is down are started on time and wait in the task queue."""

SCHEDULED_CATCHUP_WINDOW = timedelta(days=1)
"""A scheduled entry (a newsletter's Monday 09:00) missed while Temporal was down runs late
within a day of its time, not a week later."""

LIVE = ("active", "paused")


def build(key: str, journey: Journey, settings: Settings, *, paused: bool = False) -> Schedule:
    """The schedule of ``journey``: a fire every ``date_entry_every_minutes`` (aligned on the
    epoch, so on the quarter hours by default and a 09:00 moment enters at the 09:00 fire).

    Overlap: BUFFER_ALL, so a fire that comes while the previous one still runs (a worker
    down, a slow database) waits its turn rather than being skipped: windows tile time and
    none is lost. Each fire's window is its own ``(fire - every, fire]``, and entry is
    idempotent per occurrence, so a buffered or retried fire enters nobody twice."""
    assert isinstance(journey.trigger, DateAttributeTrigger)
    every = timedelta(minutes=settings.date_entry_every_minutes)
    trigger = journey.trigger
    note = (
        f"Enters contacts of journey {key} when `{trigger.date_attribute}` comes round"
        f"{' (yearly)' if trigger.yearly else ''}, at {trigger.at.strftime('%H:%M')} local"
    )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            DATE_ENTRY_WORKFLOW,
            DateEntryInput(journey_key=key, every=every),
            id=schedule_id(key),
            task_queue=settings.task_queue,
            static_summary=f"Date entry of {journey.name}",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ALL, catchup_window=CATCHUP_WINDOW
        ),
        state=ScheduleState(note=f"journey {key} is paused" if paused else note, paused=paused),
    )


def calendars(cron: Cron) -> list[ScheduleCalendarSpec]:
    """The calendar specs of a cron expression, which Temporal's scheduler fires exactly as
    ``Cron`` reads it (what the simulator computes). Temporal ANDs a calendar's day of month
    and day of week; classic cron ORs them when both are restricted: one calendar each."""

    def ranges(values: tuple[int, ...]) -> tuple[ScheduleRange, ...]:
        return tuple(ScheduleRange(value) for value in values)

    def calendar(days: tuple[int, ...], weekdays: tuple[int, ...]) -> ScheduleCalendarSpec:
        return ScheduleCalendarSpec(
            second=(ScheduleRange(0),),
            minute=ranges(cron.minutes),
            hour=ranges(cron.hours),
            day_of_month=ranges(days),
            month=ranges(cron.months),
            day_of_week=ranges(weekdays),
        )

    if cron.days_restricted and cron.weekdays_restricted:
        return [
            calendar(cron.days, tuple(range(7))),
            calendar(tuple(range(1, 32)), cron.weekdays),
        ]
    return [calendar(cron.days, cron.weekdays)]


def build_scheduled(
    key: str, journey: Journey, settings: Settings, *, paused: bool = False
) -> Schedule:
    """The schedule of a journey entered by ``trigger: {schedule, segment}``: its cron's
    calendars in its zone, or one calendar for the moment of ``at`` (a whole year, so it
    fires once). Overlap: BUFFER_ALL, so a fire that comes while the previous one still runs
    waits its turn; each fire is owed its entries, keyed by its own time."""
    trigger = journey.trigger
    assert isinstance(trigger, ScheduleTrigger)
    when = trigger.schedule
    if isinstance(when, CronSchedule):
        spec = ScheduleSpec(
            calendars=calendars(parse_cron(when.cron)), time_zone_name=when.timezone
        )
        shown = f"at `{when.cron}` ({when.timezone})"
    else:
        at = when.at.astimezone(UTC)
        moment = ScheduleCalendarSpec(
            second=(ScheduleRange(at.second),),
            minute=(ScheduleRange(at.minute),),
            hour=(ScheduleRange(at.hour),),
            day_of_month=(ScheduleRange(at.day),),
            month=(ScheduleRange(at.month),),
            year=(ScheduleRange(at.year),),
        )
        spec = ScheduleSpec(calendars=[moment], time_zone_name="UTC")
        shown = f"once at {when.at.isoformat()}"
    note = f"Enters the members of segment {trigger.segment} into journey {key} {shown}"
    return Schedule(
        action=ScheduleActionStartWorkflow(
            SCHEDULED_ENTRY_WORKFLOW,
            ScheduledEntryInput(journey_key=key),
            id=scheduled_id(key),
            task_queue=settings.task_queue,
            static_summary=f"Scheduled entry of {journey.name}",
        ),
        spec=spec,
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.BUFFER_ALL, catchup_window=SCHEDULED_CATCHUP_WINDOW
        ),
        state=ScheduleState(note=f"journey {key} is paused" if paused else note, paused=paused),
    )


@dataclass(frozen=True)
class _Kind:
    """One kind of journey schedule: its id, the trigger that wants it, how it is built."""

    schedule_id: Callable[[str], str]
    trigger: type
    build: Callable[..., Schedule]


KINDS = (
    _Kind(schedule_id, DateAttributeTrigger, build),
    _Kind(scheduled_id, ScheduleTrigger, build_scheduled),
)


async def sync(
    client: Client, key: str, journey: Journey | None, status: str | None, settings: Settings
) -> bool:
    """Make the journey's schedules match (``journey``, ``status``): the one its trigger wants
    created or updated and paused or running, any other kind deleted (a trigger that changed
    kind leaves none behind). Answers whether a schedule exists now."""
    exists = False
    for kind in KINDS:
        handle = client.get_schedule_handle(kind.schedule_id(key))
        if journey is None or status not in LIVE or not isinstance(journey.trigger, kind.trigger):
            try:
                await handle.delete()
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
            continue
        # The pause travels in the schedule itself: a separate pause call right after an
        # update can be overtaken by it (the scheduler applies both as signals), losing it.
        schedule = kind.build(key, journey, settings, paused=status == "paused")
        try:
            await client.create_schedule(kind.schedule_id(key), schedule)
        except ScheduleAlreadyRunningError:
            await handle.update(lambda _, schedule=schedule: ScheduleUpdate(schedule=schedule))
        exists = True
    return exists


async def sync_journey(db: Database, client: Client | None, key: str, settings: Settings) -> None:
    """After a publish or a status change: the schedule follows the database. Temporal being
    unreachable is logged, not raised: the change stands and ``reconcile`` catches up."""
    if client is None:
        log.warning("Temporal unreachable: the schedule of journey %s follows later", key)
        return
    found = await db.run(date_store.latest, key)
    status, journey = found if found is not None else (None, None)
    try:
        await sync(client, key, journey, status, settings)
    except RPCError as exc:
        log.warning("schedule of journey %s not updated (%s); it follows later", key, exc)


async def reconcile(db: Database, client: Client, settings: Settings) -> int:
    """Every date-triggered or scheduled journey's schedule brought in line with the database
    (those whose changes Temporal missed, journeys loaded by ``journeys dev``); answers how
    many exist."""
    journeys = await db.run(date_store.scheduled_journeys)
    existing = 0
    for key, status, journey in journeys:
        try:
            existing += await sync(client, key, journey, status, settings)
        except RPCError as exc:
            log.warning("schedule of journey %s not reconciled: %s", key, exc)
    return existing


async def reconcile_when_connected(
    db: Database, connection: TemporalConnection, settings: Settings
) -> None:
    """``reconcile`` once the API's client reaches Temporal (started with the relay)."""
    while connection.client is None:  # noqa: ASYNC110 (the connection has no event to wait on)
        await asyncio.sleep(0.5)
    try:
        count = await reconcile(db, connection.client, settings)
    except Exception:  # a database hiccup at startup must not take the API down
        log.exception("journey schedules not reconciled; they follow each journey's next change")
        return
    if count:
        log.info("%d journey schedule(s) in line with their journeys", count)


async def put(client: Client, id: str, schedule: Schedule) -> None:
    """Create the schedule ``id``, or replace the one of that id with ``schedule``."""
    try:
        await client.create_schedule(id, schedule)
    except ScheduleAlreadyRunningError:
        await client.get_schedule_handle(id).update(lambda _: ScheduleUpdate(schedule=schedule))


async def remove(client: Client, id: str) -> None:
    """Delete the schedule ``id``; one that does not exist is no error."""
    try:
        await client.get_schedule_handle(id).delete()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
