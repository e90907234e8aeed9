"""Message templates: Liquid checked before a template is stored, read back by key, rendered
for a contact or sample data without sending (preview), and sent once to a given address
through the real provider (test send).

A preview renders exactly as a send does (``activities/sends.py``: strict Liquid, the same
context, the same limits), so a variable a contact lacks fails the preview as it would fail the
message; the error names the part, the line and the variable. A test send writes a message row
marked ``test``: it shows in the message log with its content and headers, frequency caps
(``store/messages.py`` ``sent_times``) and delivery events (``deliveries.py``) leave it out,
and it has no journey, so no journey's figures count it.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Mapping
from typing import Any

from liquid.exceptions import LiquidError
from sqlalchemy.orm import Session

from temporal_journeys.activities.providers.base import (
    AlreadySettled,
    Device,
    NotAccepted,
    OutcomeUnknown,
    OutgoingMessage,
    PermanentSendError,
    Provider,
)
from temporal_journeys.activities.sends import headers_sent, record_content
from temporal_journeys.api.errors import NotFound, ProviderRefused, Unrenderable
from temporal_journeys.api.schemas import (
    MessageOut,
    PreviewBody,
    PreviewOut,
    SendTestBody,
    TemplateBody,
    TemplateOut,
)
from temporal_journeys.journeys.graph import Problem
from temporal_journeys.journeys.records import ContactSnapshot
from temporal_journeys.journeys.rendering import RenderError, check_limits, check_syntax, render
from temporal_journeys.journeys.validation import SpecInvalid
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store import templates as templates_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message, Template, utcnow

PARTS = ("subject", "html", "text", "url")
SAMPLE_CONTACT = "preview"
"""The contact id of a preview or test send made with sample traits and no ``id`` among them."""
TEST_HEADER = "X-Journeys-Test"
"""Put on a test email, so whoever reads it (and any filter) knows it is one."""
_UNDEFINED = re.compile(r"^(?P<variable>[\w.\[\]'\"-]+) is undefined")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PHONE = re.compile(r"^\+[1-9]\d{6,14}$")


def _out(template: Template) -> TemplateOut:
    return TemplateOut(
        key=template.key,
        channel=template.channel,
        subject=template.subject,
        html=template.html,
        text=template.text,
        provider_template_id=template.provider_template_id,
        url=template.url,
        updated_at=template.updated_at,
    )


def put(session: Session, key: str, body: TemplateBody) -> TemplateOut:
    """Create or replace a template; ``SpecInvalid`` lists every part that does not parse or
    whose trial render exceeds the rendering limits (a loop too long, an output too large)."""
    problems = []
    if body.channel == "webhook" and not body.url:
        problems.append(Problem("$.url", "a webhook template needs a url"))
    for part in PARTS:
        try:
            check_syntax(getattr(body, part))
            check_limits(getattr(body, part))
        except RenderError as exc:
            problems.append(Problem(f"$.{part}", str(exc)))
    if problems:
        raise SpecInvalid(problems)
    return _out(templates_store.put(session, key, **body.model_dump()))


def get(session: Session, key: str) -> TemplateOut:
    return _out(_template(session, key))


def _template(session: Session, key: str) -> Template:
    template = templates_store.get(session, key)
    if template is None:
        raise NotFound(f"template {key!r}")
    return template


# --- preview ------------------------------------------------------------------------------


def _person(session: Session, body: PreviewBody) -> ContactSnapshot:
    """The stored contact the body names, or one made of its sample traits."""
    if body.contact is not None:
        contact = contacts_store.get(session, body.contact)
        if contact is None:
            raise NotFound(f"contact {body.contact!r}")
        return contacts_store.snapshot(contact)
    traits = dict(body.traits or {})
    profile = {name: traits.pop(name) for name in contacts_store.PROFILE_FIELDS if name in traits}
    contact_id = str(traits.pop("id", None) or SAMPLE_CONTACT)
    return ContactSnapshot(id=contact_id, traits=traits, **profile)


def _context(person: ContactSnapshot, body: PreviewBody, message_id: str) -> dict[str, Any]:
    # What the send activity renders with (``activities/sends.py`` ``_context``).
    return {
        "contact": person.condition_context()["contact"],
        "event": body.event,
        "data": body.data,
        # The send's link is signed for a real contact and topic; a preview defines the
        # variables (strict Liquid) and renders the link empty.
        "message": {"id": message_id, "topic": None, "unsubscribe_url": None},
    }


def _problem(part: str, exc: RenderError) -> dict[str, object]:
    """A render error as the 422 shows it: the part, the line and column in it, the variable."""
    cause = exc.__cause__
    if not isinstance(cause, LiquidError):  # a limit or a rule of ours: no place to point at
        reason = str(exc).split(": ", 1)[-1]
        return {
            "path": f"$.{part}",
            "part": part,
            "line": None,
            "column": None,
            "variable": None,
            "message": f"{part}: {reason}",
        }
    reason = str(getattr(cause, "message", None) or cause).splitlines()[0]
    line = column = None
    token = getattr(cause, "token", None)
    if token is not None and isinstance(token.source, str):
        before = token.source[: token.start_index]
        line = before.count("\n") + 1
        column = token.start_index - (before.rfind("\n") + 1) + 1
    undefined = _UNDEFINED.match(reason)
    variable = undefined.group("variable") if undefined else None
    where = f", line {line}" if line is not None else ""
    named = f", variable {variable}" if variable else ""
    return {
        "path": f"$.{part}",
        "part": part,
        "line": line,
        "column": column,
        "variable": variable,
        "message": f"{part}{where}{named}: {reason}",
    }


def _render(template: Template, context: dict[str, Any]) -> dict[str, str | None]:
    """Every part rendered, or ``Unrenderable`` listing each part that fails."""
    rendered: dict[str, str | None] = {}
    problems = []
    for part in PARTS:
        source = getattr(template, part)
        if part == "url" and template.channel not in ("webhook", "push"):
            source = None  # only a webhook posts to its URL; a push carries it as a deep link
        try:
            rendered[part] = render(None, None, source, context).text
        except RenderError as exc:
            problems.append(_problem(part, exc))
    if template.channel == "sms" and not problems and not rendered["text"]:
        problems.append(
            {
                "path": "$.text",
                "part": "text",
                "line": None,
                "column": None,
                "variable": None,
                "message": "text: an sms template needs a text (the SMS body)",
            }
        )
    if problems:
        raise Unrenderable(problems)
    return rendered


def _outgoing(
    template: Template,
    person: ContactSnapshot,
    body: PreviewBody,
    message_id: str,
    to: str | None,
    headers: Mapping[str, str] | None = None,
    devices: tuple[Device, ...] = (),
) -> OutgoingMessage:
    context = _context(person, body, message_id)
    rendered = _render(template, context)
    email = template.channel == "email"
    # A WhatsApp test goes as its content template when it has one (the tester's 24-hour
    # window is unknown), with ``data.content_variables`` rendered; else as free-form text.
    content_sid, variables = None, {}
    if template.channel == "whatsapp" and template.provider_template_id:
        content_sid = template.provider_template_id
        given = body.data.get("content_variables") or {}
        if isinstance(given, dict):
            variables = {
                str(k): render(None, None, str(v), context).text or "" for k, v in given.items()
            }
    return OutgoingMessage(
        message_id=message_id,
        channel=template.channel,
        to=to,
        subject=rendered["subject"],
        html=rendered["html"],
        text=rendered["text"],
        headers=dict(headers or {}),
        contact_id=person.id,
        url=rendered["url"],
        provider_template_id=template.provider_template_id if email else content_sid,
        context=context,
        devices=devices,
        variables=variables,
    )


def preview(
    session: Session, providers: Mapping[str, Provider], key: str, body: PreviewBody
) -> PreviewOut:
    """The template rendered for the body's contact or traits, with the headers its provider
    would add; nothing is sent or stored."""
    template = _template(session, key)
    person = _person(session, body)
    outgoing = _outgoing(template, person, body, f"preview-{uuid.uuid4().hex}", None)
    provider = providers.get(template.channel)
    return PreviewOut(
        template=key,
        channel=template.channel,
        contact_id=person.id,
        subject=outgoing.subject,
        text=outgoing.text,
        html=outgoing.html,
        url=outgoing.url,
        headers=headers_sent(provider, outgoing) if provider is not None else {},
    )


# --- test send ----------------------------------------------------------------------------


def _check_address(channel: str, to: str) -> None:
    if channel == "email" and not _EMAIL.match(to):
        raise SpecInvalid([Problem("$.to", f"{to!r} is not an email address")])
    if channel in ("sms", "whatsapp") and not _PHONE.match(to):
        raise SpecInvalid([Problem("$.to", f"{to!r} is not a phone number in +E.164 form")])
    if channel == "webhook":
        raise SpecInvalid(
            [Problem("$.to", "a webhook template posts to its own url: preview it instead")]
        )


def _prepare_test(
    db: Database, providers: Mapping[str, Provider], key: str, body: SendTestBody
) -> tuple[OutgoingMessage, Provider]:
    """Render, then write the ``test`` row (``pending``) in its own transaction."""
    with db.transaction() as session:
        template = _template(session, key)
        _check_address(template.channel, body.to)
        devices: tuple[Device, ...] = ()
        if template.channel == "push":
            # The platform decides the payload's collapse block: a registered token only.
            device = devices_store.get(session, body.to)
            if device is None:
                raise SpecInvalid(
                    [Problem("$.to", "not a registered device token (POST /v1/devices)")]
                )
            keys = (device.p256dh, device.auth) if device.p256dh and device.auth else None
            devices = (Device(device.token, device.platform, keys),)
        person = _person(session, body)
        message_id = uuid.uuid4().hex
        headers = {TEST_HEADER: "1"} if template.channel == "email" else {}
        outgoing = _outgoing(template, person, body, message_id, body.to, headers, devices)
        provider = providers[template.channel]
        message = Message(
            id=message_id,
            idempotency_key=f"test/{message_id}",
            contact_id=person.id,
            channel=template.channel,
            template=key,
            provider=provider.name,
            to_address=body.to,
            status_history=[],
            test=True,
        )
        messages_store.add(session, message)
        messages_store.add_status(message, "pending", reason="test send")
    return outgoing, provider


def _mark_sending(db: Database, outgoing: OutgoingMessage, provider: Provider) -> None:
    with db.transaction() as session:
        message = messages_store.lock(session, outgoing.message_id)
        if message is None:
            raise AlreadySettled(f"message {outgoing.message_id} has no row")
        record_content(message, outgoing, provider)
        # When it went out, for the log; frequency caps pass over it (``test``).
        message.sent_at = utcnow()
        messages_store.add_status(message, "sending")


def _settle(
    db: Database, message_id: str, status: str, provider_id: str | None, error: str | None
) -> MessageOut:
    with db.transaction() as session:
        message = messages_store.lock(session, message_id)
        assert message is not None  # written by _prepare_test
        if provider_id:
            message.provider_message_id = provider_id
        message.error = error
        extra = {"reason": error} if error else {}
        messages_store.advance(message, status, **extra)
        return MessageOut.model_validate(message, from_attributes=True)


async def send_test(
    db: Database, providers: Mapping[str, Provider], key: str, body: SendTestBody
) -> MessageOut:
    """Send the template once to ``body.to`` through the channel's provider; the row is the
    answer (``sent``), or ``ProviderRefused`` (502) after the row records the refusal."""
    outgoing, provider = await asyncio.to_thread(_prepare_test, db, providers, key, body)

    def before_call() -> None:
        _mark_sending(db, outgoing, provider)

    try:
        receipt = await provider.send(outgoing, before_call)
    except (PermanentSendError, NotAccepted, OutcomeUnknown) as exc:
        status = "unknown" if isinstance(exc, OutcomeUnknown) else "failed"
        message = await asyncio.to_thread(_settle, db, outgoing.message_id, status, None, str(exc))
        raise ProviderRefused(
            f"{provider.name} did not take test message {message.id} ({status}): {exc}"
        ) from exc
    return await asyncio.to_thread(
        _settle, db, outgoing.message_id, "sent", receipt.provider_message_id, None
    )
