"""A PostgreSQL server for the tests: the configured one, or a throwaway one outside CI."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from glob import glob
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def answers(url: str) -> bool:
    engine = create_engine(url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect():
            return True
    except Exception:
        return False
    finally:
        engine.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(what: str, *command: object) -> None:
    done = subprocess.run([str(part) for part in command], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed: {done.stderr.strip() or done.stdout.strip()}")


def _newest_binaries() -> Path:
    found = glob("/usr/lib/postgresql/*/bin")
    if not found:
        raise RuntimeError("no PostgreSQL server answers and no local binaries to start one")
    return Path(max(found, key=lambda path: [int(n) for n in re.findall(r"\d+", path)]))


@contextmanager
def throwaway_server() -> Iterator[str]:
    """initdb + pg_ctl from the local PostgreSQL binaries, on a free port, removed afterwards."""
    bin_dir = _newest_binaries()
    folder = Path(tempfile.mkdtemp(prefix="journeys-pg-"))
    data, port = folder / "data", _free_port()
    # initdb refuses to run as root.
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    try:
        if as_user:
            shutil.chown(folder, "postgres")
        _run("initdb", *as_user, bin_dir / "initdb", "-D", data, "-U", "postgres", "-A", "trust")
        options = f"-p {port} -k {folder} -h 127.0.0.1"
        start = [bin_dir / "pg_ctl", "-D", data, "-w", "-l", folder / "log", "-o", options, "start"]
        _run("pg_ctl start", *as_user, *start)
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                [*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "fast", "stop"],
                capture_output=True,
            )
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server, dropped (with its connections) afterwards."""
    name = f"journeys_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
