"""The send activity: guards, render, write the log row, then call the provider at most once.

Exactly once (docs/channels.md): the message row, keyed by the workflow's idempotency key, is
committed as ``sending`` before the provider is called. An answer proving the provider did not
take the message (``NotAccepted``) sets the row back to ``pending`` and raises, so Temporal's
retry calls again. An outcome nobody can know (``OutcomeUnknown``, or a crash that left the row
``sending``) is never called again for SendGrid and Twilio: the row becomes ``unknown`` and the
step counts it as sent ("outcome unknown"); a delivery webhook carrying our id moves it on.
``resend_unconfirmed_after_seconds`` opts in to sending such a message again when no webhook
confirmed it within that time (at least once instead of at most once).

A send that only an exit follows carries the run's end (``RunEnd``), recorded here once the
message is settled, so the run closes without a progress write of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities import progress, send_guards
from activities.providers.base import (
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
    Receipt,
)
from activities.types import (
    RUN_ENDING_SENDS,
    SEND_MESSAGE,
    SendMessageInput,
    SendMessageResult,
)
from journeys.rendering import RenderError, render
from journeys.settings import Settings
from store import contacts as contacts_store
from store import messages as messages_store
from store.db import Database
from store.models import Contact, Message, Template, utcnow

OUTCOME_UNKNOWN = "outcome unknown"


@dataclass(frozen=True)
class _Unconfirmed:
    """An unknown outcome that ``resend_unconfirmed_after_seconds`` gives a delivery webhook
    until ``wait`` from now to confirm, before the message is sent again."""

    wait: timedelta
    reason: str


class _Attempt:
    """This attempt's view of an unknown outcome: the opt-in resend window and the clock.

    The clock is Temporal's (when this attempt was scheduled), so a retry delayed by the
    window finds the window over, on a real server and on the time-skipping one alike."""

    def __init__(self, window: timedelta | None, now: datetime) -> None:
        self.window, self.now = window, now

    def record_unknown(self, message: Message, reason: str) -> _Unconfirmed | None:
        message.error = f"{OUTCOME_UNKNOWN}: {reason}"
        # Stamped on the clock the window is measured by, only when there is a window.
        at = self.now if self.window is not None else None
        messages_store.add_status(message, "unknown", at=at, reason=reason)
        return None if self.window is None else _Unconfirmed(self.window, message.error)

    def still_unconfirmed(self, message: Message) -> _Unconfirmed | None | bool:
        """For a row left ``unknown``: wait longer (``_Unconfirmed``), send again (True), or
        keep it as sent (None: the default, at most once)."""
        if self.window is None:
            return None
        since = datetime.fromisoformat(message.status_history[-1]["at"])
        left = self.window - (self.now - since)
        return True if left <= timedelta(0) else _Unconfirmed(left, message.error or "")


def _earlier_outcome(
    message: Message, provider: Provider, attempt: _Attempt
) -> SendMessageResult | _Unconfirmed | None:
    """What an earlier attempt settled for this message; None if this attempt must decide
    (nothing settled yet, held back by a guard, or safe to call again)."""
    status = message.status
    if status in ("pending", "deferred"):
        return None
    if status == "sending":
        if provider.resend_when_unsure:
            return None
        # An attempt died between committing ``sending`` and recording the answer: the
        # provider may have the message, so it is not called again for this key (unless
        # the opt-in resend window passes with no delivery webhook confirming it).
        unconfirmed = attempt.record_unknown(message, "attempt interrupted mid-call")
        if unconfirmed is not None:
            return unconfirmed
    elif status == "unknown":
        decision = attempt.still_unconfirmed(message)
        if decision is True:
            return None
        if isinstance(decision, _Unconfirmed):
            return decision
    if status in ("skipped", "failed"):
        return SendMessageResult(status=status, message_id=message.id, reason=message.error)
    unsure = message.status == "unknown"
    return SendMessageResult(
        status="sent", message_id=message.id, reason=message.error if unsure else None
    )


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
    )


def _context(request: SendMessageInput, contact: Contact, message_id: str) -> dict[str, Any]:
    trigger = request.trigger
    return {
        "contact": contacts_store.snapshot(contact).condition_context()["contact"],
        "event": trigger.properties if trigger else {},
        "data": request.data,
        "message": {"id": message_id},
        "trigger": trigger.model_dump(mode="json") if trigger else None,
    }


def _outgoing(
    request: SendMessageInput,
    template: Template | None,
    address: str | None,
    context: dict[str, Any],
) -> OutgoingMessage:
    """The rendered message; ``RenderError`` for anything that makes it unsendable."""
    if template is None:
        raise RenderError(f"unknown template {request.template!r}")
    liquid = {k: v for k, v in context.items() if k != "trigger"}
    rendered = render(template.subject, template.html, template.text, liquid)
    url = None
    if request.channel == "webhook":
        if not template.url:
            raise RenderError("a webhook template needs a url")
        url = render(None, None, template.url, liquid).text
    if request.channel == "sms" and not rendered.text:
        raise RenderError("an sms template needs a text (the SMS body)")
    return OutgoingMessage(
        message_id=request.message_id,
        channel=request.channel,
        to=address,
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        contact_id=request.contact_id,
        url=url,
        provider_template_id=template.provider_template_id if request.channel == "email" else None,
        context=context,
    )


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


def _wait_for_confirmation(unconfirmed: _Unconfirmed) -> ApplicationError:
    return ApplicationError(
        f"{unconfirmed.reason}; sent again unless a delivery webhook confirms it",
        type="ProviderOutcomeUnconfirmed",
        next_retry_delay=unconfirmed.wait,
    )


class SendActivities:
    def __init__(self, db: Database, providers: Mapping[str, Provider], settings: Settings) -> None:
        self._db = db
        self._providers = providers
        self._settings = settings

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendMessageInput) -> SendMessageResult:
        async with _heartbeating():
            result = await self._send(request)
            end = request.run_end
            if end is None or result.status not in RUN_ENDING_SENDS:
                return result
            # After the message's own commit: a retry finds the message settled and writes
            # this again, which adds nothing (the progress write is keyed; the rows keep the
            # first attempt's moment, the run's trace that of the attempt it heard from).
            at = activity.info().started_time
            await asyncio.to_thread(progress.record, self._db, end.progress(result, at))
            return result.model_copy(update={"run_ended_at": at})

    async def _send(self, request: SendMessageInput) -> SendMessageResult:
        provider = self._providers[request.channel]
        attempt = _Attempt(self._resend_window, activity.info().current_attempt_scheduled_time)
        prepared = await asyncio.to_thread(self._prepare, request, provider, attempt)
        if isinstance(prepared, _Unconfirmed):
            raise _wait_for_confirmation(prepared)
        if isinstance(prepared, SendMessageResult):
            return prepared
        message_id = request.message_id
        try:
            receipt = await provider.send(prepared)
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
            if isinstance(unconfirmed, _Unconfirmed):
                raise _wait_for_confirmation(unconfirmed) from exc
            reason = f"{OUTCOME_UNKNOWN}: {exc}" if unconfirmed else None
            return SendMessageResult(status="sent", message_id=message_id, reason=reason)
        await asyncio.to_thread(self._finish, message_id, "sent", receipt, None)
        return SendMessageResult(status="sent", message_id=message_id)

    @property
    def _resend_window(self) -> timedelta | None:
        seconds = self._settings.resend_unconfirmed_after_seconds
        return None if seconds is None else timedelta(seconds=seconds)

    def _prepare(
        self, request: SendMessageInput, provider: Provider, attempt: _Attempt
    ) -> OutgoingMessage | SendMessageResult | _Unconfirmed:
        """In one transaction: an earlier attempt's outcome, a skip or deferral by the guards,
        a rendering failure, or the message to hand to the provider, its row committed as
        ``sending`` before this returns."""
        now = request.now or utcnow()
        with self._db.transaction() as session:
            existing = session.scalars(
                select(Message).where(Message.id == request.message_id).with_for_update()
            ).one_or_none()
            if existing is not None:
                earlier = _earlier_outcome(existing, provider, attempt)
                if earlier is not None:
                    return earlier
            # Locked, so a second journey's send to this contact waits here and then counts
            # ours: two sends cannot both pass a cap.
            contact = session.scalars(
                select(Contact).where(Contact.id == request.contact_id).with_for_update()
            ).one_or_none() or contacts_store.get_or_create(session, request.contact_id)
            address = {"email": contact.email, "sms": contact.phone}.get(request.channel)
            message = existing or _new_row(request, provider)
            if existing is None:
                session.add(message)
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
                )
            )
            if verdict is not None:
                return self._held(message, verdict)
            template = session.get(Template, request.template)
            try:
                outgoing = _outgoing(
                    request, template, address, _context(request, contact, message.id)
                )
            except RenderError as exc:
                message.error = f"template {request.template}: {exc}"
                messages_store.add_status(message, "failed", reason=message.error)
                return SendMessageResult(
                    status="failed", message_id=message.id, reason=message.error
                )
            message.subject = outgoing.subject
            message.body = outgoing.text if outgoing.text is not None else outgoing.html
            message.provider = provider.name
            message.error = None
            message.sent_at = now
            messages_store.add_status(message, "sending")
            return outgoing

    @staticmethod
    def _held(message: Message, verdict: send_guards.Verdict) -> SendMessageResult:
        extra: dict[str, Any] = {"reason": verdict.reason}
        if verdict.status == "deferred":
            assert verdict.until is not None
            extra["until"] = verdict.until.isoformat()
        else:
            message.error = verdict.reason
        messages_store.add_status(message, verdict.status, **extra)
        return SendMessageResult(
            status=verdict.status, message_id=message.id, reason=verdict.reason, until=verdict.until
        )

    def _set_back(self, message_id: str, reason: str) -> None:
        """The provider did not take it: the next attempt may call again."""
        with self._db.transaction() as session:
            message = self._locked(session, message_id)
            messages_store.add_status(message, "pending", reason=reason)

    def _unknown(self, message_id: str, attempt: _Attempt, reason: str) -> _Unconfirmed | bool:
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
            message = self._locked(session, message_id)
            if receipt is not None:
                message.provider_message_id = receipt.provider_message_id
            message.error = error
            # A delivery webhook may have moved the row on while the call was answering.
            if messages_store.RANK.get(message.status, -1) < messages_store.RANK[status]:
                messages_store.add_status(message, status)

    @staticmethod
    def _locked(session: Session, message_id: str) -> Message:
        return session.scalars(
            select(Message).where(Message.id == message_id).with_for_update()
        ).one()
