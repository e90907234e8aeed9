"""Channel tests' world: settings pointing the real SDKs at the fake provider server, a worker
with settings of a test's own, and one-send journeys published, started and read back.

``CHANNEL_QUEUE`` is the task queue of the shared channel worker (the ``channel_client``
fixture); tests that need other channel settings (quiet hours, caps) start their own worker with
``channel_worker``."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.starter import start_run
from temporal_journeys.workflows.types import JourneyResult, RunView
from tests.support import harness as h
from tests.support.fake_providers import FakeProviders
from tests.support.leftovers import end_open_runs

CHANNEL_QUEUE = "journeys-channels-test"
SECRET_KEY = "channel-tests-secret-key-0123456789"
WEBHOOK_SECRET = "whsec-channel-tests"
PUBLIC_URL = "https://journeys.example.test"
TWILIO_SID = "AC" + "0" * 32


def channel_settings(postgres_url: str, fake: FakeProviders, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": postgres_url,
        "task_queue": CHANNEL_QUEUE,
        "sendgrid_api_key": "SG.test",
        "sendgrid_base_url": fake.url,
        "twilio_account_sid": TWILIO_SID,
        "twilio_auth_token": "twilio-test-token",
        "twilio_from_number": "+15005550006",
        "twilio_base_url": fake.url,
        "secret_key": SECRET_KEY,
        "webhook_signing_secret": WEBHOOK_SECRET,
        "public_url": PUBLIC_URL,
        "unsubscribe_mailto": "unsubscribe@journeys.example.test",
        # Short, so a slow answer times out in about a second of real time.
        "provider_timeout_seconds": 1.0,
        "sms_quiet_hours": "",
    }
    values.update(overrides)
    return Settings(**values)


@asynccontextmanager
async def channel_worker(
    env: WorkflowEnvironment, db: Database, settings: Settings
) -> AsyncIterator[str]:
    """A worker with ``settings`` on a task queue of its own; yields the queue's name."""
    queue = f"{settings.task_queue}-{uuid.uuid4().hex[:8]}"
    plugin = JourneysPlugin(settings.model_copy(update={"task_queue": queue}), db=db)
    async with Worker(env.client, task_queue=queue, plugins=[plugin]):
        try:
            yield queue
        finally:
            await end_open_runs(env.client, queue=queue, reason="its worker is stopping")


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
