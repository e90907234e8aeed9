"""Seed 004's ladder, the example itself (examples/channel-ladder.yaml and its templates): app
push; SMS after 2 days without an open; then WhatsApp, or the WeChat gateway for WeChat users;
the channel answered on tagged as the contact's habit; nobody answering -> churned ->
re-activation. Every branch on the time-skipping server, each send through its real provider
client (FCM through google-auth, Twilio's SDK for SMS and WhatsApp, the signed webhook) to the
fakes on 127.0.0.1, engagement arriving as the signals the API's relay sends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.journeys.validation import load_document
from temporal_journeys.store import contacts as contacts_store
from temporal_journeys.store import devices as devices_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from temporal_journeys.workflows.starter import start_run, workflow_id
from temporal_journeys.workflows.types import RunView
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_fcm import FakeFcm
from tests.support.fake_providers import FakeProviders

EXAMPLES = Path(__file__).parents[2] / "examples"
DAY = timedelta(days=1)
GATEWAY = "/hooks/wechat-gateway"


@pytest.fixture(scope="module")
def ladder_fcm() -> Iterator[FakeFcm]:
    with FakeFcm() as fake:
        yield fake


@pytest.fixture(scope="module")
def ladder_providers() -> Iterator[FakeProviders]:
    with FakeProviders() as fake:
        yield fake


@pytest_asyncio.fixture(scope="module")
async def ladder_queue(
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
    postgres_url: str,
    ladder_fcm: FakeFcm,
    ladder_providers: FakeProviders,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[str]:
    key_file = ladder_fcm.service_account_file(
        tmp_path_factory.mktemp("ladder-fcm") / "service-account.json"
    )
    settings = channels.channel_settings(
        postgres_url,
        ladder_providers,
        fcm_service_account_file=str(key_file),
        fcm_base_url=ladder_fcm.url,
        twilio_whatsapp_from_number="+14155238886",
        task_queue="journeys-ladder-test",
    )
    async with channels.channel_worker(time_env, engine_db, settings) as queue:
        yield queue


@pytest.fixture(scope="module")
def ladder(engine_db: Database, ladder_providers: FakeProviders) -> tuple[int, Any, str]:
    """The example published under keys of its own, with its templates (the gateway's URL
    pointed at the fake) and the re-activation journey it hands off to."""
    for path in EXAMPLES.glob("templates/*.yaml"):
        parts = yaml.safe_load(path.read_text())
        if path.stem == "ladder-offer-wechat":
            parts["url"] = f"{ladder_providers.url}{GATEWAY}"
        h.template(engine_db, path.stem, parts.pop("channel"), **parts)
    reactivation = load_document((EXAMPLES / "re-activation.yaml").read_text())
    reactivation_key = h.unique("re-activation")
    h.publish(engine_db, reactivation, key=reactivation_key)
    document = load_document((EXAMPLES / "channel-ladder.yaml").read_text())
    for step in document["steps"]:
        if "enter" in step:
            step["enter"]["journey"] = reactivation_key
    version, journey = h.publish(engine_db, document, key=h.unique("channel-ladder"))
    return version, journey, reactivation_key


def someone(db: Database, app: bool = True, **traits: Any) -> str:
    """A contact with a phone, and the app installed (a push device) unless ``app`` is False."""
    contact = h.contact(db, phone="+447700900123", **traits)
    if app:
        with db.transaction() as session:
            devices_store.register(session, contact, f"{contact}:APA91bToken", "android")
    return contact


async def enrol(
    client: Client, ladder: tuple[int, Any, str], contact: str, queue: str
) -> WorkflowHandle:
    """What ``journeys enroll`` starts: the run, with no trigger event (an API journey)."""
    version, journey, _ = ladder
    return await start_run(
        client, journey=journey, version=version, contact_id=contact, task_queue=queue
    )


def tags(db: Database, contact_id: str) -> list[str]:
    with db.transaction() as session:
        snapshot = contacts_store.snapshot(contacts_store.get_or_create(session, contact_id))
        return snapshot.tags


def traits(db: Database, contact_id: str) -> dict[str, Any]:
    with db.transaction() as session:
        return contacts_store.get_or_create(session, contact_id).traits


def sent_steps(view: RunView) -> list[str | None]:
    return [entry.step for entry in h.at(view, "sent")]


def message_of(db: Database, contact: str, channel: str) -> Message:
    [message] = [m for m in h.messages(db, contact) if m.channel == channel]
    return message


async def test_an_opened_push_tags_push_and_nothing_else_goes(
    client: Client,
    engine_db: Database,
    ladder,
    ladder_queue: str,
    ladder_fcm: FakeFcm,
    ladder_providers: FakeProviders,
):
    contact = someone(engine_db, first_name="Ada")
    handle = await enrol(client, ladder, contact, ladder_queue)
    await h.wait_until(lambda: len(h.messages(engine_db, contact)) == 1, "the push")
    push = message_of(engine_db, contact, "push")

    await h.signal(handle, "push.opened", message_id=push.id)
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert sent_steps(view) == ["offer-push"]
    [fcm] = [s for s in ladder_fcm.accepted() if s.message_id == push.id]
    assert fcm.message["notification"]["title"] == "Ada, your first loan is on us"
    assert fcm.message["data"]["link"] == "finapp://offers/first-loan?code=FIRST30"
    assert tags(engine_db, contact) == ["channel-push"]
    assert traits(engine_db, contact)["preferred_channel"] == "push"


async def test_no_open_in_two_days_sends_the_sms_and_a_reply_tags_sms(
    client: Client,
    engine_db: Database,
    time_env: WorkflowEnvironment,
    ladder,
    ladder_queue: str,
    ladder_providers: FakeProviders,
):
    contact = someone(engine_db)
    handle = await enrol(client, ladder, contact, ladder_queue)
    await time_env.sleep(3 * DAY)
    sms = message_of(engine_db, contact, "sms")

    # A STOP-style keyword is no answer; a plain reply is.
    await h.signal(handle, "sms.inbound", body="START", keyword="start")
    await h.signal(handle, "sms.inbound", body="Yes please")
    result, view = await h.finish(handle)

    h.assert_schedule(view, "sent", [timedelta(0), 2 * DAY])
    assert sent_steps(view) == ["offer-push", "offer-sms"]
    [twilio] = [r for r in ladder_providers.accepted("twilio") if r.message_id == sms.id]
    assert twilio.body["To"] == "+447700900123"
    assert "FIRST30" in twilio.body["Body"]
    assert tags(engine_db, contact) == ["channel-sms"]


async def test_no_sms_answer_sends_whatsapp_and_its_read_receipt_tags_whatsapp(
    client: Client,
    engine_db: Database,
    time_env: WorkflowEnvironment,
    ladder,
    ladder_queue: str,
    ladder_providers: FakeProviders,
):
    # No app: the push is skipped ("no push device registered") and the ladder goes on.
    contact = someone(engine_db, app=False, first_name="Cleo")
    handle = await enrol(client, ladder, contact, ladder_queue)
    await time_env.sleep(5 * DAY)
    whatsapp = message_of(engine_db, contact, "whatsapp")

    await h.signal(handle, "whatsapp.read", message_id=whatsapp.id)
    result, view = await h.finish(handle)

    [skipped] = h.at(view, "skipped")
    assert skipped.step == "offer-push" and skipped.detail == "no push device registered"
    h.assert_schedule(view, "sent", [2 * DAY, 4 * DAY])
    assert sent_steps(view) == ["offer-sms", "offer-whatsapp"]
    # Outside the 24-hour window: the approved content template, its variables rendered.
    [twilio] = [r for r in ladder_providers.accepted("twilio") if r.message_id == whatsapp.id]
    assert twilio.body["To"] == "whatsapp:+447700900123"
    assert twilio.body["ContentSid"] == "HX2f1c0a9e8d7b6c5a4f3e2d1c0b9a8f7e"
    assert twilio.body["ContentVariables"] == '{"1": "Cleo", "2": "FIRST30"}'
    assert tags(engine_db, contact) == ["channel-whatsapp"]


async def test_a_wechat_user_gets_the_gateway_and_its_read_receipt_tags_wechat(
    client: Client,
    engine_db: Database,
    time_env: WorkflowEnvironment,
    ladder,
    ladder_queue: str,
    ladder_providers: FakeProviders,
):
    contact = someone(engine_db, chat_app="wechat", wechat_openid="oWei123")
    handle = await enrol(client, ladder, contact, ladder_queue)
    await time_env.sleep(5 * DAY)
    gateway = message_of(engine_db, contact, "webhook")

    await h.signal(handle, "webhook.read", message_id=gateway.id)
    result, view = await h.finish(handle)

    assert sent_steps(view) == ["offer-push", "offer-sms", "offer-wechat"]
    [branched] = h.at(view, "branched")
    assert branched.detail == "case 1 -> offer-wechat"
    [posted] = [r for r in ladder_providers.accepted("webhook") if r.message_id == gateway.id]
    assert posted.path == GATEWAY
    assert posted.body["openid"] == "oWei123" and posted.body["data"]["code"] == "FIRST30"
    assert posted.headers["X-Journeys-Signature"].startswith("t=")
    assert not [m for m in h.messages(engine_db, contact) if m.channel == "whatsapp"]
    assert tags(engine_db, contact) == ["channel-wechat"]
    assert traits(engine_db, contact)["preferred_channel"] == "wechat"


async def test_nobody_answering_is_tagged_churned_and_enters_reactivation(
    client: Client, engine_db: Database, ladder, ladder_queue: str
):
    _, _, reactivation_key = ladder
    contact = someone(engine_db)
    handle = await enrol(client, ladder, contact, ladder_queue)

    result, view = await h.finish(handle)

    assert result.status == "completed"
    h.assert_schedule(view, "sent", [timedelta(0), 2 * DAY, 4 * DAY])
    assert sent_steps(view) == ["offer-push", "offer-sms", "offer-whatsapp"]
    assert [e.step for e in h.at(view, "timeout")] == [
        "push-opened?",
        "sms-answered?",
        "whatsapp-read?",
    ]
    assert tags(engine_db, contact) == ["churned"]
    [handoff] = h.at(view, "handed_off")
    reactivation = client.get_workflow_handle(workflow_id(reactivation_key, contact))
    assert handoff.detail is not None and reactivation.id in handoff.detail
    description = await reactivation.describe()
    assert description.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    )
    if description.status == WorkflowExecutionStatus.RUNNING:
        # Its worker goes with this module: left waiting, its next task would find no worker
        # and hold the shared test server's clock for every later test.
        await reactivation.terminate(reason="test over")
