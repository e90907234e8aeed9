"""The relay in a process of its own (issue 18, item 5): ``journeys relay`` routes what the API
accepted, woken by the API's NOTIFY long before its poll, keeps each contact's events in order
and once across a SIGTERM (the pass under way finishes, the locks go), and the notification
itself is sent at commit only."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import delete, event, select, text
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from temporal_journeys.api.app import create_app
from temporal_journeys.api.services.relay import OutboxRelay
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.segments import Segment
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.plugin import JourneysPlugin
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import keys, outbox
from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.contact_keys import keyring
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import OutboxEntry
from temporal_journeys.workflows.codec import data_converter
from tests.support import harness as h
from tests.support.dev_server import DevServer
from tests.support.outbox import assert_in_order_once, listener, pending

ADULTS = {"trait": "age", "gte": 18}
LONG_POLL = 120.0  # seconds: a relay that routes an event sooner was woken by a notification


def _store_event(db: Database, contact: str) -> None:
    """An event queued the way the ingest path queues it: stored (and notified), one commit."""
    now = datetime.now(UTC)
    row = {
        "message_id": str(uuid.uuid4()),
        "contact_id": contact,
        "name": "relay.unheard",
        "properties": {},
        "timestamp": now,
    }
    with db.transaction() as session:
        events_store.accept(session, [row], now)


def _advisory_locks(db: Database) -> int:
    """Advisory locks anyone holds in this database: the relays' contact locks."""
    query = text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    with db.transaction() as session:
        return session.scalar(query) or 0


# --- the notification ------------------------------------------------------------------------


async def test_a_notification_reaches_a_listener_at_commit_not_before_and_not_on_rollback(
    engine_db: Database,
):
    woken = asyncio.Event()
    listening = asyncio.create_task(outbox.listen(engine_db, woken.set))
    try:
        await asyncio.wait_for(woken.wait(), 10)  # once listening: what it missed is looked at
        woken.clear()
        session = engine_db.sessions()
        try:
            outbox.notify(session, 0)  # nothing queued: nothing sent
            session.commit()
            outbox.notify(session, 3)
            await asyncio.sleep(0.5)
            assert not woken.is_set(), "a notification before the commit"
            session.rollback()
            await asyncio.sleep(0.5)
            assert not woken.is_set(), "a notification of a transaction rolled back"
            outbox.notify(session, 3)
            session.commit()
        finally:
            session.close()
        await asyncio.wait_for(woken.wait(), 5)
    finally:
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening


async def test_every_way_of_queueing_an_event_tells_listening_relays(engine_db: Database):
    """Not only the ingest: a webhook's or consent's events (``events.accept``), a segment's
    entered / exited events written by its level statement (an update step's ``react``), and
    an operator's unpark. Before, only the ingest route notified; the rest waited for a poll."""
    woken = asyncio.Event()
    listening = asyncio.create_task(outbox.listen(engine_db, woken.set))
    contact = h.unique("queued")
    segment = h.unique("adults")
    now = datetime.now(UTC)

    async def wakes(queue: Callable[[Session], object], what: str) -> None:
        woken.clear()
        with engine_db.transaction() as session:
            queue(session)
        try:
            await asyncio.wait_for(woken.wait(), 5)
        except TimeoutError:
            pytest.fail(f"no notification for {what}")

    def accept(session: Session) -> None:
        row = {"message_id": str(uuid.uuid4()), "contact_id": contact, "name": "email.opened"}
        assert events_store.accept(session, [{**row, "properties": {}, "timestamp": now}], now)

    def move_into_segment(session: Session) -> None:
        contacts_store.lock_all(session, {contact})[contact].traits = {"age": 40}
        segments_store.put(session, Segment(key=segment, name=segment, condition=ADULTS))
        moved = segments_store.react(session, profile={contact: {"age"}}, events=[], now=now)
        assert moved.entered == [contact]

    def unpark(session: Session) -> None:
        entry = session.scalars(
            select(OutboxEntry).where(OutboxEntry.contact_id == contact).limit(1)
        ).one()
        outbox.park(session, entry, "for the test")
        session.flush()
        assert outbox.unpark(session, entry.id)

    try:
        await asyncio.wait_for(woken.wait(), 10)  # once listening: what it missed is looked at
        await wakes(accept, "an event accepted outside the ingest")
        await wakes(move_into_segment, "a segment event of an update step")
        await wakes(unpark, "an entry unparked")
    finally:
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
        with engine_db.transaction() as session:  # nothing left for the relays of later tests
            segments_store.remove(session, segment, now)
            session.execute(delete(OutboxEntry).where(OutboxEntry.contact_id == contact))


