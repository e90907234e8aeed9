"""The dev server's UI wired to the API's codec server, as `journeys dev` does with encryption
on: a run's history read without the keys holds ciphertext, and the codec endpoint the UI
reports decodes it for an admin key (and for nobody without one)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
import uvicorn
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.cli.devserver import (
    start_dev_server,
    stop,
    temporal_binary,
    wait_for_port,
)
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import keys
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.codec import ENCODING, data_converter
from temporal_journeys.workflows.starter import start_run
from tests.support import harness as h
from tests.support.stack import free_port

pytestmark = pytest.mark.slow

EMAIL = "ursula.codec.ui@example.org"


@dataclass
class Wired:
    settings: Settings
    db: Database
    client: Client
    ui: str
    server_command: list[str]
    admin: dict[str, str]


@pytest_asyncio.fixture
async def wired(tmp_path: Path, own_postgres_url: str) -> AsyncIterator[Wired]:
    port, ui_port, api_port = free_port(), free_port(), free_port()
    settings = Settings(
        database_url=own_postgres_url,
        temporal_address=f"127.0.0.1:{port}",
        task_queue=h.unique("codec-ui"),
        secret_key="codec-ui-test-secret",
        encryption_keys={"k1": os.urandom(32)},
        codec_cors_origins=[f"http://127.0.0.1:{ui_port}"],
        sms_quiet_hours="",
    )
    server = start_dev_server(
        tmp_path / "temporal.db",
        port,
        ui_port,
        tmp_path / "temporal.log",
        codec_endpoint=f"http://127.0.0.1:{api_port}/codec",
    )
    db = Database(own_postgres_url)
    try:
        client = await Client.connect(
            settings.temporal_address, data_converter=data_converter(settings)
        )
        with db.transaction() as session:
            admin = {"Authorization": "Bearer " + keys.create(session, "ops", "admin")}
        app = create_app(settings, temporal=client, db=db, relay=False)
        api = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning")
        )
        serving = asyncio.create_task(api.serve())
        plugin = JourneysPlugin(settings, db=db)
        try:
            while not api.started:
                assert not serving.done(), "the API did not start"
                await asyncio.sleep(0.05)
            wait_for_port(ui_port)
            async with Worker(client, task_queue=settings.task_queue, plugins=[plugin]):
                yield Wired(
                    settings,
                    db,
                    client,
                    f"http://127.0.0.1:{ui_port}",
                    [str(part) for part in server.args],  # type: ignore[union-attr]
                    admin,
                )
        finally:
            api.should_exit = True
            await serving
    finally:
        stop(server)
        db.dispose()


async def test_the_ui_is_wired_to_the_codec_server_which_decodes_a_runs_payloads(wired: Wired):
    # The UI process got the endpoint, and reports it to the browser pages it serves.
    flag = wired.server_command.index("--ui-codec-endpoint")
    endpoint = wired.server_command[flag + 1]
    async with httpx.AsyncClient(timeout=30) as http:
        ui_settings = await _ui_settings(http, wired.ui)
        assert ui_settings["Codec"]["Endpoint"] == endpoint

        h.template(wired.db, "codec-ui-hello", subject="Hello", text="Hi {{ contact.email }}")
        version, journey = h.publish(
            wired.db,
            {
                "key": h.unique("codec-ui"),
                "name": "Codec UI",
                "trigger": {"event": "user.signed_up"},
                "steps": [
                    {"id": "hello", "send": {"channel": "email", "template": "codec-ui-hello"}},
                    {"id": "pause", "wait": "PT1H"},
                ],
            },
        )
        contact = h.contact(wired.db, email=EMAIL)
        handle = await start_run(
            wired.client,
            journey=journey,
            version=version,
            contact_id=contact,
            task_queue=wired.settings.task_queue,
            event=h.event("user.signed_up", email=EMAIL),
        )
        await h.wait_until(lambda: h.messages(wired.db, contact) != [], "the hello was sent")

        # As the UI reads it: from Temporal, without the keys.
        blind = Client(**{**wired.client.config(), "data_converter": pydantic_data_converter})
        history = await blind.get_workflow_handle(handle.id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        [payload] = started.input.payloads
        assert payload.metadata["encoding"] == ENCODING
        assert EMAIL.encode() not in payload.SerializeToString()
        body = {
            "payloads": [
                {
                    "metadata": {
                        k: base64.b64encode(v).decode() for k, v in payload.metadata.items()
                    },
                    "data": base64.b64encode(payload.data).decode(),
                }
            ]
        }
        ui_headers = {
            "Origin": wired.ui,
            "X-Namespace": wired.settings.temporal_namespace,
            "Content-Type": "application/json",
        }

        refused = await http.post(f"{endpoint}/decode", json=body, headers=ui_headers)
        decoded = await http.post(
            f"{endpoint}/decode", json=body, headers={**ui_headers, **wired.admin}
        )

        assert refused.status_code == 401
        assert EMAIL not in refused.text
        assert decoded.status_code == 200, decoded.text
        assert decoded.headers["access-control-allow-origin"] == wired.ui
        [plain] = decoded.json()["payloads"]
        assert base64.b64decode(plain["metadata"]["encoding"]) == b"json/plain"
        run_input = json.loads(base64.b64decode(plain["data"]))
        assert EMAIL in json.dumps(run_input)
        # The `temporal` CLI, through the same endpoint: decoded with the key, not without.
        # In a thread: the CLI calls the API, which runs on this event loop.
        key = wired.admin["Authorization"]
        shown = await asyncio.to_thread(_temporal_show, wired, handle.id, endpoint, key)
        blind_cli = await asyncio.to_thread(_temporal_show, wired, handle.id, endpoint, None)
        assert EMAIL in shown and EMAIL not in blind_cli
        await handle.terminate("test over")


def _temporal_show(wired: Wired, workflow_id: str, endpoint: str, auth: str | None) -> str:
    """The payloads' data in the history `temporal workflow show` prints, as text."""
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")},
        "TEMPORAL_CODEC_ENDPOINT": endpoint,
        **({"TEMPORAL_CODEC_AUTH": auth} if auth else {}),
    }
    command = [temporal_binary(), "workflow", "show", "--workflow-id", workflow_id]
    command += ["--address", wired.settings.temporal_address, "--output", "json"]
    shown = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=60)
    # The JSON form keeps payloads as protobuf JSON: their data is base64.
    datas = re.findall(r'"data":\s*"([A-Za-z0-9+/=_-]*)"', shown.stdout)
    return "\n".join(base64.b64decode(data).decode(errors="replace") for data in datas)


