"""Run a journey on the real interpreter against a scripted timeline, on a private
time-skipping Temporal server and a throwaway SQLite store, with the console provider.

Events and identifies take the production path: the ingest service of ``POST /v1/track`` and
``/v1/identify`` stores them (so branch history conditions count them) and moves their contacts
in and out of segments in the same transaction; the outbox is routed by the API's relay, which
starts runs whose trigger matches (a ``segment.entered`` event for ``trigger: {segment: KEY}``)
and signals only the running runs that listen for the event. ``enroll`` lines go through the
enroll API's service. Journeys that the simulated one hands contacts to (``enter`` steps) are
published from the same folder, and their runs are reported too.

Segments (``segments/*.yaml`` beside the journey) are saved as ``journeys apply`` saves them;
those that time alone changes (windows) are recomputed by their refresh workflow at the fires
their Temporal Schedule would have (every ``refresh``, counted from the Unix epoch as Temporal
counts intervals). Lines at a negative offset are the contacts' history: ingested before the
segments are computed and the journey is published, so it does not start runs."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from sqlalchemy.orm import Session
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.activities.date_entry import find_due
from temporal_journeys.activities.providers.console import ConsoleProvider
from temporal_journeys.api.schemas import BroadcastIn, IdentifyCall, TrackCall
from temporal_journeys.api.services import broadcasts as broadcasts_service
from temporal_journeys.api.services.ingest import ingest
from temporal_journeys.api.services.journeys import enroll
from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.cli.loader import (
    load_segments,
    load_templates,
    load_topics,
    publish_if_changed,
)
from temporal_journeys.journeys.cron import parse_cron
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.records import TraceEntry
from temporal_journeys.journeys.segments import Segment, dependencies, in_dependency_order
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import (
    ClockTime,
    DateAttributeTrigger,
    EnterStep,
    Journey,
    Key,
    OnceSchedule,
    ScheduleTrigger,
)
from temporal_journeys.journeys.spec import Duration as Horizon
from temporal_journeys.journeys.spec import Offset as Duration
from temporal_journeys.journeys.validation import (
    SpecInvalid,
    json_path,
    load_document,
    parse_journey,
)
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows import search_attributes
from temporal_journeys.workflows.broadcast import workflow_id as broadcast_workflow_id
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.contract import STATE_QUERY
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
from temporal_journeys.workflows.segments import REFRESH_WORKFLOW, RefreshInput
from temporal_journeys.workflows.segments import schedule_id as refresh_schedule_id
from temporal_journeys.workflows.starter import RunNames, run_names
from temporal_journeys.workflows.types import RunView

QUEUE = "journeys-simulation"


class ScriptedDevice(BaseModel):
    """A push device the contact's app registered (POST /v1/devices), so push reaches them."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=1024)
    platform: Literal["ios", "android", "web"] = "android"


class ScriptedContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    traits: dict[str, Any] = Field(default_factory=dict)
    devices: list[ScriptedDevice] = Field(default_factory=list)


