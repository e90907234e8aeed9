"""Web push through pywebpush: each browser subscription gets one POST, VAPID-signed for its
push service and encrypted to its keys (the fake verifies the one and decrypts the other), next
to the contact's FCM devices behind the same ``push`` channel; each push service status does
what docs/channels.md says."""

from __future__ import annotations

from temporalio.client import Client

from temporal_journeys.activities.providers.web_push import topic
from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Device, DeviceSend
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_webpush import FakeWebPush, PushAnswer, Subscription
from tests.webpush.conftest import VAPID_SUBJECT

ANDROID = "dWebPushAndroid:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"


def browser(db: Database, contact: str, subscription: Subscription) -> None:
    """The browser registered its subscription for ``contact`` (as POST /v1/devices does)."""
    with db.transaction() as session:
        devices_store.register(
            session,
            contact,
            subscription.endpoint,
            "webpush",
            (subscription.p256dh, subscription.keys["auth"]),
        )


def contact_with(db: Database, *subscriptions: Subscription, **traits: object) -> str:
    contact = h.contact(db, **traits)
    for subscription in reversed(subscriptions):  # the first named is the newest
        browser(db, contact, subscription)
    return contact


def tokens_of(db: Database, contact: str) -> set[str]:
    with db.transaction() as session:
        return {d.token for d in session.query(Device).filter_by(contact_id=contact)}


def ledger(db: Database, message_id: str) -> dict[str, str]:
    with db.transaction() as session:
        return {
            row.token: row.outcome
            for row in session.query(DeviceSend).filter_by(message_id=message_id)
        }


async def test_a_push_reaches_the_browser_vapid_signed_and_encrypted_and_the_phone_too(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    webpush_fcm: FakeFcm,
    vapid: tuple[str, str],
):
    h.template(
        engine_db,
        "webpush-hello",
        "push",
        subject="Hi {{ contact.first_name }}",
        text="Your cart misses you",
        url="https://shop.example.test/cart/{{ event.cart_id }}",
    )
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop, first_name="Ada")
    with engine_db.transaction() as session:
        devices_store.register(session, contact, ANDROID, "android")

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-hello", webpush_queue, cart_id="c42"
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert fake_webpush.problems() == []
    [received] = fake_webpush.accepted()
    [message] = h.messages(engine_db, contact)
    # What the service worker gets, decrypted by the fake with the browser's own keys.
    assert received.json == {
        "title": "Hi Ada",
        "body": "Your cart misses you",
        "tag": message.id,
        "data": {"journeys_message_id": message.id, "link": "https://shop.example.test/cart/c42"},
    }
    # RFC 8292: signed by the operator's key for this push service's origin.
    assert received.claims is not None
    assert received.claims["aud"] == fake_webpush.url
    assert received.claims["sub"] == VAPID_SUBJECT
    assert received.headers["authorization"].startswith("vapid t=")
    assert received.headers["ttl"] == "3600"
    assert received.headers["content-encoding"] == "aes128gcm"
    # RFC 8030 Topic: an undelivered copy is replaced, not doubled.
    assert received.headers["topic"] == topic(message.id) and len(topic(message.id)) <= 32
    # The phone got it through FCM: one push step, every device of the contact.
    assert [s.token for s in webpush_fcm.accepted()] == [ANDROID]
    assert message.status == "sent" and message.provider == "fcm+webpush"
    assert ledger(engine_db, message.id) == {laptop.endpoint: "sent", ANDROID: "sent"}


async def test_404_and_410_remove_the_subscription_and_the_other_browsers_get_it(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-some", "push", text="Hello")
    revoked, expired, desktop = (fake_webpush.subscribe(vapid[1]) for _ in range(3))
    contact = contact_with(engine_db, revoked, expired, desktop)
    fake_webpush.unsubscribe(revoked)  # 410 Gone
    fake_webpush.forget(expired)  # 404

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-some", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [r.subscription_id for r in fake_webpush.accepted()] == [desktop.id]
    assert tokens_of(engine_db, contact) == {desktop.endpoint}
    [message] = h.messages(engine_db, contact)
    assert ledger(engine_db, message.id) == {
        revoked.endpoint: "removed",
        expired.endpoint: "removed",
        desktop.endpoint: "sent",
    }


async def test_when_no_subscription_is_left_the_send_fails_and_follows_on_failure(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-gone", "push", text="Hello")
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop)
    fake_webpush.unsubscribe(laptop)

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-gone", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "410" in channels.detail(view, "failed")
    assert tokens_of(engine_db, contact) == set()
    assert len(fake_webpush.received) == 1  # permanent: not retried

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-gone", webpush_queue
    )
    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "no push device registered"
    assert len(fake_webpush.received) == 1