async def _ui_settings(http: httpx.AsyncClient, ui: str, seconds: float = 30) -> dict:
    """The UI's /api/v1/settings, once its server answers (it starts after the frontend)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        try:
            answer = await http.get(f"{ui}/api/v1/settings")
            if answer.status_code == 200:
                return answer.json()
        except httpx.TransportError:
            pass
        assert asyncio.get_running_loop().time() < deadline, "the UI did not answer"
        await asyncio.sleep(0.2)


async def test_journeys_dev_with_keys_wires_its_ui_to_its_own_codec_server(tmp_path: Path):
    temporal, ui, api = free_port(), free_port(), free_port()
    command = [str(Path(sys.executable).parent / "journeys"), "dev", "--data-dir"]
    command += [str(tmp_path / "data"), "--temporal-port", str(temporal), "--ui-port", str(ui)]
    command += ["--api-port", str(api), "--examples", str(tmp_path / "none")]
    keys_setting = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("JOURNEYS_")},
        "JOURNEYS_ENCRYPTION_KEYS": keys_setting,
    }
    # Into a file: a pipe read only at the end can fill and block the stack's logging.
    log = tmp_path / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: ASYNC220
            command, stdout=sink, stderr=subprocess.STDOUT, env=environment
        )
    endpoint = f"http://127.0.0.1:{api}/codec"
    try:
        wait_for_port(api, seconds=90)
        key = (tmp_path / "data" / "dev-api-key").read_text().strip()
        origin = f"http://localhost:{ui}"
        async with httpx.AsyncClient(timeout=30) as http:
            assert (await _ui_settings(http, f"http://127.0.0.1:{ui}"))["Codec"]["Endpoint"] == (
                endpoint
            )
            preflight = await http.options(
                f"{endpoint}/decode",
                headers={
                    "Origin": origin,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,x-namespace",
                },
            )
            body = {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "MQ=="}]}
            refused = await http.post(f"{endpoint}/encode", json=body)
            auth = {"Authorization": f"Bearer {key}"}
            sealed = await http.post(f"{endpoint}/encode", json=body, headers=auth)
            opened = await http.post(f"{endpoint}/decode", json=sealed.json(), headers=auth)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        output = log.read_text()

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == origin
    assert refused.status_code == 401
    assert sealed.status_code == 200 and sealed.json() != body
    assert opened.json() == body
    assert f"codec server: {endpoint}" in output
    assert key not in output