async def test_an_accept_notifies_in_its_own_statement_once_and_only_when_it_queued(
    engine_db: Database,
):
    """``events.accept`` notifies in the statement that stores the events (a round trip less
    per ingest): nothing for a batch of duplicates, and no second NOTIFY in its transaction."""
    woken = asyncio.Event()
    listening = asyncio.create_task(outbox.listen(engine_db, woken.set))
    notifies: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "pg_notify" in statement:
            notifies.append(statement)

    now = datetime.now(UTC)
    row = {
        "message_id": str(uuid.uuid4()),
        "contact_id": h.unique("notified"),
        "name": "email.opened",
        "properties": {},
        "timestamp": now,
    }
    event.listen(engine_db.engine, "before_cursor_execute", count)
    try:
        await asyncio.wait_for(woken.wait(), 10)  # once listening: what it missed is looked at
        woken.clear()
        with engine_db.transaction() as session:
            assert events_store.accept(session, [row], now) == 1
            outbox.notify(session, 1)  # as a segment's level statement would after it
        await asyncio.wait_for(woken.wait(), 5)
        assert len(notifies) == 1, notifies
        woken.clear()
        with engine_db.transaction() as session:
            assert events_store.accept(session, [row], now) == 0  # a duplicate: nothing queued
        await asyncio.sleep(0.5)
        assert not woken.is_set(), "a notification for a batch that queued nothing"
    finally:
        event.remove(engine_db.engine, "before_cursor_execute", count)
        listening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await listening
        with engine_db.transaction() as session:  # nothing left for the relays of later tests
            session.execute(delete(OutboxEntry).where(OutboxEntry.contact_id == row["contact_id"]))


def test_sqlite_sends_no_notification(sqlite_url: str):
    db = Database(sqlite_url)
    try:
        with db.transaction() as session:
            outbox.notify(session, 1)  # the relay beside the API is woken in its process
    finally:
        db.dispose()


async def test_a_notification_wakes_a_listening_relay_long_before_its_poll(
    time_env: WorkflowEnvironment, engine_db: Database, postgres_url: str
):
    # Events no journey listens to: routed without a call to Temporal, so no run is left behind
    # on the module's time-skipping server; the client is only there for the relay to go on.
    settings = Settings(database_url=postgres_url)
    relay = OutboxRelay(engine_db, TemporalConnection(settings, time_env.client), settings)
    running = asyncio.create_task(relay.run(LONG_POLL, listen=True))
    other_process = Database(postgres_url)  # as an API process would write them
    contact = h.unique("woken")
    try:
        await asyncio.sleep(1)  # its first pass, and its listener connected
        began = time.perf_counter()
        _store_event(other_process, contact)
        await h.wait_until(lambda: pending(engine_db, [contact]) == 0, "the relay to wake", 10)
        assert time.perf_counter() - began < 5
        relay.stop()
        await asyncio.wait_for(running, 10)  # stop() ends run() without a cancel
        assert _advisory_locks(engine_db) == 0
    finally:
        running.cancel()
        other_process.dispose()


# --- `journeys relay` ------------------------------------------------------------------------


