"""One-send journeys for the channel tests: publish, start on a worker's queue, read results."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowHandle

from journeys.starter import start_run
from store.db import Database
from tests.channels.conftest import CHANNEL_QUEUE
from tests.engine import harness as h
from workflows.types import JourneyResult, RunView


def send_steps(channel: str, template: str, **send: Any) -> list[dict[str, Any]]:
    """A send with ``on_failure`` going to a step that tags the contact."""
    return [
        {
            "id": "send",
            "send": {"channel": channel, "template": template, **send},
            "on_failure": "fallback",
            "next": "done",
        },
        {"id": "fallback", "update": {"add_tags": ["send-failed"]}},
        {"id": "done", "exit": {}},
    ]


async def run_journey(
    client: Client,
    db: Database,
    contact: str,
    steps: list[dict[str, Any]],
    queue: str = CHANNEL_QUEUE,
    **properties: Any,
) -> tuple[JourneyResult, RunView]:
    return await h.finish(await start_journey(client, db, contact, steps, queue, **properties))


async def start_journey(
    client: Client,
    db: Database,
    contact: str,
    steps: list[dict[str, Any]],
    queue: str = CHANNEL_QUEUE,
    **properties: Any,
) -> WorkflowHandle:
    spec = {
        "key": h.unique("channels"),
        "name": "Channel test",
        "trigger": {"event": "test.started"},
        "steps": steps,
    }
    version, journey = h.publish(db, spec)
    return await start_run(
        client,
        journey=journey,
        version=version,
        contact_id=contact,
        task_queue=queue,
        event=h.event("test.started", **properties),
    )


async def run_send(
    client: Client,
    db: Database,
    contact: str,
    channel: str,
    template: str,
    queue: str = CHANNEL_QUEUE,
    **properties: Any,
) -> tuple[JourneyResult, RunView]:
    return await run_journey(
        client, db, contact, send_steps(channel, template), queue, **properties
    )


def step_kinds(view: RunView) -> list[tuple[str | None, str]]:
    """(step, kind) of the trace entries that tell what happened to sends and fallbacks."""
    kinds = {"sent", "skipped", "failed", "deferred", "updated"}
    return [(entry.step, entry.kind) for entry in view.trace if entry.kind in kinds]


def detail(view: RunView, kind: str) -> str:
    [entry] = h.at(view, kind)
    return entry.detail or ""
