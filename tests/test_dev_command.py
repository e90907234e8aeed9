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
import pytest
from temporalio.client import Client

from temporal_journeys.cli import devserver
from temporal_journeys.cli.devserver import start_dev_server, stop, wait_for_port

pytestmark = pytest.mark.slow

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
    # As on a developer's machine: no secret key set, `journeys dev` makes its own.
    env = {k: v for k, v in os.environ.items() if k != "JOURNEYS_SECRET_KEY"}
    # Into a file, not a pipe nobody reads until the end: a full pipe blocks the API's logging,
    # and with it the API (a poll then times out).
    log = tmp_path / "dev.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(  # noqa: ASYNC220
            command, stdout=sink, stderr=subprocess.STDOUT, env=env
        )
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

            # Until the send is done: the row is written (pending, then sending) before the
            # provider is called, and a cold first start is slow.
            messages = []
            for _ in range(300):
                messages = (await http.get("/v1/messages?contact=ada")).json()
                if messages and not {m["status"] for m in messages} & {"pending", "sending"}:
                    break
                await asyncio.sleep(0.2)
            assert [(m["template"], m["status"]) for m in messages] == [("quick-hello", "sent")]
            [stats] = (await http.get("/v1/journeys/quick-hello/stats")).json()
            assert stats["entered"] == 1
            # Issue 17, item 5: the operator page, signed in with the same key.
            signed = await http.post("/ui/login", data={"key": key})
            assert signed.status_code == 303, signed.text
            page = await http.get("/ui/journeys/quick-hello", headers={"Accept": "text/html"})
            assert page.status_code == 200 and 'data-step="hello"' in page.text
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        output = log.read_text()
    assert process.returncode == 0, output
    for _ in range(50):  # ports close as the children exit
        if not any(port_open(p) for p in (temporal, ui, api)):
            break
        await asyncio.sleep(0.2)
    assert not any(port_open(p) for p in (temporal, ui, api)), "something it started still runs"
    assert "curl -s -X POST" in output and os.fspath(tmp_path) in output
    assert f"journeys UI:  http://127.0.0.1:{api}/ui" in output
    # Issue 14, item 11: the banner printed the admin key, and so did every log of it.
    assert key not in output
    assert f"$(cat {tmp_path / 'data' / 'dev-api-key'})" in output
    assert not (tmp_path / "data" / "temporal.pid").exists()


def _running(pid: int) -> bool:
    """True while ``pid`` is a live process; a zombie (exited, never reaped) counts too."""
    return Path(f"/proc/{pid}").exists()


def test_a_restart_after_a_crash_stops_the_orphaned_server_and_reaps_it(tmp_path: Path):
    """Issue 14, item 9: the second start found the first server answering, took it for its
    own and left its own process, which could not bind the port, a zombie."""
    port = free_port()
    db_file = tmp_path / "data" / "temporal.db"
    crashed = start_dev_server(db_file, port, None, tmp_path / "first.log")
    orphan = crashed.pid
    del crashed  # what a crash of `journeys dev` does: nobody stops the server
    try:
        server = start_dev_server(db_file, port, None, tmp_path / "second.log")
        try:
            assert server.poll() is None, "the new server is not running"
            assert not _running(orphan), "the orphaned server still runs (or is a zombie)"
            recorded = (tmp_path / "data" / "temporal.pid").read_text().split()
            assert recorded == [str(server.pid), str(os.getpid())]
        finally:
            stop(server)
        assert not (tmp_path / "data" / "temporal.pid").exists()
        assert not port_open(port)
    finally:
        if _running(orphan):  # the old code left it: end it, then reap it
            os.kill(orphan, signal.SIGKILL)
            os.waitpid(orphan, 0)


def test_a_port_held_by_another_program_is_refused_with_a_clear_message(tmp_path: Path):
    # Other tests' servers (the session's time-skipping server) may be children already.
    before = set(_children())
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        with pytest.raises(RuntimeError) as refused:
            process = start_dev_server(tmp_path / "temporal.db", port, None, tmp_path / "t.log")
            stop(process)  # the old code got here with a server that had exited at once

    message = str(refused.value)
    assert f"port {port}" in message and "--temporal-port" in message
    assert not (tmp_path / "temporal.pid").exists()
    assert set(_children()) <= before, "a process it started is left (running or a zombie)"


def test_a_server_is_ready_only_once_its_frontend_says_it_is_serving():
    """An open port is not enough: in CI a client connecting just after it was told "Frontend
    is not healthy yet". Here the port answers (a plain listener) but nothing serves gRPC."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            with pytest.raises(TimeoutError, match="not serving"):
                devserver._wait_until_serving(running, port, None, seconds=2)
        finally:
            running.kill()
            running.wait()


def _children() -> list[str]:
    """This process's children, as "pid state command", from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
            command, fields = rest.rsplit(") ", 1)
        except (OSError, ValueError):
            continue  # it ended while we looked
        state, parent = fields.split()[:2]
        if int(parent) == os.getpid():
            found.append(f"{pid} {state} {command}")
    return found


# A `journeys dev` stand-in: starts the server, says so, and waits to be killed.
STARTER = """
import sys, time
from pathlib import Path
from temporal_journeys.cli.devserver import start_dev_server
start_dev_server(Path(sys.argv[1]), int(sys.argv[2]), None)
print("started", flush=True)
time.sleep(600)
"""


def _state(pid: int) -> str | None:
    """The process's state letter (Z for a zombie), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def test_a_server_whose_starter_runs_is_refused_and_stopped_once_the_starter_crashed(
    tmp_path: Path,
):
    port = free_port()
    db_file = tmp_path / "data" / "temporal.db"
    starter = subprocess.Popen(
        [sys.executable, "-c", STARTER, str(db_file), str(port)], stdout=subprocess.PIPE
    )
    server_pid = 0
    try:
        assert starter.stdout is not None and starter.stdout.readline() == b"started\n"
        server_pid = int((tmp_path / "data" / "temporal.pid").read_text().split()[0])

        with pytest.raises(RuntimeError, match=f"still runs \\(pid {starter.pid}"):
            start_dev_server(db_file, port, None, tmp_path / "second.log")
        assert _state(server_pid) not in (None, "Z"), "a running stack's server was stopped"

        starter.kill()  # the crash: its server lives on, a child of init now
        starter.wait()
        server = start_dev_server(db_file, port, None, tmp_path / "third.log")
        try:
            # Stopped; its new parent reaps it (a zombie until then, not ours to reap).
            assert _state(server_pid) in (None, "Z")
        finally:
            stop(server)
    finally:
        starter.kill()
        starter.wait()
        if server_pid and _state(server_pid) not in (None, "Z"):
            os.kill(server_pid, signal.SIGKILL)
