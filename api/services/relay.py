"""The outbox relay: routes stored events to Temporal, per contact in order, once each.

Each event is routed in a transaction of its own, committed before the contact's next event is
tried: an event leaves the outbox as soon as its signals and starts went through, so nothing
that later happens to another event can send it again. If Temporal is unreachable (any
``RPCError``) the contact's remaining events stay queued, in order, for the next pass. An event
the client refuses before any call is made (it cannot be encoded, its payload is too large: any
other exception) would be refused on every retry: it is parked with its error, and the
contact's later events go on past it (docs/operating.md, "Parked events", says why).

The events that come first for their contacts in a pass are the exception to one transaction per
event: a segment's backfill queues thousands of entries at once, a goal event posted for
thousands of contacts as many signals, so those are routed together (``AT_ONCE`` to a
transaction: taken, their contacts and running runs read, their fates settled and committed in
a few statements), the runs they begin started in batches (``start_entries``), each event's fate
its own. A contact's later events in the pass follow, one transaction each."""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections import defaultdict
from datetime import timedelta

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from temporal_journeys.api import metrics
from temporal_journeys.api.services.admission import (
    STARTS_IN_FLIGHT,
    UNREACHABLE,
    Entry,
    in_held_transaction,
    start_entries,
    start_entry,
)
from temporal_journeys.api.services.routing import Router, Signal, Start
from temporal_journeys.api.temporal import TemporalConnection
from temporal_journeys.journeys.records import ContactSnapshot, JourneyEvent
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import enrollments as enrollments_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import outbox
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Event, OutboxEntry
from temporal_journeys.workflows.contract import EVENT_SIGNAL
from temporal_journeys.workflows.starter import CannotEnroll, entry_id_of

