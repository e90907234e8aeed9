"""Engine and session factory for Postgres (psycopg 3) and SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

P = ParamSpec("P")
T = TypeVar("T")

POOL_SIZE = 10
POOL_OVERFLOW = 20


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # The driver's own transaction handling issues BEGIN only before its first INSERT, UPDATE
    # or DELETE, so the read of a read-modify-write ran outside the transaction and two writers
    # overwrote each other. Turned off here; ``_begin_immediate`` opens every transaction.
    dbapi_connection.isolation_level = None
    # WAL keeps commits cheap and lets other programs read meanwhile; the busy timeout makes
    # BEGIN IMMEDIATE queue behind the transaction that holds the lock instead of failing
    # with "database is locked".
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # SQLite ignores FOR UPDATE: taking the write lock when the transaction starts is what
    # makes a read-modify-write safe. The price is one transaction at a time, reads included,
    # across the API and the worker: SQLite is the single-machine store, Postgres the one
    # that scales.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_engine(url: str, pool_size: int = POOL_SIZE, max_overflow: int = POOL_OVERFLOW) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _begin_immediate)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


class Database:
    """An engine and its session factory; one per process."""

    def __init__(
        self, url: str, *, pool_size: int = POOL_SIZE, max_overflow: int = POOL_OVERFLOW
    ) -> None:
        self.engine = make_engine(url, pool_size, max_overflow)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with self.sessions.begin() as session:
            yield session

    async def run(
        self, work: Callable[Concatenate[Session, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``work(session, *args, **kwargs)`` in a transaction of its own, in a thread: what
        async code (routes, services) uses instead of ``transaction``. On the event loop,
        SQLite's BEGIN IMMEDIATE waits for the write lock, and its holder (the relay, a starter)
        may be waiting on that very loop for Temporal's answer: both waited for the busy
        timeout, and every request of the process with them."""

        def call() -> T:
            with self.transaction() as session:
                return work(session, *args, **kwargs)

        return await asyncio.to_thread(call)

    @asynccontextmanager
    async def held_transaction(self) -> AsyncIterator[Session]:
        """A transaction that async code holds across awaits (a row committed only if the
        workflow it names started), begun in a thread for the reason ``run`` gives; once it
        holds SQLite's write lock, its statements never wait for it."""
        session = self.sessions()
        try:
            await asyncio.to_thread(session.connection)
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A Core transaction, without the ORM session's unit of work (hot bookkeeping)."""
        with self.engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def held_connection(self) -> AsyncIterator[Connection]:
        """A Core transaction that async code holds across awaits (a starter keeps its lock
        until the run's row is written). Checked out in a thread: a checkout waiting for a
        free connection on the event loop would stall the very tasks holding the others."""
        connection = await asyncio.to_thread(self.engine.connect)
        try:
            with connection.begin():
                yield connection
        finally:
            connection.close()

    def ping(self) -> None:
        """One round trip to the database; raises whatever the driver raises when it fails."""
        with self.engine.connect() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        self.engine.dispose()
