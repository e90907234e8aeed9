"""The outbox relay: routes stored events to Temporal, per contact in order, once each.

Each event is routed in a transaction of its own, committed before the contact's next event is
tried: an event leaves the outbox as soon as its signals and starts went through, so nothing
that later happens to another event can send it again. If Temporal is unreachable (any
``RPCError``) the contact's remaining events stay queued, in order, for the next pass. An event
the client refuses before any call is made (it cannot be encoded, its payload is too large: any
other exception) would be refused on every retry: it is parked with its error, and the
contact's later events go on past it (docs/operating.md, "Parked events", says why)."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api import metrics
from temporal_journeys.api.services.admission import start_entry
from temporal_journeys.api.services.routing import Router, Signal, Start
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import outbox
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Event, OutboxEntry
from temporal_journeys.workflows.contract import EVENT_SIGNAL
from temporal_journeys.workflows.starter import CannotEnroll

log = logging.getLogger("journeys.relay")
RPC_TIMEOUT = timedelta(seconds=5)
UNREACHABLE = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)
GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT, RPCStatusCode.FAILED_PRECONDITION)


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    PARKED = "parked"
    RETRY = "retry"  # Temporal refused this call; the contact's later events wait behind it
    DOWN = "down"  # Temporal is unreachable: every contact would wait as long
    GONE = "gone"  # no longer pending when its turn came (another relay, an erasure)


class OutboxRelay:
    def __init__(
        self,
        db: Database,
        temporal: TemporalConnection,
        settings: Settings,
        batch: int = 500,
        concurrency: int = 8,
    ) -> None:
        self._db = db
        # Each contact in flight holds a database connection while its calls are made (an
        # admitted start keeps its lock until the run's row is written), so few enough that the
        # API's requests (and, in `journeys dev`, the worker) keep most of the pool. SQLite: one
        # at a time, as a second transaction's write would wait for the first one's lock on the
        # event loop, which the first one needs to finish.
        self._concurrency = concurrency if db.dialect == "postgresql" else 1
        self._temporal = temporal
        self._settings = settings
        self._batch = batch
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = False

    def wake(self) -> None:
        """Called from request threads after an ingest commits."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        """End ``run`` once the pass under way is over (its delivered events committed, its
        contacts' locks released); called from the loop, as signal handlers are."""
        self._stopping = True
        self._wake.set()

    async def run(self, poll_seconds: float = 1.0, *, listen: bool = False) -> None:
        """Relay until cancelled or stopped: a pass whenever woken, at least every
        ``poll_seconds``. With ``listen`` (Postgres), notifications of ingests committed in
        other processes wake it too (``journeys relay``); the poll stays as the fallback."""
        self._loop = asyncio.get_running_loop()
        # A pass before Temporal is connected delivers nothing: the connection wakes the relay,
        # or a backlog queued before it started would wait for the poll, or for the next ingest.
        self._temporal.when_connected(self.wake)
        listener = (
            asyncio.create_task(outbox.listen(self._db, self.wake))
            if listen and self._db.dialect == "postgresql"
            else None
        )
        try:
            while not self._stopping:
                # Cleared before the pass: a wake during it (events queued after its claim)
                # brings the next pass at once instead of after the poll interval.
                self._wake.clear()
                try:
                    while not self._stopping and await self.deliver_once():
                        pass
                except Exception:  # keep relaying after a database hiccup; events stay queued
                    log.exception("outbox relay pass failed")
                if self._stopping:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), poll_seconds)
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener

    async def deliver_once(self) -> int:
        """One pass over the oldest pending events; returns how many left the queue (routed to
        Temporal or parked)."""
        client = self._temporal.client
        if client is None:
            return 0
        async with outbox.claim(self._db, self._batch) as claimed:
            if not claimed:
                return 0
            router = Router(await asyncio.to_thread(self._live_journeys))
            outcomes = await self._deliver(client, router, claimed)
        return sum(outcome in (Outcome.DELIVERED, Outcome.PARKED) for outcome in outcomes)

    def _live_journeys(self) -> list[tuple[int, Journey]]:
        with self._db.transaction() as session:
            return journeys_store.live_journeys(session)

    async def _deliver(
        self, client: Client, router: Router, claimed: list[outbox.Claim]
    ) -> list[Outcome]:
        queues: dict[str, list[outbox.Claim]] = defaultdict(list)
        for claim in claimed:
            queues[claim.contact_id].append(claim)
        gate = asyncio.Semaphore(self._concurrency)
        down = False

        async def one_contact(claims: list[outbox.Claim]) -> list[Outcome]:
            # One contact's events go out one after the other, in order; contacts in parallel.
            nonlocal down
            outcomes = []
            async with gate:
                for claim in claims:
                    if down:
                        break
                    outcome = await self._deliver_event(client, router, claim)
                    outcomes.append(outcome)
                    if outcome is Outcome.DOWN:
                        down = True
                    if outcome in (Outcome.RETRY, Outcome.DOWN):
                        break  # this contact's later events must wait too, to keep their order
            return outcomes

        results = await asyncio.gather(
            *(one_contact(claims) for claims in queues.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                # After every task ended; what they delivered is committed already.
                raise result
        return [outcome for result in results for outcome in result]  # type: ignore[union-attr]

    async def _deliver_event(self, client: Client, router: Router, claim: outbox.Claim) -> Outcome:
        """Route one event and commit what became of it, before the contact's next one."""
        session = self._db.sessions()
        try:
            # A connection waited for off the loop, for the reason given in outbox.claim.
            await asyncio.to_thread(session.connection)
            taken = outbox.take(session, claim.entry_id)
            if taken is None:
                session.rollback()
                return Outcome.GONE
            entry, event = taken
            outcome = await self._attempt(client, session, router, entry, event)
            session.commit()
            return outcome
        finally:
            session.close()

    async def _attempt(
        self, client: Client, session: Session, router: Router, entry: OutboxEntry, event: Event
    ) -> Outcome:
        contact = contacts_store.snapshot(contacts_store.get_or_create(session, entry.contact_id))
        running = enrollments_store.running_for(session, [entry.contact_id])
        try:
            await self._route(client, session, router, event, contact, running)
        except RPCError as exc:
            outbox.failed(session, entry, str(exc))
            metrics.RELAY_ERRORS.inc()
            return Outcome.DOWN if exc.status in UNREACHABLE else Outcome.RETRY
        except SQLAlchemyError:
            raise  # the database failed, not the event: rolled back, tried on the next pass
        except Exception as exc:
            # Refused before any call: the same event would be refused on every retry. What it
            # did start before the refusal is kept (the transaction commits with the entry parked).
            # The class only: the error text may quote the event, which may hold personal data.
            log.warning("event %s parked: %s", event.message_id, type(exc).__name__)
            outbox.park(session, entry, f"{type(exc).__name__}: {exc}")
            metrics.RELAY_ERRORS.inc()
            return Outcome.PARKED
        outbox.remove(session, entry)
        metrics.RELAYED.inc()
        metrics.observe_latency(event.received_at)
        return Outcome.DELIVERED

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
            wanted = spec is not None and router.wants(
                spec, enrollment.version, journey_event, enrollment.correlation
            )
            if wanted:
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
            stored = enrollments_store.get(session, handle.result_run_id)
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