log = logging.getLogger("journeys.relay")
RPC_TIMEOUT = timedelta(seconds=5)
AT_ONCE = 50
"""Contacts' first events routed in one transaction: it holds their contacts' rows and run locks
(on SQLite, the database's write lock) while their starts go out, as an enroll API chunk does."""
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
            router = Router(await self._db.run(journeys_store.live_journeys))
            outcomes = await self._deliver(client, router, claimed)
        return sum(outcome in (Outcome.DELIVERED, Outcome.PARKED) for outcome in outcomes)

    async def _deliver(
        self, client: Client, router: Router, claimed: list[outbox.Claim]
    ) -> list[Outcome]:
        queues: dict[str, list[outbox.Claim]] = defaultdict(list)
        for claim in claimed:
            queues[claim.contact_id].append(claim)
        # Each contact's next event first, many contacts to a transaction (a backfill moves
        # thousands into a segment at once; a goal posted for thousands signals as many runs).
        # A lone one goes the one-by-one way, with a statement and a thread hop fewer.
        firsts = [claims[0] for claims in queues.values()] if len(queues) > 1 else []
        outcomes: list[Outcome] = []
        for first in range(0, len(firsts), AT_ONCE):
            chunk = firsts[first : first + AT_ONCE]
            routed = await self._deliver_together(client, router, chunk)
            outcomes += routed
            for claim, outcome in zip(chunk, routed, strict=True):
                if outcome in (Outcome.RETRY, Outcome.DOWN):
                    del queues[claim.contact_id]  # its later events wait behind it
                else:
                    queues[claim.contact_id].pop(0)
            if Outcome.DOWN in routed:
                return outcomes
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
            *(one_contact(claims) for claims in queues.values() if claims),
            return_exceptions=True,
        )
        for result in results:
            if isinstance(result, BaseException):
                # After every task ended; what they delivered is committed already.
                raise result
        return outcomes + [outcome for result in results for outcome in result]  # type: ignore[union-attr]

    async def _deliver_together(
        self, client: Client, router: Router, claims: list[outbox.Claim]
    ) -> list[Outcome]:
        """Route several contacts' events (one each) in one transaction: the journeys they
        begin admitted as batches (``start_entries``: one round of writes per journey, not per
        contact), the runs that want the event signalled, every event's fate committed
        together. An outcome per claim, in order; each is what ``_deliver_event`` would say."""
        async with self._db.held_transaction() as session:
            taken = {
                entry.id: (entry, event)
                for entry, event in outbox.take_all(session, [claim.entry_id for claim in claims])
            }
            connection = session.connection()
            contacts = await in_held_transaction(
                connection,
                contacts_store.load_snapshots,
                [entry.contact_id for entry, _ in taken.values()],
            )
            running: dict[str, list[Enrollment]] = defaultdict(list)
            for enrollment in enrollments_store.running_for(session, list(contacts)):
                running[enrollment.contact_id].append(enrollment)
            events: dict[int, JourneyEvent] = {}
            unreadable: dict[int, Exception] = {}
            for entry_id, (_, event) in taken.items():
                try:
                    events[entry_id] = journey_event(event)
                except Exception as exc:  # noqa: BLE001 - parked alone, as in _attempt
                    unreadable[entry_id] = exc
            failures, signalled = await self._start_all(
                client,
                connection,
                router,
                {n: taken[n] for n in events},
                contacts,
                events,
            )
            failures.update(unreadable)
            gate = asyncio.Semaphore(STARTS_IN_FLIGHT)

            async def tell_running(entry_id: int, contact_id: str) -> None:
                async with gate:
                    try:
                        for enrollment in running[contact_id]:
                            if enrollment.workflow_id not in signalled[entry_id] and _wanted(
                                session, router, enrollment, events[entry_id]
                            ):
                                await self._signal(
                                    client, Signal(enrollment.workflow_id), events[entry_id]
                                )
                    except SQLAlchemyError:
                        raise
                    except Exception as exc:  # noqa: BLE001 - this entry's fate alone
                        failures[entry_id] = exc

            told = await asyncio.gather(
                *(
                    tell_running(entry_id, entry.contact_id)
                    for entry_id, (entry, _) in taken.items()
                    if entry_id not in failures
                ),
                return_exceptions=True,
            )
            for result in told:
                if isinstance(result, BaseException):
                    raise result  # the database's failure: every entry rolled back, tried again
            outcomes = [
                Outcome.GONE
                if claim.entry_id not in taken
                else self._settle(session, *taken[claim.entry_id], failures.get(claim.entry_id))
                for claim in claims
            ]
            return outcomes

    async def _start_all(
        self,
        client: Client,
        connection: Connection,
        router: Router,
        taken: dict[int, tuple[OutboxEntry, Event]],
        contacts: dict[str, ContactSnapshot],
        events: dict[int, JourneyEvent],
    ) -> tuple[dict[int, Exception], dict[int, set[str]]]:
        """The runs the entries begin, a batch per journey version. Answers what a start
        raised, by entry (its failure), and the runs each entry began or reached (which are
        not signalled the event again)."""
        failures: dict[int, Exception] = {}
        signalled: dict[int, set[str]] = defaultdict(set)
        batches: dict[tuple[str, int], tuple[Start, list[int]]] = {}
        for entry_id, (entry, _) in taken.items():
            try:
                starts = router.starts(events[entry_id], contacts[entry.contact_id])
            except Exception as exc:  # noqa: BLE001 - this event's fate alone, as in _attempt
                failures[entry_id] = exc
                continue
            for start in starts:
                batch = batches.setdefault((start.journey.key, start.version), (start, []))
                batch[1].append(entry_id)
        for start, entry_ids in batches.values():
            answers = await start_entries(
                client,
                connection,
                journey=start.journey,
                version=start.version,
                entries=[Entry(contacts[taken[n][0].contact_id], events[n]) for n in entry_ids],
                task_queue=self._settings.task_queue,
                buffer_size=self._settings.event_buffer_size,
                rpc_timeout=RPC_TIMEOUT,
            )
            for entry_id, answer in zip(entry_ids, answers, strict=True):
                if isinstance(answer, CannotEnroll):
                    log.info(
                        "event %s not entered into %s: %s",
                        events[entry_id].id,
                        start.journey.key,
                        answer,
                    )
                elif isinstance(answer, Exception):
                    failures.setdefault(entry_id, answer)
                else:
                    signalled[entry_id].add(answer.id)
        return failures, signalled

    async def _deliver_event(self, client: Client, router: Router, claim: outbox.Claim) -> Outcome:
        """Route one event and commit what became of it, before the contact's next one."""
        # Begun off the loop, for the reason given in outbox.claim.
        async with self._db.held_transaction() as session:
            taken = outbox.take(session, claim.entry_id)
            if taken is None:
                return Outcome.GONE  # no longer pending: nothing was written
            entry, event = taken
            return await self._attempt(client, session, router, entry, event)

    async def _attempt(
        self, client: Client, session: Session, router: Router, entry: OutboxEntry, event: Event
    ) -> Outcome:
        contact = contacts_store.snapshot(contacts_store.get_or_create(session, entry.contact_id))
        running = enrollments_store.running_for(session, [entry.contact_id])
        try:
            await self._route(client, session, router, journey_event(event), contact, running)
        except SQLAlchemyError:
            raise  # the database failed, not the event: rolled back, tried on the next pass
        except Exception as exc:  # noqa: BLE001 - settled below, as this event's fate
            return self._settle(session, entry, event, exc)
        return self._settle(session, entry, event, None)

    @staticmethod
    def _settle(
        session: Session, entry: OutboxEntry, event: Event, failure: Exception | None
    ) -> Outcome:
        """What becomes of the entry, in the caller's transaction, after its routing raised
        ``failure`` (or nothing)."""
        if isinstance(failure, RPCError):
            outbox.failed(session, entry, str(failure))
            metrics.RELAY_ERRORS.inc()
            return Outcome.DOWN if failure.status in UNREACHABLE else Outcome.RETRY
        if failure is not None:
            # Refused before any call: the same event would be refused on every retry. What it
            # did start before the refusal is kept (the transaction commits with the entry
            # parked). The class only: the error text may quote the event, which may hold
            # personal data.
            log.warning("event %s parked: %s", event.message_id, type(failure).__name__)
            outbox.park(session, entry, f"{type(failure).__name__}: {failure}")
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
        event: JourneyEvent,
        contact: ContactSnapshot,
        running: list[Enrollment],
    ) -> None:
        signalled = set()
        for start in router.starts(event, contact):
            started = await self._start(client, session, start, event, contact, running)
            if started is not None:
                signalled.add(started)
        for enrollment in list(running):
            if enrollment.workflow_id not in signalled and _wanted(
                session, router, enrollment, event
            ):
                await self._signal(client, Signal(enrollment.workflow_id), event)

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
            stored = enrollments_store.get(session, entry_id_of(handle))
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


def journey_event(event: Event) -> JourneyEvent:
    return JourneyEvent(
        id=event.message_id,
        name=event.name,
        properties=event.properties,
        timestamp=event.timestamp,
    )


def _wanted(session: Session, router: Router, enrollment: Enrollment, event: JourneyEvent) -> bool:
    """Whether the contact's running run gets the event (``Router.wants``)."""
    spec = journeys_store.version_spec(session, enrollment.journey_key, enrollment.version)
    return spec is not None and router.wants(
        spec, enrollment.version, event, enrollment.correlation
    )
