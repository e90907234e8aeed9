"""The send activity: guards, render, write the log row, then call the provider at most once.

Exactly once (docs/channels.md): the message row, keyed by the workflow's idempotency key, is
written and the guards applied in one short transaction (the contact locked); the template is
rendered after it, holding no transaction, lock or connection. The row is marked ``sending``
by the thread that makes the provider call, immediately before it (``before_call``), and a
send holds one of its provider's ``provider_concurrency`` slots from there until its outcome
is recorded: a crash can leave ``sending`` only messages whose call had begun, at most that
many per worker and provider. A message still waiting for a slot is ``pending`` (or where it
was) and the retry sends it.

An answer proving the provider did not take the message (``NotAccepted``) sets the row back to
``pending`` and raises, so Temporal's retry calls again. An outcome nobody can know
(``OutcomeUnknown``, or a crash that left the row ``sending``) is not called again for SendGrid
and Twilio: the row becomes ``unknown`` and the step counts it as sent ("outcome unknown"); a
delivery webhook carrying our id moves it on. When such a webhook is configured (SendGrid's
signed Event Webhook), or ``resend_unconfirmed_after_seconds`` says so, an ``unknown`` message
no webhook confirmed within the window is sent again (at least once instead of at most once).

A template that cannot render for this contact makes the message ``failed`` (with the error)
but never fails the run: the result is ``failed`` when the step has an ``on_failure`` to take,
else ``skipped``, so the run goes on to the next step. A template that does not exist is the
journey's fault, not the contact's: ``failed``, as a permanent provider refusal is.

A send that only an exit follows carries the run's end (``RunEnd``), recorded here once the
message is settled, so the run closes without a progress write of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from temporal_journeys.activities import send_guards
from temporal_journeys.activities.progress import ProgressWriter
from temporal_journeys.activities.providers.base import (
    AlreadySettled,
    Device,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
    Receipt,
)
from temporal_journeys.journeys.consent import unsubscribe_url
from temporal_journeys.journeys.rendering import RenderError, render
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.journeys.spec import SendStep
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import events as events_store
from temporal_journeys.store import journeys as journeys_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message, Template, utcnow
from temporal_journeys.workflows.activity_types import (
    RUN_ENDING_SENDS,
    SEND_MESSAGE,
    SendMessageInput,
    SendMessageResult,
)

OUTCOME_UNKNOWN = "outcome unknown"
WHATSAPP_INBOUND = "whatsapp.inbound"
WEBHOOK_WINDOW = timedelta(seconds=120)
"""How long an unknown outcome waits for the delivery webhook of a provider that has one
configured, unless ``resend_unconfirmed_after_seconds`` says otherwise. SendGrid posts its
events in batches at least every 30 seconds; this leaves room for a slow batch."""
RENDER_FAILED = "template"
"""The ``cause`` of a ``failed`` history entry written because the template did not render."""
# Where a message this attempt released may be when its call is about to be made.
_CALLABLE = frozenset({"pending", "deferred", "unknown"})


def _callable_from(provider: Provider) -> frozenset[str]:
    # A provider that repeats interrupted attempts also resends a row a crash left ``sending``.
    return _CALLABLE | {"sending"} if provider.resend_when_unsure else _CALLABLE


@dataclass(frozen=True)
class Unconfirmed:
    """An unknown outcome that the resend window gives a delivery webhook until ``wait`` from
    now to confirm, before the message is sent again."""

    wait: timedelta
    reason: str


@dataclass(frozen=True)
class _Source:
    """A template's parts, read in the prepare transaction and rendered after it."""

    subject: str | None
    html: str | None
    text: str | None
    url: str | None
    provider_template_id: str | None

    @classmethod
    def of(cls, template: Template | None) -> _Source | None:
        if template is None:
            return None
        return cls(
            template.subject,
            template.html,
            template.text,
            template.url,
            template.provider_template_id,
        )