class ScriptedEvent(BaseModel):
    """An event the contact's app sends (``event``: POST /v1/track), traits it sets
    (``identify``: POST /v1/identify), or an enrolment by API (``enroll``)."""

    model_config = ConfigDict(extra="forbid")
    at: Duration = Field(
        description="When, counted from the start of the simulation; before it (negative) for "
        "the contact's history, which no journey sees."
    )
    userId: str | None = None
    event: str | None = None
    identify: dict[str, Any] | None = Field(default=None, description="Traits, as identify.")
    enroll: Key | None = Field(default=None, description="A journey key: POST .../enroll.")
    broadcast: Key | None = Field(
        default=None,
        description="A broadcast file beside the journeys (broadcasts/KEY.yaml): POST "
        "/v1/broadcasts with its body, as `journeys broadcast` (from cron, say) does.",
    )
    properties: dict[str, Any] = Field(default_factory=dict)
    message_step: str | None = Field(
        default=None, description="Engagement with the message that step sent to this contact."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptedEvent:
        kinds = [
            k for k in ("event", "identify", "enroll", "broadcast") if getattr(self, k) is not None
        ]
        if len(kinds) != 1:
            raise ValueError(
                "a timeline line has one of `event`, `identify`, `enroll` or `broadcast`"
            )
        if (self.userId is None) != (self.broadcast is not None):
            raise ValueError("`userId` is needed by every line but a `broadcast`, which has none")
        if (self.enroll or self.broadcast) is not None and self.at < timedelta(0):
            raise ValueError("an `enroll` or `broadcast` line comes at or after the start")
        return self


class Start(BaseModel):
    """Where the simulated clock starts (UTC): the next moment with this time of day, and this
    month and day when given. Pins quiet hours, local times and dates to the wall clock of the
    script rather than to the hour the simulation runs at."""

    model_config = ConfigDict(extra="forbid")
    month: int | None = Field(default=None, ge=1, le=12)
    day: int | None = Field(default=None, ge=1, le=31)
    at: ClockTime = time(0, 0)

    @model_validator(mode="after")
    def _a_real_day(self) -> Start:
        if self.month is not None and self.day is not None:
            date(2000, self.month, self.day)  # a leap year: 29 February is a real day
        return self


class Timeline(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Start | None = None
    until: Horizon | None = Field(
        default=None,
        description="Stop the clock this long after the start and report runs as they stand "
        "(needed for journeys that loop forever, such as a yearly birthday).",
    )
    contacts: list[ScriptedContact] = Field(default_factory=list)
    events: list[ScriptedEvent] = Field(default_factory=list)


@dataclass
class Outcome:
    """One run of the simulation, as it ended (or stood when the clock stopped)."""

    contact_id: str
    status: str
    trace: list[TraceEntry]
    started: datetime
    journey: str = ""
    reason: str | None = None
    waiting_for: str | None = None


def load_timeline(path: Path) -> Timeline:
    """YAML read as journey files are (1.2 scalars: `10:00` and `1990-02-14` stay strings)."""
    return Timeline.model_validate(load_document(path.read_text()) or {})


def first_start(now: datetime, start: Start) -> datetime:
    """The first moment at or after ``now`` that ``start`` describes."""
    moment = now.replace(hour=start.at.hour, minute=start.at.minute, second=0, microsecond=0)
    while (
        moment < now
        or (start.month is not None and moment.month != start.month)
        or (start.day is not None and moment.day != start.day)
    ):
        moment += timedelta(days=1)
    return moment


async def simulate(
    journey_file: Path, timeline: Timeline, *, database_url: str | None = None
) -> list[Outcome]:
    """``database_url``: a store to keep the simulated runs in (the operator page's tests
    look at them afterwards); by default a throwaway SQLite file."""
    with tempfile.TemporaryDirectory() as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'simulation.db'}"
        upgrade(url)
        db = Database(url)
        # Channel rules (quiet hours, caps) and the encryption keys come from the environment
        # as in production; provider credentials never count: every channel goes to the console.
        settings = Settings(
            database_url=url, task_queue=QUEUE, sendgrid_api_key=None, twilio_account_sid=None
        )
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
            data_converter=data_converter(settings),
        )
        try:
            await search_attributes.register(env.client, env.client.namespace)
            return await _run(env, db, settings, journey_file, timeline)
        finally:
            await env.shutdown()
            db.dispose()