async def test_429_retries_after_retry_after_and_only_the_browsers_not_reached(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-429", "push", text="Hello")
    laptop, phone = fake_webpush.subscribe(vapid[1]), fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop, phone)
    fake_webpush.script_for(phone, PushAnswer(429, {"Retry-After": "600"}))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-429", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [(r.subscription_id, r.accepted) for r in fake_webpush.received] == [
        (laptop.id, True),
        (phone.id, False),
        (phone.id, True),  # the retry called only the subscription not reached
    ]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 590, sent  # at Retry-After, not the 1 s backoff
    # The same message, decrypted twice to the same content: one notification (its tag).
    assert fake_webpush.received[0].json == fake_webpush.received[2].json


async def test_503_without_retry_after_is_retried_with_the_usual_backoff(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-503", "push", text="Hello")
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop)
    fake_webpush.script(PushAnswer(503), PushAnswer(502))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-503", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [r.accepted for r in fake_webpush.received] == [False, False, True]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() < 60, sent


async def test_a_500_is_an_unknown_outcome_and_that_browser_is_not_called_again(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-500", "push", text="Hello")
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop)
    fake_webpush.script(PushAnswer(500, accept=True))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-500", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert "outcome unknown" in channels.detail(view, "sent")
    assert len(fake_webpush.received) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "unknown"
    assert ledger(engine_db, message.id) == {laptop.endpoint: "unknown"}


async def test_a_subscription_made_for_another_vapid_key_is_refused_and_kept(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    # Subscribed before the operator rotated the VAPID keys: the push service refuses our
    # JWT for it (403). The subscription is kept (a new key needs a new subscribe in the
    # page, not a deletion), and with no other device the message fails.
    from tests.support.fake_webpush import vapid_keys

    h.template(engine_db, "webpush-403", "push", text="Hello")
    old = fake_webpush.subscribe(vapid_keys()[1])
    contact = contact_with(engine_db, old)

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-403", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "403" in channels.detail(view, "failed")
    assert fake_webpush.problems() == ["k is not the key the subscription was made with"]
    assert tokens_of(engine_db, contact) == {old.endpoint}


async def test_a_payload_over_the_push_services_limit_fails_without_a_call(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    vapid: tuple[str, str],
):
    h.template(engine_db, "webpush-big", "push", text="x" * 5000)
    contact = contact_with(engine_db, fake_webpush.subscribe(vapid[1]))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-big", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "push services take 3993" in channels.detail(view, "failed")
    assert fake_webpush.received == []


async def test_without_vapid_keys_a_browser_subscription_is_refused_and_the_phone_gets_it(
    client: Client,
    time_env,
    engine_db: Database,
    webpush_settings: Settings,
    fake_webpush: FakeWebPush,
    webpush_fcm: FakeFcm,
    vapid: tuple[str, str],
):
    settings = webpush_settings.model_copy(update={"vapid_private_key": None})
    h.template(engine_db, "webpush-novapid", "push", text="Hello")
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop)
    with engine_db.transaction() as session:
        devices_store.register(session, contact, ANDROID + "-novapid", "android")

    async with channels.channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_send(
            client, engine_db, contact, "push", "webpush-novapid", queue
        )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert fake_webpush.received == []
    assert [s.token for s in webpush_fcm.accepted()] == [ANDROID + "-novapid"]
    [message] = h.messages(engine_db, contact)
    assert message.provider == "fcm"
    assert ledger(engine_db, message.id) == {
        laptop.endpoint: "refused",
        ANDROID + "-novapid": "sent",
    }


async def test_a_rate_limited_browser_is_retried_without_sending_the_phone_a_second_copy(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    webpush_fcm: FakeFcm,
    vapid: tuple[str, str],
):
    # The phone (FCM) takes it on the first attempt, the browser's push service says 429: the
    # retry after Retry-After calls the browser only.
    h.template(engine_db, "webpush-mixed", "push", text="Hello")
    laptop = fake_webpush.subscribe(vapid[1])
    contact = contact_with(engine_db, laptop)
    with engine_db.transaction() as session:
        devices_store.register(session, contact, ANDROID + "-mixed", "android")
    fake_webpush.script_for(laptop, PushAnswer(429, {"Retry-After": "300"}))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "webpush-mixed", webpush_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [s.token for s in webpush_fcm.sends] == [ANDROID + "-mixed"]
    assert [r.accepted for r in fake_webpush.received] == [False, True]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 290, sent
    [message] = h.messages(engine_db, contact)
    assert message.provider_message_id == webpush_fcm.sends[0].answer.body["name"]
    assert ledger(engine_db, message.id) == {laptop.endpoint: "sent", ANDROID + "-mixed": "sent"}
