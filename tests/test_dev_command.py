"""`journeys dev` runs the whole embedded stack and stops all of it on Ctrl-C."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
from temporalio.client import Client

from journeys.devserver import wait_for_port

QUICK = """
key: quick-hello
name: Quick hello
trigger: {event: hello.requested}
steps:
  - id: pause
    wait: PT2S
  - id: hello
    send: {channel: email, template: quick-hello}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


async def test_dev_runs_a_journey_end_to_end_and_stops_cleanly(tmp_path: Path):
    examples = tmp_path / "examples"
    (examples / "templates").mkdir(parents=True)
    (examples / "quick-hello.yaml").write_text(QUICK)
    (examples / "templates" / "quick-hello.yaml").write_text("channel: email\nsubject: Hello\n")
    temporal, ui, api = free_port(), free_port(), free_port()
    command = [
        str(Path(sys.executable).parent / "journeys"),
        "dev",
        "--data-dir",
        str(tmp_path / "data"),
        "--temporal-port",
        str(temporal),
        "--ui-port",
        str(ui),
        "--api-port",
        str(api),
        "--examples",
        str(examples),
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # noqa: ASYNC220
    try:
        wait_for_port(api, seconds=90)
        key = (tmp_path / "data" / "dev-api-key").read_text().strip()
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{api}", headers={"Authorization": f"Bearer {key}"}
        ) as http:
            assert (await http.get("/readyz")).json()["ready"] is True
            identify = {"userId": "ada", "traits": {"email": "ada@example.com"}}
            assert (await http.post("/v1/identify", json=identify)).status_code == 202
            track = {"userId": "ada", "event": "hello.requested"}
            assert (await http.post("/v1/track", json=track)).status_code == 202

            client = await Client.connect(f"127.0.0.1:{temporal}")
            listed = []
            for _ in range(50):
                listed = [w async for w in client.list_workflows('JourneyKey="quick-hello"')]
                if listed:
                    break
                await asyncio.sleep(0.2)
            assert [w.id for w in listed] == ["journey/quick-hello/ada"]

            messages = []
            for _ in range(100):
                messages = (await http.get("/v1/messages?contact=ada")).json()
                if messages:
                    break
                await asyncio.sleep(0.2)
            assert [(m["template"], m["status"]) for m in messages] == [("quick-hello", "sent")]
            [stats] = (await http.get("/v1/journeys/quick-hello/stats")).json()
            assert stats["entered"] == 1
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 0, output
    for _ in range(50):  # ports close as the children exit
        if not any(port_open(p) for p in (temporal, ui, api)):
            break
        await asyncio.sleep(0.2)
    assert not any(port_open(p) for p in (temporal, ui, api)), "something it started still runs"
    assert "curl -s -X POST" in output and os.fspath(tmp_path) in output