async def _run(
    env: WorkflowEnvironment,
    db: Database,
    settings: Settings,
    journey_file: Path,
    timeline: Timeline,
) -> list[Outcome]:
    # A broadcast file (examples/broadcasts/*.yaml) is simulated with the folder above its own.
    broadcast = _broadcast_file(journey_file)
    folder = journey_file.parent.parent if broadcast else journey_file.parent
    # Every store read and write of the simulation runs in a thread (``db.run``): the worker's
    # activities share this event loop and may hold SQLite's write lock while they wait on it.
    await db.run(_load_store, folder, timeline)
    relay = OutboxRelay(db, TemporalConnection(settings, client=env.client), settings)
    console = ConsoleProvider()
    channels = ("email", "sms", "webhook", "push", "whatsapp")
    providers = dict.fromkeys(channels, console)
    plugin = JourneysPlugin(settings, db=db, providers=providers)
    async with Worker(env.client, task_queue=QUEUE, plugins=[plugin]):
        if timeline.start is not None:
            now = await env.get_current_time()
            await env.sleep(first_start(now, timeline.start) - now)
        started = await env.get_current_time()
        lines = list(enumerate(sorted(timeline.events, key=lambda e: e.at)))
        # The contacts' history, then every segment computed as of the start (what the
        # backfill of a segment saved before the journey does): none of it starts a run, as
        # contacts already in a segment when a journey is published do not enter it.
        for number, scripted in lines:
            if scripted.at < timedelta(0):
                moment = started + scripted.at
                await _deliver(env, db, relay, scripted, f"simulation/{number}", moment)
        for key in await db.run(_segment_keys):
            await _refresh(env, relay, key, started)
        journey = None if broadcast else await db.run(_publish, journey_file)
        if broadcast:
            await db.run(load_templates, folder / "templates")
        expected: dict[str, str] = {}  # run id -> workflow id, of runs the relay did not record
        sent_broadcasts: list[tuple[str, str]] = []  # (broadcast id, file key)
        fires = await _date_fires(db, settings, journey, timeline, started) if journey else []
        segments = await db.run(segments_store.definitions)
        clock = _Schedules(env, db, relay, journey, fires, started, segments)
        clock.known(started + line.at for _, line in lines)
        clock.known(_dates_in([c.traits for c in timeline.contacts]))
        for number, scripted in lines:
            if scripted.at < timedelta(0):
                continue
            await clock.advance(started + scripted.at)
            await _sleep_until(env, started + scripted.at)
            moment = await env.get_current_time()
            if scripted.broadcast is not None:
                sent_broadcasts.append(
                    (await _broadcast(env, db, folder, scripted.broadcast), scripted.broadcast)
                )
                continue
            expected |= await _deliver(env, db, relay, scripted, f"simulation/{number}", moment)
            clock.known([moment, *_dates_in([scripted.identify or {}])])
        last = started + max([line.at for _, line in lines] + [timedelta(0)])
        await clock.advance(started + timeline.until if timeline.until is not None else last)
        if timeline.until is not None:
            await _sleep_until(env, started + timeline.until)
        outcomes = await _collect(env, db, expected, started, wait=timeline.until is None)
        for broadcast_id, key in sent_broadcasts:
            outcomes += await _recipients(env, db, broadcast_id, key, started, timeline)
    main = journey.key if journey is not None else f"broadcast {journey_file.stem}"
    return sorted(outcomes, key=lambda o: (o.journey != main, o.contact_id, _first(o)))


def _load_store(session: Session, folder: Path, timeline: Timeline) -> None:
    load_segments(session, folder / "segments")
    load_topics(session, folder / "topics")
    for contact in timeline.contacts:
        contacts_store.upsert(session, contact.id, contact.traits)
        for device in contact.devices:
            devices_store.register(session, contact.id, device.token, device.platform)


def _broadcast_file(path: Path) -> bool:
    document = load_document(path.read_text())
    return isinstance(document, dict) and document.get("kind") == "broadcast"


def simulated_key(path: Path) -> str:
    """The journey's key, or ``broadcast KEY`` for a broadcast file: what the outcomes of the
    simulated file are named by. Raises ``SpecInvalid`` (with paths) for a bad file."""
    if not _broadcast_file(path):
        return parse_journey(path.read_text()).key
    try:
        load_broadcast(path)
    except ValidationError as exc:
        raise SpecInvalid(
            [Problem(json_path(error["loc"]), error["msg"]) for error in exc.errors()]
        ) from exc
    return f"broadcast {path.stem}"


def load_broadcast(path: Path) -> BroadcastIn:
    """A broadcast file: the body of ``POST /v1/broadcasts`` (the options of ``journeys
    broadcast``), with a ``kind: broadcast`` and a ``key`` to tell it by."""
    document = dict(load_document(path.read_text()) or {})
    document.pop("kind", None)
    document.pop("key", None)
    return BroadcastIn.model_validate(document)


async def _broadcast(env: WorkflowEnvironment, db: Database, folder: Path, key: str) -> str:
    """``POST /v1/broadcasts`` with the file's body, through the API's service; its id."""
    body = load_broadcast(folder / "broadcasts" / f"{key}.yaml")
    created = await broadcasts_service.create(db, env.client, body, QUEUE)
    return created.id


