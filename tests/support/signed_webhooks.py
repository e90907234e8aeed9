"""Sign delivery webhooks as SendGrid and Twilio do, for tests and the fake provider server.

``SendGridSigner`` holds a fresh ECDSA P-256 key pair: give the API its public key
(``public_key_b64``, base64 DER as the SendGrid dashboard shows it, or ``public_key_pem``) and
post bodies with ``signer.headers(body)``. Twilio signatures come from the SDK's own
``RequestValidator.compute_signature`` over the public URL and the form fields."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from fastapi import FastAPI
from sqlalchemy import select
from temporalio.client import Client, WorkflowHandle
from twilio.request_validator import RequestValidator

from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event, Message
from tests.support import harness as h

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"
TWILIO_SIGNATURE = "X-Twilio-Signature"
TWILIO_AUTH_TOKEN = "twilio-test-auth-token"
PUBLIC_URL = "https://journeys.example.com"  # what Twilio calls; the test client uses another


class SendGridSigner:
    def __init__(self) -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        public = self._key.public_key()
        der = public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.public_key_b64 = base64.b64encode(der).decode()
        self.public_key_pem = public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()

    def signature(self, body: bytes, timestamp: int) -> str:
        signed = str(timestamp).encode() + body
        return base64.b64encode(self._key.sign(signed, ec.ECDSA(hashes.SHA256()))).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        """Headers SendGrid sends with ``body``, signed at ``timestamp`` (default: now)."""
        moment = int(time.time()) if timestamp is None else timestamp
        return {
            "Content-Type": "application/json",
            SENDGRID_SIGNATURE: self.signature(body, moment),
            SENDGRID_TIMESTAMP: str(moment),
        }


def sendgrid_event(
    event: str,
    message_id: str | None,
    *,
    provider_message_id: str | None = None,
    email: str = "someone@example.com",
    **fields: Any,
) -> dict[str, Any]:
    """One Event Webhook object as SendGrid posts it; custom args sit at the top level."""
    body: dict[str, Any] = {
        "email": email,
        "timestamp": int(time.time()),
        "event": event,
        "sg_event_id": uuid.uuid4().hex,
        "sg_message_id": f"{provider_message_id or uuid.uuid4().hex[:22]}.filterdrecv-1-0.0",
        "smtp-id": f"<{uuid.uuid4().hex}@example.com>",
        **fields,
    }
    if message_id is not None:
        body["journeys_message_id"] = message_id
    return body


def sendgrid_body(events: list[dict[str, Any]]) -> bytes:
    return json.dumps(events).encode()


def twilio_signature(url: str, params: Mapping[str, str], token: str = TWILIO_AUTH_TOKEN) -> str:
    # A starlette MultiDict carries repeated fields (MediaUrl0...) as Twilio signs them.
    return RequestValidator(token).compute_signature(url, params)


def twilio_request(
    path: str,
    params: Mapping[str, str],
    token: str = TWILIO_AUTH_TOKEN,
    public_url: str = PUBLIC_URL,
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a Twilio webhook to ``path`` (with its query string), signed for
    the public URL ``public_url + path`` as Twilio signs the URL it was configured with."""
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        TWILIO_SIGNATURE: twilio_signature(public_url + path, params, token),
    }
    return urlencode(dict(params)).encode(), headers


def configure(app: FastAPI, signer: SendGridSigner) -> None:
    """Point an app's settings at this signer and the test Twilio token and public URL."""
    app.state.settings = app.state.settings.model_copy(
        update={
            "sendgrid_webhook_public_key": signer.public_key_b64,
            "twilio_auth_token": TWILIO_AUTH_TOKEN,
            "public_url": PUBLIC_URL,
        }
    )


def sent_message(db: Database, contact_id: str, channel: str = "email", **columns: Any) -> Message:
    """A message row as the send activity leaves it after the provider accepted it."""
    message_id = "msg_" + uuid.uuid4().hex[:24]
    with db.transaction() as session:
        contact = contacts_store.get_or_create(session, contact_id)
        message = Message(
            id=message_id,
            idempotency_key=f"test/{message_id}",
            contact_id=contact_id,
            journey_key=columns.pop("journey_key", "webhook-test"),
            step_id=columns.pop("step_id", "hello"),
            channel=channel,
            template="hello",
            provider="sendgrid" if channel == "email" else "twilio",
            to_address=contact.email if channel == "email" else contact.phone,
            provider_message_id=columns.pop("provider_message_id", uuid.uuid4().hex[:22]),
            status_history=[],
            **columns,
        )
        messages_store.add_status(message, "pending")
        messages_store.add_status(message, "sent")
        session.add(message)
    return message


def stored_events(db: Database, contact_id: str) -> list[Event]:
    with db.transaction() as session:
        query = select(Event).where(Event.contact_id == contact_id).order_by(Event.id)
        return list(session.scalars(query))


def reload(db: Database, model: type[Any], key: Any) -> Any:
    with db.transaction() as session:
        return session.get(model, key)


def suppression(db: Database, channel: str, address: str) -> str | None:
    with db.transaction() as session:
        return messages_store.is_suppressed(session, channel, address)


async def start_journey(
    client: Client, db: Database, steps: list[dict[str, Any]], contact_id: str | None = None
) -> tuple[WorkflowHandle, str]:
    """Publish a journey of ``steps`` (templates ``hook-email`` and ``hook-sms`` exist) and
    start a run for a contact with an email and a phone, on the test worker whose console
    provider sends."""
    h.template(db, "hook-email", "email", subject="Hello {{ contact.first_name }}", text="Hi")
    h.template(db, "hook-sms", "sms", text="Hi {{ contact.first_name }}")
    key = h.unique("hooks")
    version, journey = h.publish(
        db, {"key": key, "name": key, "trigger": {"event": f"{key}.started"}, "steps": steps}
    )
    contact_id = contact_id or h.contact(
        db, phone=f"+1555{uuid.uuid4().int % 10**7:07d}", first_name="Ada"
    )
    return await h.start(client, journey, version, contact_id), contact_id


async def sent(db: Database, contact_id: str, count: int = 1) -> list[Message]:
    """The contact's messages once ``count`` of them have left the pending state."""

    def done() -> bool:
        return sum(m.status != "pending" for m in h.messages(db, contact_id)) >= count

    await h.wait_until(done, f"{count} message(s) to {contact_id}")
    return h.messages(db, contact_id)
