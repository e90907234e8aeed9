"""Broadcast tests: the test API also served over real HTTP, for the CLI."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest_asyncio
import uvicorn

from tests.support.api import Api


@pytest_asyncio.fixture
async def served(api: Api) -> AsyncIterator[dict[str, str]]:
    """The test API on a free port in this event loop: the environment (``JOURNEYS_API_URL``,
    ``JOURNEYS_API_KEY``) the ``journeys broadcast`` command needs to reach it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(api.app, host="127.0.0.1", port=port, log_level="warning")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    assert server.started, "the API did not start"
    try:
        key = api.admin["Authorization"].removeprefix("Bearer ")
        yield {"JOURNEYS_API_URL": f"http://127.0.0.1:{port}", "JOURNEYS_API_KEY": key}
    finally:
        server.should_exit = True
        await task
