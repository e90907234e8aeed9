"""The FastAPI application: ``create_app(settings)``; uvicorn runs ``api.app:app``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from temporalio.client import Client

from api import errors
from api.bodies import BodyLimit
from api.routes import (
    contacts,
    events,
    health,
    journeys,
    messages,
    templates,
    unsubscribe,
    webhooks,
)
from api.services.relay import OutboxRelay
from api.temporal import TemporalConnection
from journeys.settings import Settings, get_settings
from store.db import Database


def create_app(
    settings: Settings | None = None,
    *,
    temporal: Client | None = None,
    db: Database | None = None,
    relay: bool = True,
) -> FastAPI:
    """An app for these settings; pass a Temporal client or database to share your own."""
    settings = settings or get_settings()
    database = db or Database(settings.database_url)
    connection = TemporalConnection(settings, temporal)
    outbox_relay = OutboxRelay(database, connection, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection.start()
        running = relay and settings.relay
        task = asyncio.create_task(outbox_relay.run()) if running else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await connection.stop()
            if db is None:
                database.dispose()

    app = FastAPI(
        title="journeys",
        version="0.1.0",
        description="Marketing journeys as durable Temporal workflows.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.db = database
    app.state.temporal = connection
    app.state.relay = outbox_relay
    errors.install(app)
    for module in (events, contacts, templates, journeys, messages, webhooks, unsubscribe, health):
        app.include_router(module.router)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory api.app:app``."""
    return create_app()
