"""The processes a benchmark runs on: a dev server, a worker, the API; and what they use.

Each is started on free loopback ports and stopped by the context manager that started it."""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from temporal_journeys.cli.devserver import SQLITE_PRAGMAS, start_dev_server, stop, wait_for_port
from temporal_journeys.store.migrate import upgrade
from tests.support.postgres import DEFAULT_URL, fresh_database

SERVER_URL = os.environ.get("JOURNEYS_TEST_POSTGRES_URL", DEFAULT_URL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def memory_kib(pid: int, field: str = "VmRSS") -> int:
    """A /proc figure of a process: VmRSS now, VmHWM its peak so far."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far."""
    return _stat_cpu_seconds(Path(f"/proc/{pid}/stat").read_text(), children=False)


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process on this machine, with the backends that ended
    (the postmaster holds theirs): its backends serve the worker, the API and the bench alike."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = stat.read_text()
            if text.split(" ", 2)[1] == "(postgres)":
                total += _stat_cpu_seconds(text, children=True)
    return total


def _stat_cpu_seconds(stat: str, children: bool) -> float:
    """Seconds of utime and stime from a /proc stat line; with ``children``, also the
    cutime and cstime of the children the process has reaped."""
    fields = stat.rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11 : 15 if children else 13])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class DevServer:
    process: subprocess.Popen[bytes]
    address: str
    file: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.contextmanager
def dev_server(pragmas: Sequence[str] | None = None) -> Iterator[DevServer]:
    """``temporal server start-dev`` on a SQLite file in a temporary folder, headless; with
    ``journeys.devserver``'s pragmas unless given (empty strings are dropped: ``[""]`` is none)."""
    with tempfile.TemporaryDirectory(prefix="journeys-bench-") as folder:
        port = free_port()
        file = Path(folder) / "temporal.db"
        log = Path(folder) / "temporal.log"
        chosen = SQLITE_PRAGMAS if pragmas is None else [p for p in pragmas if p]
        process = start_dev_server(file, port, None, log, chosen)
        try:
            yield DevServer(process, f"127.0.0.1:{port}", file)
        finally:
            stop(process)


@contextlib.contextmanager
def database() -> Iterator[str]:
    """A fresh, migrated Postgres database, dropped afterwards."""
    with fresh_database(SERVER_URL) as url:
        upgrade(url)
        yield url


def settings_env(url: str, temporal: str, task_queue: str, **more: str) -> dict[str, str]:
    return {
        **os.environ,
        # The API refuses to start without a secret for its unsubscribe links: one per run.
        "JOURNEYS_SECRET_KEY": secrets.token_hex(32),
        "JOURNEYS_DATABASE_URL": url,
        "JOURNEYS_TEMPORAL_ADDRESS": temporal,
        "JOURNEYS_TASK_QUEUE": task_queue,
        **{f"JOURNEYS_{name.upper()}": value for name, value in more.items()},
    }


@contextlib.contextmanager
def worker(env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    """``bench.worker`` in its own process; returns once it polls its task queue."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.worker"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the bench worker did not start")
        # Drained from then on, to stderr: the SDK core writes its warnings (workflow tasks
        # over 5 s, ...) to stdout, and once 64 KiB of them filled an unread pipe the worker's
        # workflow thread blocked on the write for good (bench.scale_out, under load).
        threading.Thread(target=_forward, args=(process.stdout,), daemon=True).start()
        yield process
    finally:
        _end(process)


def _forward(stream: IO[str]) -> None:
    for line in stream:
        sys.stderr.write(line)


@contextlib.contextmanager
def api(env: dict[str, str]) -> Iterator[str]:
    """uvicorn with the API (and its outbox relay); yields its base URL."""
    with api_process(env) as (url, _):
        yield url


@contextlib.contextmanager
def api_process(env: dict[str, str]) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """As ``api``, with the process too (its CPU is measured by ``bench.scale_out``)."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "temporal_journeys.api.app:app",
        "--port",
        str(port),
    ]
    command += ["--host", "127.0.0.1", "--log-level", "warning", "--no-access-log"]
    process = subprocess.Popen(command, env=env)
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}", process
    finally:
        _end(process)


def _end(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
