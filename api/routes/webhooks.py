"""Delivery webhooks. No API key: each request is authenticated by the provider's signature."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response

from temporal_journeys.activities.providers import sendgrid_email, twilio_sms, webhook_receipts
from temporal_journeys.activities.providers.reports import Malformed, Refused
from temporal_journeys.api.deps import DbDep, RelayDep, SettingsDep
from temporal_journeys.api.services import deliveries
from temporal_journeys.api.services.deliveries import Applied
from temporal_journeys.api.services.relay import OutboxRelay

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


async def _raw_body(request: Request) -> bytes:
    # Signatures cover the exact bytes, so the body is read raw, never re-serialised.
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def _signed_by_sendgrid(request: Request, settings: SettingsDep, body: RawBody) -> bytes:
    try:
        sendgrid_email.verify_signature(
            settings,
            request.headers.get(sendgrid_email.SIGNATURE_HEADER),
            request.headers.get(sendgrid_email.TIMESTAMP_HEADER),
            body,
            datetime.now(UTC),
        )
    except Refused as exc:
        raise HTTPException(401, str(exc)) from exc
    return body


def _signed_by_twilio(request: Request, settings: SettingsDep, body: RawBody) -> twilio_sms.Form:
    url = twilio_sms.signed_url(settings, request.url.path, request.url.query)
    try:
        return twilio_sms.verify_signature(
            settings,
            request.headers.get(twilio_sms.SIGNATURE_HEADER),
            url,
            body,
            request.headers.get("content-type"),
        )
    except Refused as exc:
        raise HTTPException(401, str(exc)) from exc
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc


def _signed_by_gateway(request: Request, settings: SettingsDep, body: RawBody) -> bytes:
    try:
        webhook_receipts.verify_signature(
            settings,
            request.headers.get(webhook_receipts.SIGNATURE_HEADER),
            body,
            datetime.now(UTC).timestamp(),
        )
    except Refused as exc:
        raise HTTPException(401, str(exc)) from exc
    return body


SendGridBody = Annotated[bytes, Depends(_signed_by_sendgrid)]
GatewayBody = Annotated[bytes, Depends(_signed_by_gateway)]
TwilioForm = Annotated[twilio_sms.Form, Depends(_signed_by_twilio)]


def _done(relay: OutboxRelay, result: Applied) -> Applied:
    if result.recorded:
        relay.wake()
    return result


@router.post("/sendgrid")
def sendgrid(db: DbDep, relay: RelayDep, body: SendGridBody) -> Applied:
    """SendGrid Signed Event Webhook: delivery and engagement events for sent emails."""
    now = datetime.now(UTC)
    try:
        events = sendgrid_email.parse_events(body, now)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_sendgrid(session, events, now)
    return _done(relay, result)


@router.post("/twilio/status", status_code=204)
def twilio_status(
    db: DbDep, relay: RelayDep, params: TwilioForm, message_id: str | None = None
) -> Response:
    """Twilio SMS status callback (the URL carries ``?message_id=``)."""
    try:
        update = twilio_sms.parse_status(params, message_id)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_twilio_status(session, update, datetime.now(UTC))
    _done(relay, result)
    return Response(status_code=204)


@router.post("/twilio/whatsapp/status", status_code=204)
def twilio_whatsapp_status(
    db: DbDep, relay: RelayDep, params: TwilioForm, message_id: str | None = None
) -> Response:
    """Twilio WhatsApp status callback (sent, delivered, read, failed; ``?message_id=``)."""
    try:
        update = twilio_sms.parse_status(params, message_id)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_twilio_status(session, update, datetime.now(UTC), "whatsapp")
    _done(relay, result)
    return Response(status_code=204)


@router.post("/gateway")
def gateway(db: DbDep, relay: RelayDep, body: GatewayBody) -> Applied:
    """A delivery receipt from a gateway the webhook channel posts to (WeChat and the like),
    signed with the webhook signing secret: delivered, read or failed."""
    try:
        receipt = webhook_receipts.parse_receipt(body)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_gateway(session, receipt, datetime.now(UTC))
    return _done(relay, result)


@router.post("/twilio/inbound")
def twilio_inbound(db: DbDep, relay: RelayDep, params: TwilioForm) -> Response:
    """Twilio inbound SMS and WhatsApp messages: STOP / START keywords and ``sms.inbound`` /
    ``whatsapp.inbound`` events; empty TwiML."""
    try:
        inbound = twilio_sms.parse_inbound(params)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_twilio_inbound(session, inbound, datetime.now(UTC))
    _done(relay, result)
    return Response(twilio_sms.EMPTY_TWIML, media_type="text/xml")