@dataclass(frozen=True)
class Released:
    """A message the guards let out, its row committed (not ``sending`` yet): what to render."""

    template: _Source | None
    address: str | None
    context: dict[str, Any]
    devices: tuple[Device, ...] = ()
    """Push: the contact's devices no earlier attempt called for this message."""
    earlier: tuple[str, ...] = ()
    """Push: FCM message names of earlier attempts' calls that reached a device."""
    window_open: bool = False
    """WhatsApp: the contact wrote to us in the last 24 hours, so free-form text may go."""


class _DeviceLedger:
    """``OutgoingMessage.device_log`` for push: each device's outcome, recorded (in its own
    transaction, from the provider's thread) as the provider gets it, so a retry of the
    message calls only the devices no attempt called, and a dead token is removed."""

    def __init__(self, db: Database, message_id: str, earlier: tuple[str, ...]) -> None:
        self._db, self._message_id, self.earlier = db, message_id, earlier

    def sent(self, token: str, provider_message_id: str) -> None:
        self._record(token, "sent", provider_message_id)

    def unknown(self, token: str) -> None:
        self._record(token, "unknown")

    def refused(self, token: str, reason: str) -> None:
        self._record(token, "refused")

    def removed(self, token: str, reason: str) -> None:
        with self._db.transaction() as session:
            devices_store.record(session, self._message_id, token, "removed")
            devices_store.remove_token(session, token)

    def _record(self, token: str, outcome: str, provider_message_id: str | None = None) -> None:
        with self._db.transaction() as session:
            devices_store.record(session, self._message_id, token, outcome, provider_message_id)


def _keys(row: devices_store.DeviceRow) -> tuple[str, str] | None:
    """A web push subscription's (p256dh, auth); None for an FCM token."""
    return (row.p256dh, row.auth) if row.p256dh and row.auth else None


def _push_devices(
    session: Session, contact_id: str, message_id: str
) -> tuple[tuple[Device, ...], tuple[str, ...]]:
    """The contact's devices not called yet for this message, and the names of the calls
    that reached one (an earlier attempt that stopped at a rate limit)."""
    called = devices_store.called(session, message_id)
    devices = tuple(
        Device(row.token, row.platform, _keys(row))
        for row in devices_store.of_contact(session, contact_id)
        if row.token not in called
    )
    earlier = tuple(
        row.provider_message_id or "" for row in called.values() if row.outcome == "sent"
    )
    return devices, earlier


class Attempt:
    """This attempt's view of an unknown outcome: the resend window and the clock.

    The clock is Temporal's (when this attempt was scheduled), so a retry delayed by the
    window finds the window over, on a real server and on the time-skipping one alike."""

    def __init__(self, window: timedelta | None, now: datetime) -> None:
        self.window, self.now = window, now

    def record_unknown(self, message: Message, reason: str) -> Unconfirmed | None:
        message.error = f"{OUTCOME_UNKNOWN}: {reason}"
        # Stamped on the clock the window is measured by, only when there is a window.
        at = self.now if self.window is not None else None
        messages_store.add_status(message, "unknown", at=at, reason=reason)
        return None if self.window is None else Unconfirmed(self.window, message.error)

    def still_unconfirmed(self, message: Message) -> Unconfirmed | None | bool:
        """For a row left ``unknown``: wait longer (``Unconfirmed``), send again (True), or
        keep it as sent (None: without a window, at most once)."""
        if self.window is None:
            return None
        since = datetime.fromisoformat(message.status_history[-1]["at"])
        left = self.window - (self.now - since)
        return True if left <= timedelta(0) else Unconfirmed(left, message.error or "")


def _earlier_outcome(message: Message, provider: Provider, attempt: Attempt) -> Unconfirmed | bool:
    """What an earlier attempt left: a window to wait out, True if the recorded outcome
    stands (``recorded``), False if this attempt must decide (nothing settled yet, held
    back by a guard, or safe to call again)."""
    status = message.status
    if status in ("pending", "deferred"):
        return False
    if status == "sending":
        if provider.resend_when_unsure:
            return False
        # An attempt died during its provider call (the row is marked only once the call has
        # a thread): the provider may have the message, so it is not called again for this
        # key unless a resend window passes with no delivery webhook confirming it.
        return attempt.record_unknown(message, "attempt interrupted mid-call") or True
    if status == "unknown":
        decision = attempt.still_unconfirmed(message)
        if decision is True:
            return False
        if isinstance(decision, Unconfirmed):
            return decision
    return True


