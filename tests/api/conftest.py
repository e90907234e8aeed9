"""The API on the shared Postgres database and time-skipping Temporal server, over ASGI."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest_asyncio
from fastapi import FastAPI
from temporalio.client import Client

from api.app import create_app
from journeys.plugin import JourneysPlugin
from store import keys
from store.db import Database


@dataclass
class Api:
    app: FastAPI
    http: httpx.AsyncClient
    admin: dict[str, str]
    track: dict[str, str]

    async def relay(self) -> int:
        """Route everything queued, as the background relay would."""
        total = 0
        while delivered := await self.app.state.relay.deliver_once():
            total += delivered
        return total


@pytest_asyncio.fixture
async def api(client: Client, engine_db: Database, plugin: JourneysPlugin) -> AsyncIterator[Api]:
    app = create_app(plugin.settings, temporal=client, db=engine_db, relay=False)
    with engine_db.transaction() as session:
        admin = keys.create(session, "test admin", "admin")
        track = keys.create(session, "test app", "track")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(
            app,
            http,
            {"Authorization": f"Bearer {admin}"},
            {"Authorization": f"Bearer {track}"},
        )
