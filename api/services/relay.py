"""The outbox relay: routes stored events to Temporal, per contact in order, once each.

An event leaves the outbox only after its signals and starts went through; if Temporal is
unreachable the contact's remaining events stay queued, in order, for the next pass."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api import metrics
from api.services.routing import Router, Signal, Start
from api.temporal import TemporalConnection
from journeys.admission import start_entry
from journeys.records import ContactSnapshot, JourneyEvent
from journeys.settings import Settings
from journeys.starter import EVENT_SIGNAL, CannotEnroll
from store import contacts as contacts_store
from store import enrollments as enrollments_store
from store import journeys as journeys_store
from store import outbox
from store.db import Database
from store.models import Enrollment, Event, OutboxEntry

log = logging.getLogger("journeys.relay")
RPC_TIMEOUT = timedelta(seconds=5)
UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        temporal: TemporalConnection,
        settings: Settings,
        batch: int = 500,
        concurrency: int = 32,
    ) -> None:
        self._db = db
        self._concurrency = concurrency
        self._temporal = temporal
        self._settings = settings
        self._batch = batch
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def wake(self) -> None:
        """Called from request threads after an ingest commits."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    async def run(self, poll_seconds: float = 1.0) -> None:
        self._loop = asyncio.get_running_loop()
        while True:
            try:
                while await self.deliver_once():
                    pass
            except Exception:  # keep relaying after a database hiccup; the events stay queued
                log.exception("outbox relay pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), poll_seconds)
            self._wake.clear()

    async def deliver_once(self) -> int:
        """One pass over the oldest pending events; returns how many left the outbox."""
        client = self._temporal.client
        if client is None:
            return 0
        session = self._db.sessions()
        try:
            with session.begin():
                claimed = outbox.claim(session, self._batch)
                if not claimed:
                    return 0
                delivered = await self._deliver(client, session, claimed)
            metrics.RELAYED.inc(delivered)
            metrics.OUTBOX_PENDING.set(len(claimed) - delivered)
            return delivered
        finally:
            session.close()

    async def _deliver(
        self, client: Client, session: Session, claimed: list[tuple[OutboxEntry, Event]]
    ) -> int:
        contact_ids = sorted({entry.contact_id for entry, _ in claimed})
        contacts = {
            c: contacts_store.snapshot(contacts_store.get_or_create(session, c))
            for c in contact_ids
        }
        running: dict[str, list[Enrollment]] = defaultdict(list)
        for enrollment in enrollments_store.running_for(session, contact_ids):
            running[enrollment.contact_id].append(enrollment)
        router = Router(journeys_store.live_journeys(session))
        queues: dict[str, list[tuple[OutboxEntry, Event]]] = defaultdict(list)
        for entry, event in claimed:
            queues[entry.contact_id].append((entry, event))
        gate = asyncio.Semaphore(self._concurrency)
        down = False

        async def one_contact(items: list[tuple[OutboxEntry, Event]]) -> int:
            # One contact's events go out one after the other, in order; contacts in parallel.
            # The session is only touched between awaits, so the tasks never interleave in it.
            nonlocal down
            done = 0
            async with gate:
                for entry, event in items:
                    if down:
                        break
                    contact_id = entry.contact_id
                    try:
                        await self._route(
                            client,
                            session,
                            router,
                            event,
                            contacts[contact_id],
                            running[contact_id],
                        )
                    except RPCError as exc:
                        # This contact's later events must wait too, to keep their order.
                        entry.attempts += 1
                        entry.last_error = str(exc)[:500]
                        metrics.RELAY_ERRORS.inc()
                        # Temporal itself is down: every other contact would wait as long.
                        down = down or exc.status in UNREACHABLE
                        break
                    session.delete(entry)
                    done += 1
                    metrics.observe_latency(event.received_at)
            return done

        outcomes = await asyncio.gather(
            *(one_contact(items) for items in queues.values()), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # after every task ended: the transaction is rolled back whole
        return sum(outcomes)  # type: ignore[arg-type]

    async def _route(
        self,
        client: Client,
        session: Session,
        router: Router,
        event: Event,
        contact: ContactSnapshot,
        running: list[Enrollment],
    ) -> None:
        journey_event = JourneyEvent(
            id=event.message_id,
            name=event.name,
            properties=event.properties,
            timestamp=event.timestamp,
        )
        signalled = set()
        for start in router.starts(journey_event, contact):
            started = await self._start(client, session, start, journey_event, contact, running)
            if started is not None:
                signalled.add(started)
        for enrollment in list(running):
            if enrollment.workflow_id in signalled:
                continue
            spec = journeys_store.version_spec(session, enrollment.journey_key, enrollment.version)
            if spec is not None and router.wants(spec, enrollment.version, event.name):
                await self._signal(client, Signal(enrollment.workflow_id), journey_event)

    async def _start(
        self,
        client: Client,
        session: Session,
        start: Start,
        event: JourneyEvent,
        contact: ContactSnapshot,
        running: list[Enrollment],
    ) -> str | None:
        try:
            handle = await start_entry(
                client,
                session.connection(),
                journey=start.journey,
                version=start.version,
                contact=contact,
                task_queue=self._settings.task_queue,
                event=event,
                buffer_size=self._settings.event_buffer_size,
                rpc_timeout=RPC_TIMEOUT,
            )
        except CannotEnroll as exc:
            log.info("event %s not entered into %s: %s", event.id, start.journey.key, exc)
            return None
        if all(enrollment.workflow_id != handle.id for enrollment in running):
            # Recorded by start_entry, so the contact's next events find the run.
            stored = session.get(Enrollment, handle.result_run_id)
            if stored is not None:
                running.append(stored)
        return handle.id

    async def _signal(self, client: Client, signal: Signal, event: JourneyEvent) -> None:
        try:
            await client.get_workflow_handle(signal.workflow_id).signal(
                EVENT_SIGNAL, event, rpc_timeout=RPC_TIMEOUT
            )
        except RPCError as exc:
            if exc.status not in GONE:
                raise
            # The run ended between its last report and now: nothing left to tell it.