def _render_failed(message: Message) -> bool:
    history = message.status_history or []
    return bool(history) and history[-1].get("cause") == RENDER_FAILED


def _new_row(request: SendMessageInput, provider: Provider) -> Message:
    return Message(
        id=request.message_id,
        idempotency_key=request.idempotency_key,
        contact_id=request.contact_id,
        journey_key=request.journey_key,
        version=request.version,
        step_id=request.step_id,
        workflow_id=request.workflow_id,
        channel=request.channel,
        template=request.template,
        provider=provider.name,
        status_history=[],
        variant=request.variant,
    )


def _context(
    request: SendMessageInput, contact: Contact, message_id: str, settings: Settings
) -> dict[str, Any]:
    trigger = request.trigger
    message: dict[str, Any] = {"id": message_id, "topic": request.topic, "unsubscribe_url": None}
    if request.channel == "email" and settings.secret_key:
        # ``{{ message.unsubscribe_url }}``: the visible link to the preference page (the
        # List-Unsubscribe header is the same link, for mail clients' own button). Defined,
        # empty, elsewhere: strict Liquid must not fail a template shared with a preview.
        message["unsubscribe_url"] = unsubscribe_url(
            settings.public_url, settings.secret_key, contact.id, "email", request.topic
        )
    return {
        "contact": contacts_store.snapshot(contact).condition_context()["contact"],
        "event": trigger.properties if trigger else {},
        "data": request.data,
        "message": message,
        "trigger": trigger.model_dump(mode="json") if trigger else None,
    }


def render_outgoing(
    request: SendMessageInput,
    template: _Source,
    address: str | None,
    context: dict[str, Any],
    devices: tuple[Device, ...] = (),
    device_log: _DeviceLedger | None = None,
    window_open: bool = False,
) -> OutgoingMessage:
    """The rendered message; ``RenderError`` for anything that makes it unsendable."""
    liquid = {k: v for k, v in context.items() if k != "trigger"}
    rendered = render(template.subject, template.html, template.text, liquid)
    url = None
    if request.channel == "webhook":
        if not template.url:
            raise RenderError("a webhook template needs a url")
        url = render(None, None, template.url, liquid).text
    if request.channel == "push" and template.url:
        url = render(None, None, template.url, liquid).text  # the notification's deep link
    if request.channel == "sms" and not rendered.text:
        raise RenderError("an sms template needs a text (the SMS body)")
    if request.channel == "push" and not (rendered.text or rendered.subject):
        raise RenderError("a push template needs a text (the body) or a subject (the title)")
    content_sid, variables = _whatsapp_content(
        request, template, rendered.text, window_open, liquid
    )
    return OutgoingMessage(
        message_id=request.message_id,
        channel=request.channel,
        to=address,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        contact_id=request.contact_id,
        url=url,
        provider_template_id=(
            template.provider_template_id if request.channel == "email" else content_sid
        ),
        context=context,
        topic=request.topic,
        devices=devices,
        device_log=device_log,
        variables=variables,
    )


WHATSAPP_WINDOW = timedelta(hours=24)
"""WhatsApp's customer service window: free-form text only this long after the contact's last
message to us; approved content templates at any time."""


