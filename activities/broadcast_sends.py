"""A broadcast's page of recipients sent in a few transactions instead of three per message.

The journeys' send activity (``activities/sends.py``) writes a message row, applies the guards,
marks the row ``sending`` and records the outcome in three transactions per message. A page of
a broadcast does the same steps with the same functions, each over the whole page:

1. One transaction locks the page's existing message rows (keyed ``broadcast/<id>/<contact>``,
   so a retried page finds each earlier outcome), then its contacts, reads what the guards need
   beyond the contact row for every recipient at once (``BatchLookups``: topic choices,
   suppressions, recent sends for frequency caps) and applies ``SendActivities.release`` to each
   recipient: the row written, every guard of ``send_guards.POLICY`` applied (address, consent,
   topic, suppression, channel quiet hours, frequency cap), the context to render built.
2. The released messages are rendered with each contact's traits, holding nothing.
3. The calls. A provider that repeats an interrupted attempt without reaching anyone twice
   (``resend_when_unsure``: the console, webhooks) has the page's rows marked ``sending`` in one
   transaction before its calls, and their outcomes written in one transaction after them,
   together with the recipients' outcomes in the snapshot: a crash between the two leaves rows
   ``sending`` that the retry calls again. Any other provider keeps the send activity's own
   per-message mark and outcome (``SendActivities.call``), so that a crash can leave ``sending``
   only rows whose call had begun, at most ``provider_concurrency`` of them, as for journeys.

Push and WhatsApp read per-contact state the page does not load (devices, the 24-hour window):
their broadcasts send each message through ``SendActivities.send_message`` itself.

A message the provider did not take (``NotAccepted``, or an unknown outcome where a resend is
safe) is set back to ``pending``, and one waiting for a delivery webhook's confirmation keeps
its row: the page then fails once the others are settled, and Temporal's retry of the page
finds every settled row and sends only those.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.orm import Session
from temporalio.exceptions import ApplicationError

from temporal_journeys.activities import send_guards
from temporal_journeys.activities.providers.base import (
    AlreadySettled,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
    Receipt,
)
from temporal_journeys.activities.send_guards import COUNTED, DAY, NotSuppressed, SendContext
from temporal_journeys.activities.sends import (
    RENDER_FAILED,
    Attempt,
    Released,
    SendActivities,
    Unconfirmed,
    mark_sending,
    mark_unsendable,
    recorded,
    render_outgoing,
    settle,
    wait_for_confirmation,
)
from temporal_journeys.journeys.rendering import RenderError
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import broadcasts as broadcasts_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.broadcasts import Outcome, Recipient
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, utcnow
from temporal_journeys.workflows.activity_types import SendMessageInput, SendMessageResult
from temporal_journeys.workflows.broadcast import BroadcastPlan, idempotency_key, workflow_id

PER_MESSAGE_CHANNELS = frozenset({"push", "whatsapp"})
"""Channels whose sends read per-contact state a page does not load: sent one by one."""
PART = 125
"""Recipients of a page that go through the steps together (a 500 page: four side by side)."""


def message_id(broadcast_id: str, contact_id: str) -> str:
    key = idempotency_key(broadcast_id, contact_id)
    return "msg_" + hashlib.sha256(key.encode()).hexdigest()[:24]


def send_input(plan: BroadcastPlan, contact_id: str, now: datetime) -> SendMessageInput:
    assert plan.channel is not None and plan.template is not None
    return SendMessageInput(
        idempotency_key=idempotency_key(plan.id, contact_id),
        message_id=message_id(plan.id, contact_id),
        contact_id=contact_id,
        # Messages of a broadcast are found by this key (GET /v1/messages?journey=...).
        journey_key=workflow_id(plan.id)[:100],
        version=0,
        step_id="broadcast",
        workflow_id=workflow_id(plan.id),
        channel=plan.channel,
        template=plan.template,
        data=plan.data,
        now=now,
        # A broadcast does not wait a day for a frequency cap: the capped are skipped.
        if_capped="skip",
        topic=plan.topic,
    )


def outcome(contact_id: str, sent: SendMessageResult) -> Outcome:
    if sent.status == "deferred":
        return Outcome(contact_id, "deferred", sent.reason, sent.message_id, sent.until)
    return Outcome(contact_id, sent.status, sent.reason, sent.message_id)


class BatchLookups(send_guards.Lookups):
    """What the guards read beyond the contact row, for a page's recipients, read set-based
    once. A send outside the page (never asked here) falls back to its own statements."""

    def __init__(
        self,
        contacts: Collection[str],
        topic: tuple[str | None, dict[str, bool]] | None,
        suppressed: dict[str, str] | None,
        sent: dict[str, list[datetime | None]] | None,
    ) -> None:
        self._contacts = frozenset(contacts)
        self._topic, self._suppressed, self._sent = topic, suppressed, sent

    @classmethod
    def load(
        cls,
        session: Session,
        settings: Settings,
        requests: list[SendMessageInput],
        contacts: dict[str, Contact],
        now: datetime,
    ) -> BatchLookups:
        """Only what a guard of this channel and settings will ask."""
        channel = requests[0].channel
        topic = requests[0].topic
        ids = [r.contact_id for r in requests]
        topics = broadcasts_store.topic_choices(session, topic, ids) if topic else None
        suppressed = None
        if channel in NotSuppressed.channels:
            addresses = {a for c in ids if (a := _address(contacts[c], channel)) is not None}
            suppressed = broadcasts_store.suppressions(session, channel, addresses)
        sent = None
        if getattr(settings, f"{channel}_daily_cap", None):
            sent = broadcasts_store.sent_times(
                session,
                contact_ids=ids,
                channel=channel,
                excluding=[r.message_id for r in requests],
                statuses=COUNTED,
                after=now - DAY,
                until=now,
            )
        return cls(ids, topics, suppressed, sent)

    def _mine(self, send: SendContext) -> bool:
        return send.contact.id in self._contacts

    def topic(self, send: SendContext) -> tuple[str | None, bool | None]:
        if self._topic is None or not self._mine(send):
            return super().topic(send)
        topic_type, choices = self._topic
        return topic_type, choices.get(send.contact.id)

    def suppression(self, send: SendContext) -> str | None:
        if self._suppressed is None or not self._mine(send):
            return super().suppression(send)
        assert send.address is not None
        return self._suppressed.get(send.address)

    def sent_times(self, send: SendContext) -> list[datetime | None]:
        if self._sent is None or not self._mine(send):
            return super().sent_times(send)
        return list(self._sent.get(send.contact.id, []))


def _address(contact: Contact, channel: str) -> str | None:
    # As ``SendActivities.release`` picks it.
    return {"email": contact.email, "sms": contact.phone}.get(channel)


@dataclass
class _Page:
    """What became of each message of the page so far, by message id."""

    results: dict[str, SendMessageResult] = field(default_factory=dict)
    released: dict[str, Released] = field(default_factory=dict)
    outgoing: dict[str, OutgoingMessage] = field(default_factory=dict)
    unsendable: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    waits: list[Unconfirmed] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)


class BroadcastSends:
    """Sends a page of a template broadcast; its ``send`` answers each recipient's outcome."""

    def __init__(self, db: Database, sends: SendActivities, settings: Settings) -> None:
        self._db, self._sends, self._settings = db, sends, settings

    async def send(
        self, plan: BroadcastPlan, page: list[Recipient], now: datetime
    ) -> list[Outcome]:
        """Each recipient's outcome, recorded in the snapshot; raises (so that Temporal tries
        the page again) when some message must be called again later."""
        requests = [send_input(plan, r.contact_id, now) for r in page]
        if plan.channel in PER_MESSAGE_CHANNELS:
            outcomes = await self._one_by_one(plan, requests)
            await asyncio.to_thread(self._record, plan.id, outcomes)
            return outcomes
        # Parts of the page go through their steps side by side, so that the database works
        # on one part's statements while this process renders or calls for another.
        parts = [requests[i : i + PART] for i in range(0, len(requests), PART)]
        gate = asyncio.Semaphore(plan.concurrency)  # calls at once, all parts together
        done = await asyncio.gather(
            *(self._send_part(plan.id, part, gate) for part in parts), return_exceptions=True
        )
        # Every part ends before the page does: no statement of a failed page runs on after.
        states: list[_Page] = []
        for state in done:
            if isinstance(state, BaseException):
                raise state
            states.append(state)
        for state in states:
            _raise_if_unsettled(state)
        results = {k: v for state in states for k, v in state.results.items()}
        return [outcome(r.contact_id, results[r.message_id]) for r in requests]

    async def _send_part(
        self, broadcast_id: str, requests: list[SendMessageInput], gate: asyncio.Semaphore
    ) -> _Page:
        provider = self._sends.provider(requests[0].channel)
        attempt = self._sends.attempt(provider)
        state = await asyncio.to_thread(self._prepare, requests, provider, attempt)
        await asyncio.to_thread(_render, requests, state)
        if provider.resend_when_unsure:
            await asyncio.to_thread(self._mark, requests, provider, state)
            answers = await self._calls(gate, requests, provider, state)
            await asyncio.to_thread(self._finish, broadcast_id, requests, provider, state, answers)
        else:
            if state.unsendable:
                await asyncio.to_thread(self._mark, requests, provider, state)
            await self._calls_one_by_one(gate, requests, provider, attempt, state)
            if not (state.errors or state.waits):
                outcomes = [outcome(r.contact_id, state.results[r.message_id]) for r in requests]
                await asyncio.to_thread(self._record, broadcast_id, outcomes)
        return state

    async def _one_by_one(
        self, plan: BroadcastPlan, requests: list[SendMessageInput]
    ) -> list[Outcome]:
        gate = asyncio.Semaphore(plan.concurrency)

        async def one(request: SendMessageInput) -> Outcome:
            async with gate:
                return outcome(request.contact_id, await self._sends.send_message(request))

        return list(await asyncio.gather(*(one(r) for r in requests)))

    def _prepare(
        self, requests: list[SendMessageInput], provider: Provider, attempt: Attempt
    ) -> _Page:
        """Step 1, in one transaction: earlier outcomes, the guards' verdicts, the released."""
        state = _Page()
        now = requests[0].now or utcnow()
        with self._db.transaction() as session:
            existing = broadcasts_store.lock_messages(session, [r.message_id for r in requests])
            open_: list[SendMessageInput] = []
            for request in requests:
                earlier = self._sends.earlier(
                    session, request, provider, attempt, existing.get(request.message_id)
                )
                if isinstance(earlier, Unconfirmed):
                    state.waits.append(earlier)
                elif earlier is not None:
                    state.results[request.message_id] = earlier
                else:
                    open_.append(request)
            if not open_:
                return state
            contacts = broadcasts_store.lock_contacts(session, [r.contact_id for r in open_])
            lookups = BatchLookups.load(session, self._settings, open_, contacts, now)
            # Held here, so that each send finds it in the session (whose identity map keeps
            # only what is referenced) instead of reading it again.
            template = templates_store.get(session, open_[0].template)
            # The new rows go to the database in one INSERT at the end, not one by one before
            # each read of a guard.
            with session.no_autoflush:
                for request in open_:
                    decided = self._sends.release(
                        session,
                        request,
                        provider,
                        contacts[request.contact_id],
                        existing.get(request.message_id),
                        now,
                        lookups,
                    )
                    if isinstance(decided, Released):
                        state.released[request.message_id] = decided
                    else:
                        state.results[request.message_id] = decided
                broadcasts_store.insert_new(session)
            del template
        return state

    def _mark(self, requests: list[SendMessageInput], provider: Provider, state: _Page) -> None:
        """In one transaction: the unsendable ``failed``; for a provider that repeats
        interrupted attempts, the rendered ``sending`` (a row something else settled since it
        was released keeps that outcome and is not called)."""
        wanted = [
            r
            for r in requests
            if r.message_id in state.outgoing or r.message_id in state.unsendable
        ]
        if not wanted:
            return
        resend = provider.resend_when_unsure
        with self._db.transaction() as session:
            rows = broadcasts_store.lock_messages(session, [r.message_id for r in wanted])
            for request in wanted:
                message = rows[request.message_id]
                if request.message_id in state.unsendable:
                    error, cause = state.unsendable[request.message_id]
                    state.results[request.message_id] = mark_unsendable(
                        session, request, provider, message, error, cause
                    )
                elif resend:
                    try:
                        mark_sending(message, state.outgoing[request.message_id], provider)
                    except AlreadySettled:
                        state.results[request.message_id] = recorded(session, request, message)
                        del state.outgoing[request.message_id]

    async def _calls(
        self,
        gate: asyncio.Semaphore,
        requests: list[SendMessageInput],
        provider: Provider,
        state: _Page,
    ) -> dict[str, Receipt | Exception]:
        """The provider's calls for the marked rows, ``concurrency`` at a time within the
        provider's own slots: each one's receipt or error."""
        slot = self._sends.slot(provider)

        async def one(outgoing: OutgoingMessage) -> tuple[str, Receipt | Exception]:
            async with gate, slot:
                try:
                    return outgoing.message_id, await provider.send(outgoing)
                except (PermanentSendError, NotAccepted, OutcomeUnknown) as exc:
                    return outgoing.message_id, exc

        pending = [state.outgoing[r.message_id] for r in requests if r.message_id in state.outgoing]
        return dict(await asyncio.gather(*(one(o) for o in pending)))

    def _finish(
        self,
        broadcast_id: str,
        requests: list[SendMessageInput],
        provider: Provider,
        state: _Page,
        answers: dict[str, Receipt | Exception],
    ) -> None:
        """In one transaction: each call's outcome on its row and, once every recipient's
        outcome is known, the recipients' outcomes in the snapshot."""
        with self._db.transaction() as session:
            rows = broadcasts_store.lock_messages(session, list(answers))
            for request in requests:
                answer = answers.get(request.message_id)
                if answer is None:
                    continue
                message = rows[request.message_id]
                if isinstance(answer, Receipt):
                    settle(message, "sent", answer, None)
                    result = SendMessageResult(status="sent", message_id=message.id)
                elif isinstance(answer, PermanentSendError):
                    settle(message, "failed", None, str(answer))
                    result = SendMessageResult(
                        status="failed", message_id=message.id, reason=str(answer)
                    )
                else:
                    # Not taken, or unsure with a provider that may be called again: the
                    # retry of the page calls again (``SendActivities._set_back``).
                    message.sent_at = None
                    messages_store.add_status(message, "pending", reason=str(answer))
                    refused = isinstance(answer, NotAccepted)
                    state.errors.append(
                        ApplicationError(
                            str(answer),
                            type="ProviderNotAccepted" if refused else "ProviderOutcomeUnknown",
                            next_retry_delay=answer.retry_after if refused else None,
                        )
                    )
                    continue
                state.results[request.message_id] = result
            if not (state.errors or state.waits):
                broadcasts_store.record(
                    session,
                    broadcast_id,
                    [outcome(r.contact_id, state.results[r.message_id]) for r in requests],
                )

    async def _calls_one_by_one(
        self,
        gate: asyncio.Semaphore,
        requests: list[SendMessageInput],
        provider: Provider,
        attempt: Attempt,
        state: _Page,
    ) -> None:
        """For a provider that must not be called twice when unsure: the send activity's own
        mark, call and outcome for each message, holding one of the provider's slots."""
        slot = self._sends.slot(provider)

        async def one(request: SendMessageInput) -> None:
            async with gate, slot:
                try:
                    state.results[request.message_id] = await self._sends.call(
                        request, provider, attempt, state.outgoing[request.message_id]
                    )
                except ApplicationError as exc:
                    state.errors.append(exc)

        await asyncio.gather(*(one(r) for r in requests if r.message_id in state.outgoing))

    def _record(self, broadcast_id: str, outcomes: list[Outcome]) -> None:
        with self._db.transaction() as session:
            broadcasts_store.record(session, broadcast_id, outcomes)


def _render(requests: list[SendMessageInput], state: _Page) -> None:
    """Step 2: each released message rendered with its contact's traits; those that cannot
    be (no such template, a render error) become unsendable."""
    for request in requests:
        released = state.released.get(request.message_id)
        if released is None:
            continue
        if released.template is None:
            # The broadcast's configuration, not this contact's data (as in ``_send``).
            state.unsendable[request.message_id] = (f"unknown template {request.template!r}", None)
            continue
        try:
            state.outgoing[request.message_id] = render_outgoing(
                request, released.template, released.address, released.context
            )
        except RenderError as exc:
            state.unsendable[request.message_id] = (str(exc), RENDER_FAILED)


def _raise_if_unsettled(state: _Page) -> None:
    """Some message must be called again: the page fails and Temporal tries it again (after a
    resend window, when one is waiting for a delivery webhook)."""
    if state.errors:
        raise state.errors[0]
    if state.waits:
        raise wait_for_confirmation(min(state.waits, key=lambda w: w.wait))
