"""Push through FCM's HTTP v1 API: google-auth gets an OAuth2 token from the fake's token
endpoint with the service account's signed JWT, each device gets one ``messages:send`` with
that bearer token, and each FCM error class does what docs/channels.md says."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.settings import Settings
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Device, DeviceSend
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_fcm import CLIENT_EMAIL, PROJECT, SCOPE, FakeFcm, fcm_error

ANDROID = "dAndroid0:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
IPHONE = "fIphone000:APA91bFoi3lMMre9G3XzR1LrF4ZT82_15MsM"
TABLET = "cTablet000:APA91bGkQZ8H2_3w7JGv0u0QnW1zSRT-Wx9Q"


def push_contact(db: Database, *devices: tuple[str, str], **traits: object) -> str:
    """A contact with these (token, platform) devices, the first the most recently used."""
    contact = h.contact(db, **traits)
    # Registered oldest first, so of_contact (newest first) gives them in the order named.
    for token, platform in reversed(devices):
        with db.transaction() as session:
            devices_store.register(session, contact, token, platform)
    return contact


def tokens_of(db: Database, contact: str) -> set[str]:
    with db.transaction() as session:
        return {d.token for d in session.query(Device).filter_by(contact_id=contact)}


def ledger(db: Database, message_id: str) -> dict[str, str]:
    with db.transaction() as session:
        rows = session.query(DeviceSend).filter_by(message_id=message_id)
        return {row.token: row.outcome for row in rows}


async def test_a_push_goes_to_each_device_with_the_service_accounts_oauth_token(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(
        engine_db,
        "push-hello",
        "push",
        subject="Hi {{ contact.first_name }}",
        text="Your cart misses you",
        url="app://cart/{{ event.cart_id }}",
    )
    contact = push_contact(engine_db, (ANDROID, "android"), (IPHONE, "ios"), first_name="Ada")

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-hello", push_queue, cart_id="c42"
    )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "sent")]
    [message] = h.messages(engine_db, contact)
    assert message.status == "sent" and message.provider == "fcm"
    sends = fake_fcm.accepted()
    assert [s.token for s in sends] == [ANDROID, IPHONE]
    # The access token came from the fake's token endpoint, for a JWT signed with the file's
    # key, issued by the service account, for the FCM scope; and every send carried it.
    [grant] = [t for t in fake_fcm.token_requests if "claims" in t]
    assert grant["claims"]["iss"] == CLIENT_EMAIL
    assert SCOPE in grant["claims"]["scope"].split()
    assert {s.headers["Authorization"] for s in sends} == {f"Bearer {grant['access_token']}"}
    assert {s.path for s in sends} == {f"/v1/projects/{PROJECT}/messages:send"}
    android, iphone = (s.message for s in sends)
    assert android["notification"] == {"title": "Hi Ada", "body": "Your cart misses you"}
    assert android["data"] == {"journeys_message_id": message.id, "link": "app://cart/c42"}
    # The message id is the platform's "same notification" key, so a repeat replaces.
    assert android["android"] == {
        "collapse_key": message.id,
        "notification": {"tag": message.id},
    }
    assert iphone["apns"] == {"headers": {"apns-collapse-id": message.id}}
    assert "apns" not in android and "android" not in iphone
    assert message.provider_message_id == sends[0].answer.body["name"]
    assert ledger(engine_db, message.id) == {ANDROID: "sent", IPHONE: "sent"}


async def test_unregistered_and_invalid_tokens_are_removed_and_the_other_devices_get_it(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-some", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"), (IPHONE, "ios"), (TABLET, "android"))
    fake_fcm.unregister(ANDROID)
    fake_fcm.script_for(
        IPHONE,
        fcm_error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            token_field=True,
        ),
    )

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-some", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [s.token for s in fake_fcm.accepted()] == [TABLET]
    assert tokens_of(engine_db, contact) == {TABLET}
    [message] = h.messages(engine_db, contact)
    assert ledger(engine_db, message.id) == {
        ANDROID: "removed",
        IPHONE: "removed",
        TABLET: "sent",
    }


async def test_when_no_token_is_left_the_send_fails_and_follows_on_failure(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-gone", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))
    fake_fcm.unregister(ANDROID)

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-gone", push_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "UNREGISTERED" in channels.detail(view, "failed")
    assert tokens_of(engine_db, contact) == set()
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed"
    assert len(fake_fcm.sends) == 1  # permanent: not retried

    # The next push to this contact is skipped before any call: no device is left.
    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-gone", push_queue
    )
    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "no push device registered"
    assert len(fake_fcm.sends) == 1


async def test_quota_exceeded_retries_after_retry_after_and_only_the_devices_not_reached(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-quota", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"), (IPHONE, "ios"))
    fake_fcm.script_for(
        IPHONE,
        fcm_error(429, "QUOTA_EXCEEDED", "Quota exceeded.", headers={"Retry-After": "600"}),
    )

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-quota", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [(s.token, s.accepted) for s in fake_fcm.sends] == [
        (ANDROID, True),
        (IPHONE, False),
        (IPHONE, True),  # the retry called only the device the first attempt did not reach
    ]
    [sent] = h.offsets(view, "sent")
    assert sent.total_seconds() >= 590, sent  # at Retry-After, not the 1 s backoff


async def test_unavailable_retries_after_retry_after(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-503", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))
    fake_fcm.script(
        fcm_error(503, "UNAVAILABLE", "The service is unavailable.", headers={"Retry-After": "120"})
    )

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-503", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [s.accepted for s in fake_fcm.sends] == [False, True]
    [sent] = h.offsets(view, "sent")
    assert 110 <= sent.total_seconds() < 300, sent


async def test_internal_error_is_an_unknown_outcome_and_that_device_is_not_called_again(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-500", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))
    fake_fcm.script(fcm_error(500, "INTERNAL", "Internal error.", accept=True))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-500", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert "outcome unknown" in channels.detail(view, "sent")
    assert len(fake_fcm.sends) == 1
    [message] = h.messages(engine_db, contact)
    assert message.status == "unknown"
    assert ledger(engine_db, message.id) == {ANDROID: "unknown"}


async def test_a_payload_fcm_refuses_fails_permanently_without_removing_the_token(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-400", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))
    fake_fcm.script(fcm_error(400, "INVALID_ARGUMENT", "Message is too big."))

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-400", push_queue
    )

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "Message is too big" in channels.detail(view, "failed")
    assert tokens_of(engine_db, contact) == {ANDROID}
    assert len(fake_fcm.sends) == 1


async def test_a_revoked_access_token_is_replaced_once_and_the_send_goes_on(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-401", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))
    await channels.run_send(client, engine_db, contact, "push", "push-401", push_queue)
    held = fake_fcm.sends[-1].access_token  # the worker's cached access token
    fake_fcm.revoke_access_tokens()

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-401", push_queue
    )

    assert channels.step_kinds(view) == [("send", "sent")]
    assert [(s.answer.status, s.access_token == held) for s in fake_fcm.sends] == [
        (200, True),
        (401, True),  # refused: a new token is fetched and the call made once more
        (200, False),
    ]
    assert fake_fcm.sends[-1].access_token == fake_fcm.token_requests[-1]["access_token"]


async def test_a_contact_without_a_device_is_skipped(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm
):
    h.template(engine_db, "push-none", "push", text="Hello")
    contact = h.contact(engine_db)

    result, view = await channels.run_send(
        client, engine_db, contact, "push", "push-none", push_queue
    )

    assert channels.step_kinds(view) == [("send", "skipped")]
    assert channels.detail(view, "skipped") == "no push device registered"
    assert fake_fcm.sends == []


async def test_a_service_account_the_token_endpoint_refuses_fails_permanently(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    push_settings: Settings,
    fake_fcm: FakeFcm,
    tmp_path: Path,
):
    # A key the token endpoint does not know (revoked in the console, say).
    key_file = fake_fcm.service_account_file(tmp_path / "revoked.json")
    info = json.loads(key_file.read_text())
    key_file.write_text(json.dumps({**info, "private_key_id": "revoked-key"}))
    settings = push_settings.model_copy(update={"fcm_service_account_file": str(key_file)})
    h.template(engine_db, "push-revoked", "push", text="Hello")
    contact = push_contact(engine_db, (ANDROID, "android"))

    async with channels.channel_worker(time_env, engine_db, settings) as queue:
        _, view = await channels.run_send(client, engine_db, contact, "push", "push-revoked", queue)

    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    assert "fcm access token refused" in channels.detail(view, "failed")
    assert [t["refused"] for t in fake_fcm.token_requests] == ["invalid_grant"]
    assert fake_fcm.sends == []  # nothing reached FCM
    assert tokens_of(engine_db, contact) == {ANDROID}
