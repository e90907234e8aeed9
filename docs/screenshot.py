"""Takes docs/images/ui-decoded-input.png: the Temporal UI showing an encrypted run's input
decoded through the API's codec server, with headless Chromium (`make browser-deps`).

It starts a dev server whose UI has the codec endpoint, the API and a worker in this process
on a throwaway SQLite store, runs a journey with encryption on, and loads the run's page. The
UI has no login of its own, so its calls to the codec server carry no key; here a small wrapper
in front of ``/codec`` adds the codec token, as the authenticating proxy that
docs/operating.md describes would for an operator who passed its login.

    .venv/bin/python docs/screenshot.py [--out docs/images/ui-decoded-input.png]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import quote

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.client import Client
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.cli.devserver import start_dev_server, stop, wait_for_port
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.validation import parse_journey
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import contacts, journeys
from temporal_journeys.store.db import Database
from temporal_journeys.store.migrate import upgrade
from temporal_journeys.workflows.codec import data_converter
from temporal_journeys.workflows.starter import start_run

HERE = Path(__file__).parent
JOURNEY = {
    "key": "welcome",
    "name": "Welcome",
    "trigger": {"event": "user.signed_up"},
    "steps": [{"id": "pause", "wait": "PT1S"}],
}


class AddsBearer:
    """Stands in for the authenticating proxy in front of ``/codec``: adds the token."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self._app = app
        self._header = (b"authorization", f"Bearer {token}".encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/codec/"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"authorization"]
            scope = {**scope, "headers": [*headers, self._header]}
        await self._app(scope, receive, send)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise SystemExit("no Chromium: run `make browser-deps`")


def screenshot(url: str, out: Path) -> None:
    command = [
        chromium(),
        "--headless",
        "--no-sandbox",  # root in a container has no user namespaces for the sandbox
        "--disable-gpu",
        "--hide-scrollbars",
        "--window-size=1400,1000",
        # Virtual time waits for the page's requests (the history, then the codec) to settle;
        # the run has completed, so the UI does not keep polling it.
        "--virtual-time-budget=15000",
        f"--screenshot={out.resolve()}",
        url,
    ]
    subprocess.run(command, check=True, capture_output=True, timeout=90)


async def main(out: Path) -> None:
    folder = Path(tempfile.mkdtemp(prefix="journeys-screenshot-"))
    port, ui_port, api_port = free_port(), free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    token = secrets.token_urlsafe(24)
    settings = Settings(
        database_url=f"sqlite:///{folder / 'journeys.db'}",
        temporal_address=f"127.0.0.1:{port}",
        secret_key=secrets.token_hex(16),
        encryption_keys=f"k1:{base64.b64encode(os.urandom(32)).decode()}",
        codec_token=token,
        codec_cors_origins=[ui],
        sms_quiet_hours="",
    )
    upgrade(settings.database_url)
    db = Database(settings.database_url)
    spec = parse_journey(JOURNEY)
    with db.transaction() as session:
        version = journeys.publish(session, spec)
        traits = {"email": "ada.lovelace@example.org", "first_name": "Ada", "plan": "pro"}
        contacts.upsert(session, "ada", traits)
    server = start_dev_server(
        folder / "temporal.db",
        port,
        ui_port,
        folder / "temporal.log",
        codec_endpoint=f"http://127.0.0.1:{api_port}/codec",
    )
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=data_converter(settings)
        )
        app = AddsBearer(create_app(settings, temporal=client, db=db, relay=False), token)
        api = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning")
        )
        serving = asyncio.create_task(api.serve())
        plugin = JourneysPlugin(settings, db=db)
        try:
            async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
                signed_up = JourneyEvent(
                    id="evt-1",
                    name="user.signed_up",
                    properties={"email": "ada.lovelace@example.org", "plan": "pro"},
                )
                handle = await start_run(
                    client,
                    journey=spec,
                    version=version,
                    contact_id="ada",
                    task_queue=settings.task_queue,
                    event=signed_up,
                )
                await handle.result()
                wait_for_port(ui_port)
                run = (await handle.describe()).run_id
                page = f"{ui}/namespaces/default/workflows/{quote(handle.id, safe='')}/{run}"
                # In a thread: the page calls the API, which runs on this event loop.
                await asyncio.to_thread(screenshot, f"{page}/history", out)
        finally:
            api.should_exit = True
            await serving
    finally:
        stop(server)
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE / "images" / "ui-decoded-input.png")
    arguments = parser.parse_args()
    arguments.out.parent.mkdir(parents=True, exist_ok=True)
    asyncio.run(main(arguments.out))
