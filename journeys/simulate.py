"""Run a journey on the real interpreter against a scripted timeline, on a private
time-skipping Temporal server and a throwaway SQLite store, with the console provider.

Events take the production path: stored (so branch history conditions count them), queued in
the outbox and routed by the API's relay, which starts runs whose trigger matches and signals
only the running runs that listen for the event. ``enroll`` lines go through the enroll API's
service. Journeys that the simulated one hands contacts to (``enter`` steps) are published from
the same folder, and their runs are reported too."""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.client import WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.providers.console import ConsoleProvider
from api.services.journeys import enroll
from api.services.relay import OutboxRelay
from api.temporal import TemporalConnection
from journeys import search_attributes
from journeys.loader import load_templates, publish_if_changed
from journeys.plugin import JourneysPlugin
from journeys.records import TraceEntry
from journeys.settings import Settings
from journeys.spec import ClockTime, EnterStep, Journey, Key
from journeys.spec import Duration as Horizon
from journeys.spec import Offset as Duration
from journeys.starter import workflow_id
from journeys.validation import SpecInvalid, load_document, parse_journey
from store import contacts as contacts_store
from store import events as events_store
from store import journeys as journeys_store
from store import templates as templates_store
from store.db import Database
from store.migrate import upgrade
from store.models import Enrollment, Message
from workflows.types import RunView

QUEUE = "journeys-simulation"


class ScriptedContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    traits: dict[str, Any] = Field(default_factory=dict)


class ScriptedEvent(BaseModel):
    """An event the contact's app sends (``event``), or an enrolment by API (``enroll``)."""

    model_config = ConfigDict(extra="forbid")
    at: Duration = Field(description="When, counted from the start of the simulation.")
    userId: str
    event: str | None = None
    enroll: Key | None = Field(default=None, description="A journey key: POST .../enroll.")
    properties: dict[str, Any] = Field(default_factory=dict)
    message_step: str | None = Field(
        default=None, description="Engagement with the message that step sent to this contact."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> ScriptedEvent:
        if (self.event is None) == (self.enroll is None):
            raise ValueError("a timeline line has either `event` or `enroll`")
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


async def simulate(journey_file: Path, timeline: Timeline) -> list[Outcome]:
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'simulation.db'}"
        upgrade(url)
        db = Database(url)
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(Path(sys.executable).parent / "temporal-test-server"),
            data_converter=pydantic_data_converter,
        )
        try:
            await search_attributes.register(env.client, env.client.namespace)
            return await _run(env, db, url, journey_file, timeline)
        finally:
            await env.shutdown()
            db.dispose()


async def _run(
    env: WorkflowEnvironment, db: Database, url: str, journey_file: Path, timeline: Timeline
) -> list[Outcome]:
    journey = _publish(db, journey_file)
    with db.transaction() as session:
        for contact in timeline.contacts:
            contacts_store.upsert(session, contact.id, contact.traits)
    # Channel rules (quiet hours, caps) come from the environment as in production; provider
    # credentials never count: every channel goes to the console.
    settings = Settings(
        database_url=url, task_queue=QUEUE, sendgrid_api_key=None, twilio_account_sid=None
    )
    relay = OutboxRelay(db, TemporalConnection(settings, client=env.client), settings)
    console = ConsoleProvider()
    providers = {"email": console, "sms": console, "webhook": console}
    plugin = JourneysPlugin(settings, db=db, providers=providers)
    async with Worker(env.client, task_queue=QUEUE, plugins=[plugin]):
        if timeline.start is not None:
            now = await env.get_current_time()
            await env.sleep(first_start(now, timeline.start) - now)
        started = await env.get_current_time()
        expected: dict[str, str] = {}  # run id -> workflow id, of runs the relay did not record
        for number, scripted in enumerate(sorted(timeline.events, key=lambda e: e.at)):
            await _sleep_until(env, started + scripted.at)
            expected |= await _deliver(env, db, relay, scripted, f"simulation/{number}")
        if timeline.until is not None:
            await _sleep_until(env, started + timeline.until)
        outcomes = await _collect(env, db, expected, started, wait=timeline.until is None)
    return sorted(outcomes, key=lambda o: (o.journey != journey.key, o.contact_id, _first(o)))


async def _sleep_until(env: WorkflowEnvironment, moment: datetime) -> None:
    wait = moment - await env.get_current_time()
    if wait > timedelta(0):
        await env.sleep(wait)


def _publish(db: Database, journey_file: Path) -> Journey:
    """The journey file, with the templates beside it (``templates/*.yaml``) and the journeys
    beside it that its ``enter`` steps name, transitively."""
    folder = journey_file.parent
    with db.transaction() as session:
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
) -> dict[str, str]:
    """Hand one timeline line to the API's services; the runs it started directly.
    The event's id (its Segment messageId) is fixed by its place in the timeline, so split
    variants, which hash the entry's trigger event, come out the same on every run."""
    if scripted.enroll is not None:
        results = await enroll(
            db, env.client, scripted.enroll, [scripted.userId], scripted.properties, QUEUE
        )
        return await _runs_of(env, {r.workflow_id for r in results if r.workflow_id})
    properties = dict(scripted.properties)
    now = await env.get_current_time()
    with db.transaction() as session:
        contacts_store.get_or_create(session, scripted.userId)
        if scripted.message_step is not None:
            sent = (
                session.query(Message)
                .filter_by(contact_id=scripted.userId, step_id=scripted.message_step)
                .order_by(Message.created_at.desc())
                .first()
            )
            properties["message_id"] = sent.id if sent else None
        row = {
            "message_id": message_id,
            "contact_id": scripted.userId,
            "name": scripted.event,
            "properties": properties,
            "timestamp": now,
        }
        events_store.accept(session, [row], now)
    while await relay.deliver_once():
        pass
    return {}  # the relay recorded the runs it started (enrollments)


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
        runs = {**_recorded_runs(db), **expected}
        pending = {run_id: wid for run_id, wid in runs.items() if run_id not in outcomes}
        if not pending:
            return list(outcomes.values())
        for run_id, wid in pending.items():
            outcome = await _outcome(env, wid, run_id, started, wait)
            outcomes[run_id] = outcome
            expected |= await _runs_of(env, _handed_to(db, outcome))


def _recorded_runs(db: Database) -> dict[str, str]:
    with db.transaction() as session:
        return {row.id: row.workflow_id for row in session.query(Enrollment)}


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
    view = await handle.query("state", result_type=RunView)
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


def _handed_to(db: Database, outcome: Outcome) -> set[str]:
    """Workflow ids of the runs this run's ``enter`` steps started."""
    with db.transaction() as session:
        live = journeys_store.live_version(session, outcome.journey)
    if live is None:
        return set()
    steps = live[1].step_map()
    return {
        workflow_id(steps[entry.step].enter.journey, outcome.contact_id)  # type: ignore[union-attr]
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