def _whatsapp_content(
    request: SendMessageInput,
    template: _Source,
    text: str | None,
    window_open: bool,
    liquid: dict[str, Any],
) -> tuple[str | None, dict[str, str]]:
    """WhatsApp: the Content SID and its variables when a content template goes (the window is
    closed, or the template has no text), else (None, {}) for free-form text. The variables are
    the step's ``data.content_variables`` (``{"1": "{{ contact.first_name }}"}``), each value
    rendered with Liquid."""
    if request.channel != "whatsapp":
        return None, {}
    if text and window_open:
        return None, {}
    if not template.provider_template_id:
        if text:
            raise RenderError(
                "outside WhatsApp's 24-hour window only a content template can be sent: "
                "give the template a provider_template_id (a Twilio Content SID, HX...)"
            )
        raise RenderError("a whatsapp template needs a text or a provider_template_id")
    given = request.data.get("content_variables") or {}
    if not isinstance(given, dict):
        raise RenderError("data.content_variables must be an object of template variables")
    return template.provider_template_id, {
        str(name): render(None, None, str(value), liquid).text or ""
        for name, value in given.items()
    }


def headers_sent(provider: Provider, outgoing: OutgoingMessage) -> dict[str, str]:
    """The headers ``provider`` puts on ``outgoing``: its own (SendGrid's List-Unsubscribe)
    and the message's. A provider without ``headers_for`` (SMS, console) adds none."""
    headers_for = getattr(provider, "headers_for", None)
    return dict(headers_for(outgoing)) if headers_for is not None else dict(outgoing.headers)


def record_content(message: Message, outgoing: OutgoingMessage, provider: Provider) -> None:
    """What the provider is about to be given, kept on the row for the message log: the
    subject, the text (``body``), the HTML and the headers."""
    message.subject = outgoing.subject
    message.body = outgoing.text
    message.html = outgoing.html
    message.headers = headers_sent(provider, outgoing) or None


def recorded(session: Session, request: SendMessageInput, message: Message) -> SendMessageResult:
    """The outcome the row holds, for an attempt that finds the message settled."""
    status = message.status
    if status == "failed" and _render_failed(message):
        return _unrendered_result(session, request, message)
    if status in ("skipped", "failed"):
        return SendMessageResult(status=status, message_id=message.id, reason=message.error)
    unsure = status in ("sending", "unknown")
    return SendMessageResult(
        status="sent", message_id=message.id, reason=message.error if unsure else None
    )


def _unrendered_result(
    session: Session, request: SendMessageInput, message: Message
) -> SendMessageResult:
    """``failed`` when the step has an ``on_failure`` to take; otherwise ``skipped``, so
    the run goes on: one contact's missing trait never fails the run."""
    journey = journeys_store.version_spec(session, request.journey_key, request.version)
    step = journey.step_map().get(request.step_id) if journey is not None else None
    takes_on_failure = isinstance(step, SendStep) and step.on_failure is not None
    return SendMessageResult(
        status="failed" if takes_on_failure else "skipped",
        message_id=message.id,
        reason=message.error,
    )


def mark_unsendable(
    session: Session,
    request: SendMessageInput,
    provider: Provider,
    message: Message,
    error: str,
    cause: str | None,
) -> SendMessageResult:
    """The locked ``message`` ``failed`` without a call; ``cause`` ``RENDER_FAILED`` when this
    contact's render failed (the run goes on, ``_unrendered_result``)."""
    if message.status not in _callable_from(provider):
        return recorded(session, request, message)
    message.error = f"template {request.template}: {error}"
    message.sent_at = None
    extra = {"cause": cause} if cause else {}
    messages_store.add_status(message, "failed", reason=message.error, **extra)
    return recorded(session, request, message)


def mark_sending(message: Message, outgoing: OutgoingMessage, provider: Provider) -> None:
    """The locked ``message`` about to be given to ``provider``: its content kept for the log
    and its status ``sending``. ``AlreadySettled`` when the row moved on since it was
    released (a webhook confirmed an unknown outcome, another attempt is calling)."""
    if message.status not in _callable_from(provider):
        raise AlreadySettled(f"message {message.id} is {message.status}")
    record_content(message, outgoing, provider)
    message.error = None
    messages_store.add_status(message, "sending")


