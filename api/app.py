"""The FastAPI application: ``create_app(settings)``; uvicorn runs its ``app`` factory."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping

from fastapi import FastAPI
from temporalio.client import Client

from temporal_journeys.activities.providers import default_providers
from temporal_journeys.activities.providers.base import Provider
from temporal_journeys.api import errors
from temporal_journeys.api.bodies import BodyLimit
from temporal_journeys.api.cors import CodecCors
from temporal_journeys.api.routes import (
    broadcasts,
    codec,
    contacts,
    devices,
    events,
    health,
    journeys,
    messages,
    outbox,
    segments,
    templates,
    topics,
    unsubscribe,
    webhooks,
)
from temporal_journeys.api.services import retention, schedules
from temporal_journeys.api.services import segments as segment_service
from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.api.ui import routes as ui
from temporal_journeys.journeys.settings import Settings, get_settings
from temporal_journeys.store.contact_keys import keyring
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import encryption_codec


def create_app(
    settings: Settings | None = None,
    *,
    temporal: Client | None = None,
    db: Database | None = None,
    relay: bool = True,
    providers: Mapping[str, Provider] | None = None,
) -> FastAPI:
    """An app for these settings; pass a Temporal client or database to share your own, and
    providers for its template test sends (the settings' SendGrid, Twilio or console)."""
    settings = settings or get_settings()
    database = db or Database(settings.database_url)
    # One keyring for the client and the codec server, so erasing forgets a key for both.
    contact_keys = keyring(database, settings)
    connection = TemporalConnection(settings, temporal, contact_keys=contact_keys)
    outbox_relay = OutboxRelay(database, connection, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.require_secret_key()  # the API serves unsubscribe links: no start without it
        connection.start()
        running = relay and settings.relay
        task = asyncio.create_task(outbox_relay.run()) if running else None
        # Segments saved while Temporal was away, or loaded by `journeys dev`: their backfill
        # and refresh schedule, once the client connects.
        reconciling = (
            asyncio.create_task(
                segment_service.reconcile_when_connected(database, connection, settings.task_queue)
            )
            if running
            else None
        )
        # Date-triggered journeys' schedules, in line with journeys changed while Temporal was
        # away or loaded by `journeys dev`.
        dated = (
            asyncio.create_task(schedules.reconcile_when_connected(database, connection, settings))
            if running
            else None
        )
        # The daily retention schedule, in line with these settings.
        retaining = (
            asyncio.create_task(retention.sync_when_connected(connection, settings))
            if running
            else None
        )
        try:
            yield
        finally:
            if retaining is not None:
                retaining.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await retaining
            if dated is not None:
                dated.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await dated
            if reconciling is not None:
                reconciling.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reconciling
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
    # The codec server's: None when no keys are set (the routes then answer 404).
    app.state.codec = encryption_codec(settings, contact_keys)
    # Test sends of templates go out through the same providers as the worker's sends.
    app.state.providers = providers or default_providers(settings)
    errors.install(app)
    for module in (
        events,
        devices,
        contacts,
        templates,
        topics,
        journeys,
        segments,
        broadcasts,
        messages,
        outbox,
        webhooks,
        unsubscribe,
        health,
        codec,
    ):
        app.include_router(module.router)
    # The operator page under /ui: its own sign-in, a session cookie instead of a bearer key.
    ui.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    # Outermost, so that preflights are answered and even a 413 carries the CORS headers the
    # browser needs to show it.
    app.add_middleware(CodecCors, origins=settings.codec_cors_origins)
    return app


def app() -> FastAPI:
    """Factory for ``uvicorn --factory temporal_journeys.api.app:app``."""
    return create_app()