async def _recipients(
    env: WorkflowEnvironment,
    db: Database,
    broadcast_id: str,
    key: str,
    started: datetime,
    timeline: Timeline,
) -> list[Outcome]:
    """What a broadcast did for each recipient, once it is over (or as it stands when the
    clock stopped): one outcome per recipient, named ``broadcast KEY``."""
    handle = env.client.get_workflow_handle(broadcast_workflow_id(broadcast_id))
    if timeline.until is None:
        async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
            await _result(handle)
    rows, messages = await db.run(_recipients_and_messages, broadcast_id)
    outcomes = []
    for row in rows:
        # Its due moment is the simulated clock's (a message row's times are the wall clock's).
        message = messages.get(row.contact_id)
        why = message.error if message is not None else None
        trace = [TraceEntry(seq=1, at=_utc(row.due_at), step=key, kind=row.status, detail=why)]
        outcomes.append(
            Outcome(row.contact_id, row.status, trace, started, journey=f"broadcast {key}")
        )
    return outcomes


def _recipients_and_messages(
    session: Session, broadcast_id: str
) -> tuple[list[Any], dict[str, Any]]:
    rows = broadcasts_store.recipients(session, broadcast_id, after=None, limit=1_000_000)
    messages = {
        row.contact_id: messages_store.get(session, row.message_id)
        for row in rows
        if row.message_id is not None
    }
    return rows, messages


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _segment_keys(session: Session) -> list[str]:
    segments = segments_store.definitions(session)
    return [segment.key for segment in in_dependency_order(segments.values())]


class _Schedules:
    """What the Temporal Schedules would start as the clock moves on, which the time-skipping
    server does not run: the date trigger's fires and the refreshes of segments that time alone
    changes.

    Time alone changes a membership only when "now" minus one of the segments' durations
    (``within: P90D``, ``before: P30D``) crosses a moment the store holds: an event's time or
    a date trait's day, all of which come from the timeline (or from a refresh). So the
    refresh fires checked are those at or just after such crossings; one that would change no
    membership (the same recompute, rolled back) is skipped, and the others run the refresh
    workflow, which gives the same memberships as firing every ``refresh`` over months
    would, in a few queries rather than thousands of workflows."""

    def __init__(
        self,
        env: WorkflowEnvironment,
        db: Database,
        relay: OutboxRelay,
        journey: Journey | None,
        date_fires: list[datetime],
        started: datetime,
        segments: dict[str, Segment],
    ) -> None:
        self._env, self._db, self._relay, self._journey = env, db, relay, journey
        self._fires = date_fires
        self._last_fire = started
        self._checked = started  # refresh fires up to here are done
        self._every = {
            segment.key: segment.refresh
            for segment in in_dependency_order(segments.values())
            if dependencies(segment).timed
        }
        self._durations = {d for segment in segments.values() for d in _durations(segment)}
        self._moments: set[datetime] = {started}

    def known(self, moments: Iterable[datetime]) -> None:
        """Moments the store now holds (events' times, date traits' days)."""
        self._moments.update(moments)

    async def advance(self, until: datetime) -> None:
        """Run every fire due at or before ``until``, in order (a refresh before a date fire
        of the same moment)."""
        while True:
            fire = self._fires[0] if self._fires and self._fires[0] <= until else None
            change = await self._next_change(fire or until)
            if change is not None:
                moment, keys = change
                for key in keys:
                    await _refresh(self._env, self._relay, key, moment)
            elif fire is not None:
                self._fires.pop(0)
                assert self._journey is not None  # date fires are a journey's
                self._last_fire = await _fire(self._env, self._journey, self._last_fire, fire)
            else:
                return

    async def _next_change(self, limit: datetime) -> tuple[datetime, list[str]] | None:
        """The next refresh fire up to ``limit`` that changes some membership, and the
        segments whose fire it is."""
        while True:
            fires = self._candidates()
            if not fires or fires[0][0] > limit:
                return None
            moment = fires[0][0]
            self._checked = moment
            keys = [key for at, key in fires if at == moment]
            changing = [
                key for key in keys if await asyncio.to_thread(self._would_change, key, moment)
            ]
            if changing:
                self._moments.add(moment)  # their segment.entered / exited events
                return moment, changing

    def _candidates(self) -> list[tuple[datetime, str]]:
        """(fire, segment) of the fires after those checked at or just after a crossing: the
        first fire at or after it and the next (a window's bound may be inclusive), for the
        crossing itself and for the UTC midnight after it (dates compare by calendar day)."""
        found = set()
        for moment in self._moments:
            for duration in self._durations:
                crossing = moment + duration
                midnight = crossing.replace(hour=0, minute=0, second=0, microsecond=0)
                for at in (crossing, midnight + timedelta(days=1)):
                    for key, every in self._every.items():
                        first = _next_tick(at - timedelta(microseconds=1), every)
                        found |= {(first, key), (first + every, key)}
        return sorted(f for f in found if f[0] > self._checked)

    def _would_change(self, key: str, moment: datetime) -> bool:
        # The recompute the refresh would run, rolled back: the store's own evaluation.
        session = self._db.sessions()
        try:
            return any(segments_store.recompute(session, key, moment).values())
        finally:
            session.rollback()
            session.close()


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _durations(segment: Any) -> set[timedelta]:
    """Every duration in a segment's condition (windows, relative dates)."""
    found: set[timedelta] = set()

    def walk(value: Any) -> None:
        if isinstance(value, timedelta):
            found.add(abs(value))
        elif isinstance(value, BaseModel):
            # The models themselves: their dumps write durations as ISO text.
            for name in type(value).model_fields:
                walk(getattr(value, name))
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list | tuple):
            for item in value:
                walk(item)

    walk(segment.condition)
    return found


