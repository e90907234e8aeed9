"""SendGrid's Signed Event Webhook: verified, deduplicated, forward-only, routed to runs."""

from __future__ import annotations

import json
import time

import pytest
from sqlalchemy import func, select
from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, DeliveryReceipt, Event, Message
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api
from tests.support.signed_webhooks import SendGridSigner


@pytest.fixture
def signer(api: Api) -> SendGridSigner:
    signer = SendGridSigner()
    sw.configure(api.app, signer)
    return signer


async def post(api: Api, signer: SendGridSigner, events: list[dict], **options):
    body = sw.sendgrid_body(events)
    return await api.http.post(
        "/v1/webhooks/sendgrid", content=body, headers=signer.headers(body, **options)
    )


def receipts(db: Database) -> int:
    with db.transaction() as session:
        return session.scalar(select(func.count()).select_from(DeliveryReceipt)) or 0


OPENED = [
    {"id": "hello", "send": {"channel": "email", "template": "hook-email"}},
    {
        "id": "opened?",
        "wait_for": {"event": "email.opened", "message": "hello", "timeout": "P1D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["opened"]}},
    {"id": "done", "exit": {}},
]


async def test_a_signed_open_releases_the_run_waiting_for_it(
    api: Api, client: Client, engine_db: Database, signer: SendGridSigner
):
    handle, contact_id = await sw.start_journey(client, engine_db, OPENED)
    [message] = await sw.sent(engine_db, contact_id)
    await h.wait_until(lambda: _waiting(engine_db, handle.id), "the wait_for step")

    opened = sw.sendgrid_event(
        "open", message.id, provider_message_id=message.provider_message_id, sg_machine_open=False
    )
    response = await post(api, signer, [opened])
    assert response.status_code == 200, response.text
    assert response.json() == {"applied": 1, "duplicates": 0, "ignored": 0, "recorded": 1}
    assert await api.relay() >= 1
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert [entry.step for entry in h.at(view, "event")] == ["opened?"]
    assert sw.reload(engine_db, Contact, contact_id).tags == ["opened"]
    assert sw.reload(engine_db, Message, message.id).status == "opened"
    [event] = [e for e in sw.stored_events(engine_db, contact_id) if e.name == "email.opened"]
    assert event.message_id == f"sendgrid:{opened['sg_event_id']}"
    assert event.properties["message_id"] == message.id
    assert event.properties["journey"] == message.journey_key
    assert event.properties["step"] == "hello"
    assert event.properties["machine_open"] is False
    listed = await api.http.get(f"/v1/messages?contact={contact_id}", headers=api.admin)
    assert [m["status"] for m in listed.json()] == ["opened"]


def _waiting(db: Database, workflow_id: str) -> bool:
    from temporal_journeys.store.models import Enrollment

    with db.transaction() as session:
        row = session.scalars(
            select(Enrollment).where(Enrollment.workflow_id == workflow_id)
        ).first()
        return row is not None and row.current_step == "opened?"


async def test_a_forged_signature_is_refused_and_changes_nothing(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    events = [sw.sendgrid_event("open", message.id)]
    before = receipts(engine_db)

    forged = await post(api, SendGridSigner(), events)  # another key pair
    body = sw.sendgrid_body(events)
    tampered = await api.http.post(
        "/v1/webhooks/sendgrid",
        content=body.replace(b'"open"', b'"click"'),
        headers=signer.headers(body),
    )
    unsigned = await api.http.post("/v1/webhooks/sendgrid", content=body)
    garbage = await api.http.post(
        "/v1/webhooks/sendgrid",
        content=body,
        headers={sw.SENDGRID_SIGNATURE: "%%%", sw.SENDGRID_TIMESTAMP: str(int(time.time()))},
    )

    for response in (forged, tampered, garbage):
        assert response.status_code == 401, response.text
        assert "signature does not match" in response.json()["detail"]
    assert unsigned.status_code == 401
    assert "headers are required" in unsigned.json()["detail"]
    assert sw.reload(engine_db, Message, message.id).status == "sent"
    assert receipts(engine_db) == before
    assert sw.stored_events(engine_db, message.contact_id) == []


@pytest.mark.parametrize("age", [-400, 301, 86_400])
async def test_a_timestamp_outside_the_window_is_refused(
    api: Api, engine_db: Database, signer: SendGridSigner, age: int
):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    events = [sw.sendgrid_event("delivered", message.id)]

    response = await post(api, signer, events, timestamp=int(time.time()) - age)

    assert response.status_code == 401
    assert "more than 300 s from now" in response.json()["detail"]
    assert sw.reload(engine_db, Message, message.id).status == "sent"


async def test_an_unconfigured_webhook_accepts_nothing(api: Api, engine_db: Database):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    body = sw.sendgrid_body([sw.sendgrid_event("delivered", message.id)])

    response = await api.http.post(
        "/v1/webhooks/sendgrid", content=body, headers=SendGridSigner().headers(body)
    )

    assert response.status_code == 401
    assert "JOURNEYS_SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["detail"]
    assert sw.reload(engine_db, Message, message.id).status == "sent"


async def test_a_pem_public_key_is_accepted_too(api: Api, engine_db: Database):
    signer = SendGridSigner()
    api.app.state.settings = api.app.state.settings.model_copy(
        update={"sendgrid_webhook_public_key": signer.public_key_pem}
    )
    message = sw.sent_message(engine_db, h.contact(engine_db))

    response = await post(api, signer, [sw.sendgrid_event("delivered", message.id)])

    assert response.status_code == 200, response.text
    assert sw.reload(engine_db, Message, message.id).status == "delivered"


async def test_a_repeated_sg_event_id_is_applied_once(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    click = sw.sendgrid_event("click", message.id, url="https://shop.example.com/cart")

    first = await post(api, signer, [click])
    again = await post(api, signer, [click, click])  # SendGrid retries, and may batch twice

    assert first.json()["applied"] == 1
    assert again.json() == {"applied": 0, "duplicates": 2, "ignored": 0, "recorded": 0}
    stored = sw.reload(engine_db, Message, message.id)
    assert [s["status"] for s in stored.status_history] == ["pending", "sent", "clicked"]
    [event] = sw.stored_events(engine_db, message.contact_id)
    assert event.name == "email.clicked"
    assert event.properties["url"] == "https://shop.example.com/cart"


async def test_late_events_never_move_a_message_backwards(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    click, delivered, processed = (
        sw.sendgrid_event(kind, message.id) for kind in ("click", "delivered", "processed")
    )

    response = await post(api, signer, [click, delivered, processed])

    assert response.json() == {"applied": 3, "duplicates": 0, "ignored": 0, "recorded": 2}
    assert sw.reload(engine_db, Message, message.id).status == "clicked"
    names = [e.name for e in sw.stored_events(engine_db, message.contact_id)]
    assert names == ["email.clicked", "email.delivered"]  # journeys still hear of both


async def test_an_event_without_our_id_is_matched_by_the_provider_message_id(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db), provider_message_id="abcXYZ123")
    delivered = sw.sendgrid_event("delivered", None, provider_message_id="abcXYZ123")

    response = await post(api, signer, [delivered])

    assert response.json()["applied"] == 1
    assert sw.reload(engine_db, Message, message.id).status == "delivered"


MALFORMED = [
    b"not json at all",
    b'{"event": "open", "sg_event_id": "x"}',
    b"[1, 2]",
    b'[{"event": "open"}]',
    b'[{"sg_event_id": "only-an-id"}]',
    b'[{"event": "open", "sg_event_id": "ok", "timestamp": "yesterday"}]',
    b'[{"event": "open", "sg_event_id": "ok", "timestamp": 1e300}]',
    b'[{"event": "open", "sg_event_id": "ok", "journeys_message_id": 7}]',
]


@pytest.mark.parametrize("body", MALFORMED)
async def test_a_malformed_body_is_400_and_stores_nothing(
    api: Api, engine_db: Database, signer: SendGridSigner, body: bytes
):
    before = receipts(engine_db)

    response = await api.http.post(
        "/v1/webhooks/sendgrid", content=body, headers=signer.headers(body)
    )

    assert response.status_code == 400, response.text
    assert response.json()["detail"]
    assert receipts(engine_db) == before


async def test_one_bad_event_keeps_the_whole_delivery_out(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db))
    good = sw.sendgrid_event("delivered", message.id)
    body = json.dumps([good, {"event": "open"}]).encode()

    response = await api.http.post(
        "/v1/webhooks/sendgrid", content=body, headers=signer.headers(body)
    )

    assert response.status_code == 400
    assert "event 1: `sg_event_id`" in response.json()["detail"]
    assert sw.reload(engine_db, Message, message.id).status == "sent"


async def test_account_events_and_unknown_messages_are_ignored(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    stranger = sw.sendgrid_event("delivered", "msg_not_ours", email="stranger@example.com")
    account = {"event": "account_status_change", "sg_event_id": "acct-1", "type": "suspended"}
    gone = f"{h.unique('erased')}@example.com"
    bounce = sw.sendgrid_event("bounce", "msg_erased", email=gone, type="bounce")

    response = await post(api, signer, [stranger, account, bounce])

    assert response.json() == {"applied": 0, "duplicates": 0, "ignored": 3, "recorded": 0}
    with engine_db.transaction() as session:
        keys = [f"sendgrid:{e['sg_event_id']}" for e in (stranger, account, bounce)]
        assert session.scalar(select(func.count()).where(Event.message_id.in_(keys))) == 0
    # No message (sent elsewhere, or its contact erased), but the address is known bad.
    assert sw.suppression(engine_db, "email", gone) == "bounced"


BOUNCED = [
    {"id": "first", "send": {"channel": "email", "template": "hook-email"}},
    {
        "id": "bounced?",
        "wait_for": {"event": "email.bounced", "message": "first", "timeout": "P1D"},
        "on_timeout": "second",
        "next": "second",
    },
    {"id": "second", "send": {"channel": "email", "template": "hook-email"}},
]


async def test_a_hard_bounce_suppresses_the_address_and_the_next_send_is_skipped(
    api: Api, client: Client, engine_db: Database, signer: SendGridSigner
):
    handle, contact_id = await sw.start_journey(client, engine_db, BOUNCED)
    [first] = await sw.sent(engine_db, contact_id)
    bounce = sw.sendgrid_event(
        "bounce", first.id, type="bounce", reason="550 5.1.1 no such user", email=first.to_address
    )

    response = await post(api, signer, [bounce])
    assert response.status_code == 200
    await api.relay()
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert [e.step for e in h.at(view, "event")] == ["bounced?"]
    assert sw.suppression(engine_db, "email", first.to_address) == "bounced"
    first, second = h.messages(engine_db, contact_id)
    assert first.status == "bounced"
    assert (second.status, second.error) == ("skipped", "suppressed: bounced")
    [skipped] = h.at(view, "skipped")
    assert (skipped.step, skipped.detail) == ("second", "suppressed: bounced")
    [event] = [e for e in sw.stored_events(engine_db, contact_id) if e.name == "email.bounced"]
    assert event.properties["bounce_type"] == "bounce"
    assert event.properties["reason"] == "550 5.1.1 no such user"


async def test_a_blocked_bounce_is_undelivered_without_suppression(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    message = sw.sent_message(engine_db, h.contact(engine_db))

    await post(api, signer, [sw.sendgrid_event("bounce", message.id, type="blocked")])

    assert sw.reload(engine_db, Message, message.id).status == "undelivered"
    assert sw.suppression(engine_db, "email", message.to_address) is None
    [event] = sw.stored_events(engine_db, message.contact_id)
    assert (event.name, event.properties["bounce_type"]) == ("email.bounced", "blocked")


async def test_unsubscribe_and_spam_reports_opt_the_contact_out(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    unsubscriber = sw.sent_message(engine_db, h.contact(engine_db))
    complainer = sw.sent_message(engine_db, h.contact(engine_db))

    response = await post(
        api,
        signer,
        [
            sw.sendgrid_event("group_unsubscribe", unsubscriber.id, asm_group_id=42),
            sw.sendgrid_event("spamreport", complainer.id),
        ],
    )

    assert response.json()["recorded"] == 2
    contact = sw.reload(engine_db, Contact, unsubscriber.contact_id)
    assert contact.unsubscribed == ["email"]
    assert sw.suppression(engine_db, "email", unsubscriber.to_address) == "unsubscribed"
    assert sw.suppression(engine_db, "email", complainer.to_address) == "spamreport"
    assert sw.reload(engine_db, Message, complainer.id).status == "spamreport"
    [event] = sw.stored_events(engine_db, unsubscriber.contact_id)
    assert (event.name, event.properties["asm_group_id"]) == ("email.unsubscribed", 42)


async def test_the_message_list_filters_on_delivery_states(
    api: Api, engine_db: Database, signer: SendGridSigner
):
    contact_id = h.contact(engine_db)
    opened = sw.sent_message(engine_db, contact_id)
    sw.sent_message(engine_db, contact_id)
    await post(api, signer, [sw.sendgrid_event("open", opened.id)])

    listed = await api.http.get(
        f"/v1/messages?contact={contact_id}&status=opened", headers=api.admin
    )
    unknown = await api.http.get("/v1/messages?status=read", headers=api.admin)

    assert [m["id"] for m in listed.json()] == [opened.id]
    assert unknown.status_code == 422
    assert "unknown status 'read'" in unknown.json()["detail"]