def settle(message: Message, status: str, receipt: Receipt | None, error: str | None) -> None:
    """The locked ``message``'s call answered: ``sent`` (with the provider's id) or ``failed``."""
    if receipt is not None:
        message.provider_message_id = receipt.provider_message_id
    message.error = error
    # A delivery webhook may have moved the row on while the call was answering.
    if messages_store.RANK.get(message.status, -1) < messages_store.RANK[status]:
        messages_store.add_status(message, status)


@contextlib.asynccontextmanager
async def _heartbeating(every: float = 2.0) -> AsyncIterator[None]:
    """Heartbeat while a send runs, so a worker killed mid-call is noticed within the heartbeat
    timeout and the retry (which then finds the row ``sending``) starts soon."""

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()


def wait_for_confirmation(unconfirmed: Unconfirmed) -> ApplicationError:
    return ApplicationError(
        f"{unconfirmed.reason}; sent again unless a delivery webhook confirms it",
        type="ProviderOutcomeUnconfirmed",
        next_retry_delay=unconfirmed.wait,
    )


class SendActivities:
    def __init__(
        self,
        db: Database,
        providers: Mapping[str, Provider],
        settings: Settings,
        progress: ProgressWriter | None = None,
    ) -> None:
        self._db = db
        self._progress = progress or ProgressWriter(db)
        self._providers = providers
        self._settings = settings
        self._slots = {
            provider.name: asyncio.Semaphore(settings.provider_concurrency)
            for provider in providers.values()
        }

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendMessageInput) -> SendMessageResult:
        async with _heartbeating():
            result = await self._send(request)
            after = request.run_end or request.wait_ahead
            if after is None or result.status not in RUN_ENDING_SENDS:
                return result
            # After the message's own commit: a retry finds the message settled and writes
            # this again, which adds nothing (the progress write is keyed; the rows keep the
            # first attempt's moment, the run's trace that of the attempt it heard from).
            at = activity.info().started_time
            await self._progress.record(after.progress(result, at))
            told = "run_ended_at" if request.run_end is not None else "wait_recorded_at"
            return result.model_copy(update={told: at})

    async def _send(self, request: SendMessageInput) -> SendMessageResult:
        provider = self.provider(request.channel)
        attempt = self.attempt(provider)
        prepared = await asyncio.to_thread(self._prepare, request, provider, attempt)
        if isinstance(prepared, Unconfirmed):
            raise wait_for_confirmation(prepared)
        if isinstance(prepared, SendMessageResult):
            return prepared
        if prepared.template is None:
            # The journey's configuration, not this contact's data: the step fails as on a
            # permanent provider error (its on_failure, else the run fails, visibly).
            unknown = f"unknown template {request.template!r}"
            return await asyncio.to_thread(self._unsendable, request, provider, unknown, None)
        try:
            # Bounded by the Liquid limits (journeys/rendering.py); nothing is held meanwhile.
            ledger = (
                _DeviceLedger(self._db, request.message_id, prepared.earlier)
                if request.channel == "push"
                else None
            )
            outgoing = await asyncio.to_thread(
                render_outgoing,
                request,
                prepared.template,
                prepared.address,
                prepared.context,
                prepared.devices,
                ledger,
                prepared.window_open,
            )
        except RenderError as exc:
            return await asyncio.to_thread(
                self._unsendable, request, provider, str(exc), RENDER_FAILED
            )
        # Held from the mark until the outcome is recorded: at any moment, no more rows of
        # this provider are ``sending`` than there are slots (what a crash can leave unknown).
        async with self._slots[provider.name]:
            return await self.call(request, provider, attempt, outgoing)

    @property
    def settings(self) -> Settings:
        return self._settings

    def provider(self, channel: str) -> Provider:
        return self._providers[channel]

    def slot(self, provider: Provider) -> asyncio.Semaphore:
        """One of ``provider``'s ``provider_concurrency`` slots, held from a message's mark
        until its outcome is recorded."""
        return self._slots[provider.name]

    def attempt(self, provider: Provider) -> Attempt:
        """This activity attempt's resend window for ``provider`` and its clock."""
        return Attempt(
            self._resend_window(provider), activity.info().current_attempt_scheduled_time
        )

    async def call(
        self,
        request: SendMessageInput,
        provider: Provider,
        attempt: Attempt,
        outgoing: OutgoingMessage,
    ) -> SendMessageResult:
        message_id = request.message_id
        try:
            receipt = await provider.send(
                outgoing, functools.partial(self._mark_sending, outgoing, provider)
            )
        except AlreadySettled:
            return await asyncio.to_thread(self._settled, request)
        except PermanentSendError as exc:
            await asyncio.to_thread(self._finish, message_id, "failed", None, str(exc))
            return SendMessageResult(status="failed", message_id=message_id, reason=str(exc))
        except NotAccepted as exc:
            await asyncio.to_thread(self._set_back, message_id, str(exc))
            raise ApplicationError(
                str(exc), type="ProviderNotAccepted", next_retry_delay=exc.retry_after
            ) from exc
        except OutcomeUnknown as exc:
            if provider.resend_when_unsure:
                await asyncio.to_thread(self._set_back, message_id, str(exc))
                raise ApplicationError(str(exc), type="ProviderOutcomeUnknown") from exc
            unconfirmed = await asyncio.to_thread(self._unknown, message_id, attempt, str(exc))
            if isinstance(unconfirmed, Unconfirmed):
                raise wait_for_confirmation(unconfirmed) from exc
            reason = f"{OUTCOME_UNKNOWN}: {exc}" if unconfirmed else None
            return SendMessageResult(status="sent", message_id=message_id, reason=reason)
        await asyncio.to_thread(self._finish, message_id, "sent", receipt, None)
        return SendMessageResult(status="sent", message_id=message_id)

    def _resend_window(self, provider: Provider) -> timedelta | None:
        seconds = self._settings.resend_unconfirmed_after_seconds
        if seconds is None:
            return WEBHOOK_WINDOW if getattr(provider, "confirmed_by_webhook", False) else None
        return timedelta(seconds=seconds) if seconds > 0 else None

    def _prepare(
        self, request: SendMessageInput, provider: Provider, attempt: Attempt
    ) -> Released | SendMessageResult | Unconfirmed:
        """In one transaction: an earlier attempt's outcome, a skip or deferral by the guards,
        or the message released to be rendered and sent, its row committed."""
        now = request.now or utcnow()
        with self._db.transaction() as session:
            existing = messages_store.lock(session, request.message_id)
            earlier = self.earlier(session, request, provider, attempt, existing)
            if earlier is not None:
                return earlier
            # Locked, so a second journey's send to this contact waits here and then counts
            # ours: two sends cannot both pass a cap.
            contact = contacts_store.lock_or_create(session, request.contact_id)
            return self.release(session, request, provider, contact, existing, now)

    def earlier(
        self,
        session: Session,
        request: SendMessageInput,
        provider: Provider,
        attempt: Attempt,
        existing: Message | None,
    ) -> SendMessageResult | Unconfirmed | None:
        """What an earlier attempt settled for this message (``existing`` locked), a resend
        window to wait out, or None when this attempt applies the guards."""
        if existing is None:
            return None
        earlier = _earlier_outcome(existing, provider, attempt)
        if earlier is True:
            return recorded(session, request, existing)
        if isinstance(earlier, Unconfirmed):
            return earlier
        return None

    def release(
        self,
        session: Session,
        request: SendMessageInput,
        provider: Provider,
        contact: Contact,
        existing: Message | None,
        now: datetime,
        lookups: send_guards.Lookups = send_guards.PER_SEND,
    ) -> Released | SendMessageResult:
        """With the message (if any) and the contact locked: the row written or updated and
        the guards applied; a skip or deferral, or what to render. ``lookups``: where the
        guards read what the contact row does not hold (a batch loads it for all its sends)."""
        # Push has no one address: its devices are looked up once the guards let it out.
        address = {
            "email": contact.email,
            "sms": contact.phone,
            "whatsapp": contact.phone,
        }.get(request.channel)
        message = existing or _new_row(request, provider)
        if existing is None:
            messages_store.add(session, message)
            messages_store.add_status(message, "pending")
        message.to_address = address
        verdict = send_guards.evaluate(
            send_guards.SendContext(
                session=session,
                settings=self._settings,
                contact=contact,
                channel=request.channel,
                address=address,
                message_id=message.id,
                now=now,
                if_capped=request.if_capped,
                topic=request.topic,
                lookups=lookups,
            )
        )
        if verdict is not None:
            return self._held(message, verdict)
        message.provider = provider.name
        # Released: from here on frequency caps count it (``send_guards.COUNTED``), before
        # its call begins; a deferral, a refusal or a render failure clears it again.
        message.sent_at = now
        devices, earlier = (
            _push_devices(session, contact.id, message.id)
            if request.channel == "push"
            else ((), ())
        )
        # WhatsApp's 24-hour window: open while the contact's last message is that recent.
        window_open = request.channel == "whatsapp" and bool(
            events_store.count(session, contact.id, WHATSAPP_INBOUND, now - WHATSAPP_WINDOW)
        )
        return Released(
            _Source.of(templates_store.get(session, request.template)),
            address,
            _context(request, contact, message.id, self._settings),
            devices,
            earlier,
            window_open,
        )

    @staticmethod
    def _held(message: Message, verdict: send_guards.Verdict) -> SendMessageResult:
        extra: dict[str, Any] = {"reason": verdict.reason}
        if verdict.status == "deferred":
            assert verdict.until is not None
            extra["until"] = verdict.until.isoformat()
        else:
            message.error = verdict.reason
        message.sent_at = None  # held back: not counted by frequency caps
        messages_store.add_status(message, verdict.status, **extra)
        return SendMessageResult(
            status=verdict.status, message_id=message.id, reason=verdict.reason, until=verdict.until
        )

    def _unsendable(
        self, request: SendMessageInput, provider: Provider, error: str, cause: str | None
    ) -> SendMessageResult:
        """The message ``failed`` without a call; ``cause`` ``RENDER_FAILED`` when this
        contact's render failed (the run goes on, ``_unrendered_result``)."""
        with self._db.transaction() as session:
            message = self._locked(session, request.message_id)
            return mark_unsendable(session, request, provider, message, error, cause)

    def _mark_sending(self, outgoing: OutgoingMessage, provider: Provider) -> None:
        """``before_call``: run by the thread about to call the provider. ``AlreadySettled``
        when the row moved on since it was released (a webhook confirmed an unknown outcome,
        another attempt is calling)."""
        with self._db.transaction() as session:
            mark_sending(self._locked(session, outgoing.message_id), outgoing, provider)

    def _settled(self, request: SendMessageInput) -> SendMessageResult:
        with self._db.transaction() as session:
            return recorded(session, request, self._locked(session, request.message_id))

    def _set_back(self, message_id: str, reason: str) -> None:
        """The provider did not take it: the next attempt may call again."""
        with self._db.transaction() as session:
            message = self._locked(session, message_id)
            message.sent_at = None  # the retry applies the guards again
            messages_store.add_status(message, "pending", reason=reason)

    def _unknown(self, message_id: str, attempt: Attempt, reason: str) -> Unconfirmed | bool:
        """Record an unknown outcome: a resend window to wait out, True if it stays unknown,
        False if a delivery webhook already said the provider took it."""
        with self._db.transaction() as session:
            message = self._locked(session, message_id)
            if message.status != "sending":
                return False
            return attempt.record_unknown(message, reason) or True

    def _finish(
        self, message_id: str, status: str, receipt: Receipt | None, error: str | None
    ) -> None:
        with self._db.transaction() as session:
            settle(self._locked(session, message_id), status, receipt, error)

    @staticmethod
    def _locked(session: Session, message_id: str) -> Message:
        message = messages_store.lock(session, message_id)
        if message is None:  # written by ``_prepare`` before the provider was called
            raise NoResultFound(f"message {message_id} has no row")
        return message