class RelayProcess:
    """``journeys relay`` as an operator starts it, its log collected line by line."""

    def __init__(self, env: dict[str, str]) -> None:
        command = [sys.executable, "-m", "temporal_journeys.cli", "relay"]
        self.process = subprocess.Popen(
            [*command, "--poll-seconds", str(LONG_POLL)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)

    def logged(self, words: str) -> bool:
        return any(words in line for line in self.lines)

    async def wait_for(self, words: str, seconds: float = 30) -> None:
        await h.wait_until(
            lambda: self.logged(words) or self.process.poll() is not None, words, seconds
        )
        assert self.logged(words), "".join(self.lines)

    def end(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def dev_server(tmp_path: Path) -> Iterator[DevServer]:
    server = DevServer(tmp_path)
    yield server
    server.stop()


@pytest_asyncio.fixture
async def relays() -> AsyncIterator[list[RelayProcess]]:
    started: list[RelayProcess] = []
    yield started
    for relay in started:
        relay.end()


@pytest.mark.slow  # a real dev server and two relay processes
async def test_the_relay_command_routes_events_in_order_once_and_stops_on_sigterm(
    dev_server: DevServer, own_postgres_url: str, relays: list[RelayProcess]
):
    queue = h.unique("relay-process")
    settings = Settings(
        database_url=own_postgres_url,
        temporal_address=f"127.0.0.1:{dev_server.port}",
        task_queue=queue,
    )
    env = {
        **os.environ,
        "JOURNEYS_DATABASE_URL": own_postgres_url,
        "JOURNEYS_TEMPORAL_ADDRESS": settings.temporal_address,
        "JOURNEYS_TASK_QUEUE": queue,
    }
    db = Database(own_postgres_url)
    contact_keys = keyring(db, settings)
    client = await Client.connect(
        settings.temporal_address, data_converter=data_converter(settings, contact_keys)
    )
    key = h.unique("relayed")
    h.publish(db, listener(key), key=key)
    with db.transaction() as session:
        track = {"Authorization": "Bearer " + keys.create(session, "app", "track")}
    contacts = [h.unique("contact") for _ in range(5)]
    # The API without its own relay, as beside `journeys relay` (JOURNEYS_RELAY=false).
    app = create_app(settings, temporal=client, db=db, relay=False)
    transport = httpx.ASGITransport(app=app)

    async def post(tick: int) -> None:
        batch = [
            {
                "type": "track",
                "userId": contact,
                "event": f"{key}.start" if tick == 0 else f"{key}.tick",
                "messageId": f"{contact}-{tick:03}",
            }
            for contact in contacts
        ]
        response = await http.post("/v1/batch", json={"batch": batch}, headers=track)
        assert response.status_code == 202, response.text

    try:
        async with (
            Worker(client, task_queue=queue, plugins=[JourneysPlugin(settings, db=db)]),
            httpx.AsyncClient(transport=transport, base_url="http://api.test") as http,
        ):
            relays.append(RelayProcess(env))
            await relays[0].wait_for("outbox relay started")
            await relays[0].wait_for("listening for the API's notifications")
            await asyncio.sleep(0.5)  # its first pass over (nothing queued yet)

            began = time.perf_counter()
            await post(0)
            await h.wait_until(lambda: pending(db, contacts) == 0, "the starts to go out", 20)
            # Far below the poll: the API's NOTIFY woke it.
            assert time.perf_counter() - began < 10

            # A stream of ticks; SIGTERM in the middle of it. The relay ends after its pass:
            # what it delivered is committed, the rest waits, each contact's order intact.
            for tick in range(1, 11):
                await post(tick)
            relays[0].process.send_signal(signal.SIGTERM)
            for tick in range(11, 21):
                await post(tick)
            assert await asyncio.to_thread(relays[0].process.wait, 30) == 0, relays[0].lines
            assert relays[0].logged("outbox relay stopped")
            assert _advisory_locks(db) == 0, "a contact lock outlived the relay"

            relays.append(RelayProcess(env))  # its successor takes what was left
            await h.wait_until(lambda: pending(db, contacts) == 0, "the rest to go out", 60)
            names = h.suite_names()
            for contact in contacts:
                ticks = [f"{contact}-{tick:03}" for tick in range(1, 21)]
                await assert_in_order_once(client, names.workflow_id(key, contact), ticks)
            relays[1].process.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(relays[1].process.wait, 30) == 0, relays[1].lines
    finally:
        # No run outlives the test's worker (the dev server is this test's alone, but still).
        for contact in contacts:
            handle = client.get_workflow_handle(h.suite_names().workflow_id(key, contact))
            with contextlib.suppress(Exception):  # not started, or over already
                await handle.terminate("test over")
        db.dispose()
