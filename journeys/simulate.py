"""Run a journey on the real interpreter against a scripted timeline, on a private
time-skipping Temporal server and a throwaway SQLite store, with the console provider."""

from __future__ import annotations

import sys
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from journeys import search_attributes
from journeys.loader import load_templates, publish_if_changed
from journeys.plugin import JourneysPlugin
from journeys.records import JourneyEvent, TraceEntry
from journeys.settings import Settings
from journeys.spec import Journey
from journeys.spec import Offset as Duration
from journeys.starter import EVENT_SIGNAL, start_run
from journeys.validation import parse_journey
from store import contacts as contacts_store
from store import templates as templates_store
from store.db import Database
from store.migrate import upgrade
from store.models import Message
from workflows.types import RunView

QUEUE = "journeys-simulation"


class ScriptedContact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    traits: dict[str, Any] = Field(default_factory=dict)


class ScriptedEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")
    at: Duration = Field(description="When, counted from the start of the simulation.")
    userId: str
    event: str
    properties: dict[str, Any] = Field(default_factory=dict)
    message_step: str | None = Field(
        default=None, description="Engagement with the message that step sent to this contact."
    )


class Timeline(BaseModel):
    model_config = ConfigDict(extra="forbid")
    contacts: list[ScriptedContact] = Field(default_factory=list)
    events: list[ScriptedEvent] = Field(default_factory=list)


@dataclass
class Outcome:
    contact_id: str
    status: str
    trace: list[TraceEntry]
    started: datetime


def load_timeline(path: Path) -> Timeline:
    return Timeline.model_validate(yaml.safe_load(path.read_text()) or {})


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
    version, journey = _publish(db, journey_file)
    with db.transaction() as session:
        for contact in timeline.contacts:
            contacts_store.upsert(session, contact.id, contact.traits)
    plugin = JourneysPlugin(Settings(database_url=url, task_queue=QUEUE), db=db)
    handles: dict[str, WorkflowHandle] = {}
    async with Worker(env.client, task_queue=QUEUE, plugins=[plugin]):
        started = await env.get_current_time()
        for scripted in sorted(timeline.events, key=lambda e: e.at):
            wait = started + scripted.at - await env.get_current_time()
            if wait > timedelta(0):
                await env.sleep(wait)
            await _deliver(env.client, db, journey, version, scripted, handles)
        outcomes = []
        for contact_id, handle in handles.items():
            result = await handle.result()  # started through the environment: skips time
            view = await handle.query("state", result_type=RunView)
            outcomes.append(Outcome(contact_id, result["status"], view.trace, started))
    return outcomes


def _publish(db: Database, journey_file: Path) -> tuple[int, Journey]:
    """The journey file, with the templates beside it (``templates/*.yaml``)."""
    with db.transaction() as session:
        load_templates(session, journey_file.parent / "templates")
        journey = parse_journey(journey_file.read_text(), templates=templates_store.keys(session))
        return publish_if_changed(session, journey) or 1, journey


async def _deliver(
    client: Client,
    db: Database,
    journey: Journey,
    version: int,
    scripted: ScriptedEvent,
    handles: dict[str, WorkflowHandle],
) -> None:
    properties = dict(scripted.properties)
    if scripted.message_step is not None:
        with db.transaction() as session:
            sent = (
                session.query(Message)
                .filter_by(contact_id=scripted.userId, step_id=scripted.message_step)
                .order_by(Message.created_at.desc())
                .first()
            )
        properties["message_id"] = sent.id if sent else None
    event = JourneyEvent(id=str(uuid.uuid4()), name=scripted.event, properties=properties)
    trigger = journey.trigger
    if getattr(trigger, "event", None) == scripted.event and scripted.userId not in handles:
        handles[scripted.userId] = await start_run(
            client,
            journey=journey,
            version=version,
            contact_id=scripted.userId,
            task_queue=QUEUE,
            event=event,
        )
    elif scripted.userId in handles:  # events of contacts outside the journey change nothing
        await client.get_workflow_handle(handles[scripted.userId].id).signal(EVENT_SIGNAL, event)


def format_outcomes(outcomes: list[Outcome]) -> str:
    lines = []
    for outcome in outcomes:
        lines.append(f"{outcome.contact_id}: {outcome.status}")
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
