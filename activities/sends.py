"""The send activity: check consent, render, write the log row, then call the provider once."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping

from temporalio import activity

from activities.providers.base import OutgoingMessage, PermanentSendError, Provider, Receipt
from activities.types import SEND_MESSAGE, SendMessageInput, SendMessageResult
from journeys.rendering import RenderError, render
from journeys.settings import Settings
from store import contacts as contacts_store
from store import messages as messages_store
from store.db import Database
from store.models import Message, Template

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


def _address_problem(channel: str, address: str | None) -> str | None:
    if channel == "email":
        if not address:
            return "no email address"
        return None if EMAIL.match(address) else f"invalid email address {address!r}"
    if channel == "sms":
        if not address:
            return "no phone number"
        return None if PHONE.match(address) else f"invalid phone number {address!r} (E.164)"
    return None


def _earlier_outcome(message: Message) -> SendMessageResult:
    if message.status in ("skipped", "failed"):
        return SendMessageResult(status=message.status, message_id=message.id, reason=message.error)
    # A pending row here means an attempt may have reached the provider: counting it as sent
    # keeps the promise of never sending twice (see docs on exactly-once sends).
    reason = "outcome of an earlier attempt unknown" if message.status == "pending" else None
    return SendMessageResult(status="sent", message_id=message.id, reason=reason)


class SendActivities:
    def __init__(self, db: Database, providers: Mapping[str, Provider], settings: Settings) -> None:
        self._db = db
        self._providers = providers
        self._settings = settings

    @activity.defn(name=SEND_MESSAGE)
    async def send_message(self, request: SendMessageInput) -> SendMessageResult:
        provider = self._providers[request.channel]
        prepared = await asyncio.to_thread(self._prepare, request, provider)
        if isinstance(prepared, SendMessageResult):
            return prepared
        try:
            receipt = await provider.send(prepared)
        except PermanentSendError as exc:
            await asyncio.to_thread(self._finish, request.message_id, "failed", None, str(exc))
            return SendMessageResult(
                status="failed", message_id=request.message_id, reason=str(exc)
            )
        await asyncio.to_thread(self._finish, request.message_id, "sent", receipt, None)
        return SendMessageResult(status="sent", message_id=request.message_id)

    def _prepare(
        self, request: SendMessageInput, provider: Provider
    ) -> OutgoingMessage | SendMessageResult:
        """In one transaction: an earlier attempt's outcome, a skip, a failure, or the message
        to hand to the provider (its row already written as pending)."""
        with self._db.transaction() as session:
            existing = messages_store.get(session, request.message_id)
            if existing is not None and (
                existing.status != "pending" or not provider.resend_when_unsure
            ):
                return _earlier_outcome(existing)
            contact = contacts_store.get_or_create(session, request.contact_id)
            address = contact.email if request.channel == "email" else contact.phone
            message = existing or Message(
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
                to_address=address,
                status_history=[],
            )
            session.add(message)
            skip = _address_problem(request.channel, address)
            if skip is None and request.channel in (contact.unsubscribed or []):
                skip = f"unsubscribed from {request.channel}"
            if skip is None and address:
                reason = messages_store.is_suppressed(session, request.channel, address)
                skip = f"suppressed: {reason}" if reason else None
            if skip is not None:
                message.error = skip
                messages_store.add_status(message, "skipped", reason=skip)
                return SendMessageResult(status="skipped", message_id=message.id, reason=skip)

            template = session.get(Template, request.template)
            try:
                if template is None:
                    raise RenderError(f"unknown template {request.template!r}")
                rendered = render(
                    template.subject,
                    template.html,
                    template.text,
                    {
                        "contact": contacts_store.snapshot(contact).condition_context()["contact"],
                        "event": request.trigger.properties if request.trigger else {},
                        "data": request.data,
                        "message": {"id": message.id},
                    },
                )
            except RenderError as exc:
                message.error = f"template {request.template}: {exc}"
                messages_store.add_status(message, "failed", reason=message.error)
                return SendMessageResult(
                    status="failed", message_id=message.id, reason=message.error
                )
            message.subject = rendered.subject
            message.body = rendered.text if rendered.text is not None else rendered.html
            if existing is None:
                messages_store.add_status(message, "pending")
            return OutgoingMessage(
                message_id=message.id,
                channel=request.channel,
                to=address,
                subject=rendered.subject,
                html=rendered.html,
                text=rendered.text,
            )

    def _finish(
        self, message_id: str, status: str, receipt: Receipt | None, error: str | None
    ) -> None:
        with self._db.transaction() as session:
            message = messages_store.get(session, message_id)
            assert message is not None
            if receipt is not None:
                message.provider_message_id = receipt.provider_message_id
            message.error = error
            messages_store.add_status(message, status)
