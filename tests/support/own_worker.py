"""A worker of a test's own, on a fresh task queue of the backend under test, with a second
``Database`` beside it for the code the test measures (so the statements it counts are that
code's alone, not the worker's)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from temporalio.client import Client
from temporalio.worker import Worker

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store.db import Database
from tests.support import harness as h
from tests.support.leftovers import end_open_runs


@asynccontextmanager
async def own_worker(
    client: Client, database_url: str, name: str
) -> AsyncIterator[tuple[Settings, Database]]:
    """The settings of a queue named after ``name`` with its worker running, and a database
    handle of the test's own; runs left open on the queue are ended before the worker goes,
    so none waits on a queue nobody polls."""
    settings = Settings(database_url=database_url, task_queue=h.unique(name), sms_quiet_hours="")
    worker_db, own_db = Database(database_url), Database(database_url)
    try:
        plugin = JourneysPlugin(settings, db=worker_db)
        async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
            try:
                yield settings, own_db
            finally:
                await end_open_runs(client, queue=settings.task_queue, reason=f"{name} test")
    finally:
        own_db.dispose()
        worker_db.dispose()