def _dates_in(traits: list[dict[str, Any]]) -> list[datetime]:
    """UTC midnights of the ISO dates among traits (date conditions compare calendar days)."""
    found = []
    for values in traits:
        for value in values.values():
            if isinstance(value, str) and len(value) >= 10:
                try:
                    day = date.fromisoformat(value[:10])
                except ValueError:
                    continue
                found.append(datetime(day.year, day.month, day.day, tzinfo=UTC))
    return found


def _next_tick(after: datetime, every: timedelta) -> datetime:
    """The first fire after ``after`` of a schedule firing every ``every`` (Temporal counts
    interval fires from the Unix epoch)."""
    return _EPOCH + ((after - _EPOCH) // every + 1) * every


async def _refresh(
    env: WorkflowEnvironment, relay: OutboxRelay, key: str, moment: datetime
) -> None:
    """One fire of the segment's refresh schedule at ``moment``: its workflow recomputes the
    segment (and those naming it) at the workflow's clock; the relay routes the
    ``segment.entered`` / ``segment.exited`` events it stored."""
    await _sleep_until(env, moment)
    with env.auto_time_skipping_disabled():
        await env.client.execute_workflow(
            REFRESH_WORKFLOW,
            RefreshInput(key=key),
            id=f"{refresh_schedule_id(key)}-{moment.isoformat()}",
            task_queue=QUEUE,
        )
    while await relay.deliver_once():
        pass


async def _date_fires(
    db: Database, settings: Settings, journey: Journey, timeline: Timeline, started: datetime
) -> list[datetime]:
    """For a ``date_attribute`` journey, the moments its schedule's fires must come at for
    the scripted contacts: each one's local moment, and a fire at least every 30 days between
    (a fire's window is at most a month). The time-skipping server has no schedules, so the
    simulation starts each fire's workflow itself (``_fire``), at those moments only, rather
    than every quarter of an hour."""
    trigger = journey.trigger
    if not isinstance(trigger, DateAttributeTrigger | ScheduleTrigger):
        return []
    if timeline.until is None:
        # The timeline's problem, reported as the CLI reports a spec's: with its path.
        how = "a date" if isinstance(trigger, DateAttributeTrigger) else "a schedule"
        raise SpecInvalid(
            [Problem("$.until", f"journey {journey.key} enters by {how}: say how long to run")]
        )
    end = started + timeline.until
    if isinstance(trigger, ScheduleTrigger):
        # Its own schedule's fires, as Temporal would compute them (``journeys/cron.py``).
        when = trigger.schedule
        if isinstance(when, OnceSchedule):
            return [when.at] if started < when.at <= end else []
        return list(parse_cron(when.cron).fires_between(when.timezone, started, end))
    bounds = [started]
    while bounds[-1] < end:
        bounds.append(min(bounds[-1] + timedelta(days=30), end))

    def due(session: Session) -> set[datetime]:
        connection = session.connection()
        return {
            found.moment
            for after, until in zip(bounds, bounds[1:], strict=False)
            for found in find_due(connection, trigger, after, until, settings.default_timezone)
        }

    return sorted(set(bounds[1:]) | await db.run(due))


async def _fire(
    env: WorkflowEnvironment, journey: Journey, last: datetime, moment: datetime
) -> datetime:
    """One fire of the journey's date schedule at ``moment``, covering ``(last, moment]``
    (or of its own schedule: its members at ``moment`` enter)."""
    await _sleep_until(env, moment)
    # Without skipping: with no timer pending, the test server would leap to the fire's own
    # execution timeout (ten years on) while its activity runs.
    with env.auto_time_skipping_disabled():
        if isinstance(journey.trigger, ScheduleTrigger):
            await env.client.execute_workflow(
                SCHEDULED_ENTRY_WORKFLOW,
                ScheduledEntryInput(journey_key=journey.key, fire_at=moment),
                id=f"{scheduled_id(journey.key)}-{moment.isoformat()}",
                task_queue=QUEUE,
            )
            return moment
        await env.client.execute_workflow(
            DATE_ENTRY_WORKFLOW,
            DateEntryInput(journey_key=journey.key, every=moment - last, fire_at=moment),
            id=f"{schedule_id(journey.key)}-{moment.isoformat()}",
            task_queue=QUEUE,
        )
    return moment


async def _sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    wait = moment - await env.get_current_time()
    if wait > timedelta(0):
        await env.sleep(wait)


def _publish(session: Session, journey_file: Path) -> Journey:
    """The journey file, with the templates beside it (``templates/*.yaml``) and the journeys
    beside it that its ``enter`` steps name, transitively."""
    folder = journey_file.parent
    load_templates(session, folder / "templates")
    templates = templates_store.keys(session)
    journey = parse_journey(journey_file.read_text(), templates=templates)
    siblings = _journeys_in(folder, templates, skip=journey_file)
    todo, published = [journey], set()
    while todo:
        current = todo.pop()
        if current.key in published:
            continue
        publish_if_changed(session, current)
        published.add(current.key)
        todo += [siblings[k] for k in _entered(current) if k in siblings]
    return journey


def _journeys_in(folder: Path, templates: list[str], skip: Path) -> dict[str, Journey]:
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.resolve() == skip.resolve():
            continue
        try:
            other = parse_journey(path.read_text(), templates=templates)
        except SpecInvalid:
            continue  # a broken neighbour only matters if the simulated journey enters it
        found[other.key] = other
    return found


def _entered(journey: Journey) -> list[str]:
    return [step.enter.journey for step in journey.steps if isinstance(step, EnterStep)]


async def _deliver(
    env: WorkflowEnvironment,
    db: Database,
    relay: OutboxRelay,
    scripted: ScriptedEvent,
    message_id: str,
    moment: datetime,
) -> dict[str, str]:
    """Hand one timeline line to the API's services; the runs it started directly.
    The event's id (its Segment messageId) is fixed by its place in the timeline, so split
    variants, which hash the entry's trigger event, come out the same on every run."""
    if scripted.enroll is not None:
        results = await enroll(
            db, env.client, scripted.enroll, [scripted.userId], scripted.properties, QUEUE
        )
        return await _runs_of(env, {r.workflow_id for r in results if r.workflow_id})
    await db.run(_ingest_line, scripted, message_id, moment)
    while await relay.deliver_once():
        pass
    return {}  # the relay recorded the runs it started (enrollments)


def _ingest_line(
    session: Session, scripted: ScriptedEvent, message_id: str, moment: datetime
) -> None:
    call: TrackCall | IdentifyCall
    if scripted.identify is not None:
        call = IdentifyCall(
            userId=scripted.userId,
            messageId=message_id,
            timestamp=moment,
            traits=scripted.identify,
        )
    else:
        properties = dict(scripted.properties)
        contacts_store.get_or_create(session, scripted.userId)
        if scripted.message_step is not None:
            sent = messages_store.latest_of_step(session, scripted.userId, scripted.message_step)
            properties["message_id"] = sent.id if sent else None
        call = TrackCall(
            userId=scripted.userId,
            messageId=message_id,
            timestamp=moment,
            event=scripted.event or "",
            properties=properties,
        )
    ingest(session, [call], now=moment)


async def _collect(
    env: WorkflowEnvironment,
    db: Database,
    expected: dict[str, str],
    started: datetime,
    *,
    wait: bool,
) -> list[Outcome]:
    """Every run of the simulation: those the relay recorded, those the enroll API started and
    those that hand-offs started; waiting for each to end unless the clock stopped."""
    outcomes: dict[str, Outcome] = {}
    while True:
        runs = {**await db.run(enrollments_store.runs), **expected}
        pending = {run_id: wid for run_id, wid in runs.items() if run_id not in outcomes}
        if not pending:
            return list(outcomes.values())
        for run_id, wid in pending.items():
            outcome = await _outcome(env, wid, run_id, started, wait)
            outcomes[run_id] = outcome
            live = await db.run(journeys_store.live_version, outcome.journey)
            expected |= await _runs_of(env, _handed_to(live, outcome, run_names(env.client)))


async def _runs_of(env: WorkflowEnvironment, workflow_ids: set[str]) -> dict[str, str]:
    """The current run of each workflow id (right after a start: the run it started)."""
    runs = {}
    for wid in workflow_ids:
        description = await env.client.get_workflow_handle(wid).describe()
        runs[description.run_id] = wid
    return runs


async def _outcome(
    env: WorkflowEnvironment, wid: str, run_id: str, started: datetime, wait: bool
) -> Outcome:
    handle = env.client.get_workflow_handle(wid, run_id=run_id)
    if wait:
        async with env.time_skipping_unlocked():  # type: ignore[attr-defined]
            await _result(handle)
    view = await handle.query(STATE_QUERY, result_type=RunView)
    reason, waiting = None, view.waiting_for
    if view.status != "running":
        waiting = None
        result = await _result(handle)  # over already: answers at once
        reason = result.get("reason") if result else None
    return Outcome(
        view.contact_id,
        view.status,
        view.trace,
        started,
        journey=view.journey,
        reason=reason,
        waiting_for=waiting,
    )


async def _result(handle: WorkflowHandle) -> dict[str, Any] | None:
    try:
        return await handle.result()
    except WorkflowFailureError:
        return None  # a failed run still answers its query: the trace says why


def _handed_to(live: tuple[int, Journey] | None, outcome: Outcome, names: RunNames) -> set[str]:
    """Workflow ids of the runs this run's ``enter`` steps started (``live``: the journey's
    live version, as ``journeys_store.live_version`` answers it)."""
    if live is None:
        return set()
    steps = live[1].step_map()
    return {
        names.workflow_id(steps[entry.step].enter.journey, outcome.contact_id)  # type: ignore[union-attr]
        for entry in outcome.trace
        if entry.kind == "handed_off" and isinstance(steps.get(entry.step or ""), EnterStep)
    }


def _first(outcome: Outcome) -> datetime:
    return outcome.trace[0].at if outcome.trace else datetime.max.replace(tzinfo=UTC)


def format_outcomes(outcomes: list[Outcome], main: str | None = None) -> str:
    lines = []
    for outcome in outcomes:
        who = outcome.contact_id
        if main is not None and outcome.journey != main:
            who += f" [{outcome.journey}]"
        about = outcome.reason or outcome.waiting_for
        lines.append(f"{who}: {outcome.status}" + (f" ({about})" if about else ""))
        for entry in outcome.trace:
            offset = _offset(entry.at - outcome.started)
            detail = f"  {entry.detail}" if entry.detail else ""
            lines.append(f"  +{offset:<12} {entry.step or '-':<16} {entry.kind}{detail}")
    return "\n".join(lines) + "\n"


def _offset(delta: timedelta) -> str:
    seconds = round(delta.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours else []
    parts += [f"{minutes}m"] if minutes else []
    parts += [f"{seconds}s"] if seconds or not parts else []
    return " ".join(parts)
