"""Delivery webhooks. No API key: each request is authenticated by the provider's signature."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response
from starlette.datastructures import ImmutableMultiDict

from api.deps import DbDep
from api.services import deliveries
from api.services.deliveries import Applied, Malformed, Refused

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])

Form = ImmutableMultiDict[str, str]


async def _raw_body(request: Request) -> bytes:
    # Signatures cover the exact bytes, so the body is read raw, never re-serialised.
    return await request.body()


RawBody = Annotated[bytes, Depends(_raw_body)]


def _refused(exc: Refused) -> HTTPException:
    return HTTPException(401, str(exc))


def _signed_by_sendgrid(request: Request, body: RawBody) -> bytes:
    try:
        deliveries.verify_sendgrid(
            request.app.state.settings,
            request.headers.get(deliveries.SENDGRID_SIGNATURE),
            request.headers.get(deliveries.SENDGRID_TIMESTAMP),
            body,
            datetime.now(UTC),
        )
    except Refused as exc:
        raise _refused(exc) from exc
    return body


def _signed_by_twilio(request: Request, body: RawBody) -> Form:
    settings = request.app.state.settings
    url = deliveries.public_url(settings, request.url.path, request.url.query)
    try:
        return deliveries.verify_twilio(
            settings,
            request.headers.get(deliveries.TWILIO_SIGNATURE),
            url,
            body,
            request.headers.get("content-type"),
        )
    except Refused as exc:
        raise _refused(exc) from exc
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc


def _done(request: Request, result: Applied) -> Applied:
    if result.recorded:
        request.app.state.relay.wake()
    return result


@router.post("/sendgrid")
def sendgrid(
    request: Request, db: DbDep, body: Annotated[bytes, Depends(_signed_by_sendgrid)]
) -> Applied:
    """SendGrid Signed Event Webhook: delivery and engagement events for sent emails."""
    now = datetime.now(UTC)
    try:
        events = deliveries.parse_sendgrid(body, now)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_sendgrid(session, events, now)
    return _done(request, result)


@router.post("/twilio/status", status_code=204)
def twilio_status(
    request: Request,
    db: DbDep,
    params: Annotated[Form, Depends(_signed_by_twilio)],
    message_id: str | None = None,
) -> Response:
    """Twilio SMS status callback (the URL carries ``?message_id=``)."""
    try:
        update = deliveries.parse_twilio_status(params, message_id)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_twilio_status(session, update, datetime.now(UTC))
    _done(request, result)
    return Response(status_code=204)


@router.post("/twilio/inbound")
def twilio_inbound(
    request: Request, db: DbDep, params: Annotated[Form, Depends(_signed_by_twilio)]
) -> Response:
    """Twilio inbound SMS: STOP / START keywords and ``sms.inbound`` events; empty TwiML."""
    try:
        inbound = deliveries.parse_twilio_inbound(params)
    except Malformed as exc:
        raise HTTPException(400, str(exc)) from exc
    with db.transaction() as session:
        result = deliveries.apply_twilio_inbound(session, inbound, datetime.now(UTC))
    _done(request, result)
    return Response(deliveries.EMPTY_TWIML, media_type="text/xml")
