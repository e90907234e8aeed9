"""A template's test send (issue 17, item 2): rendered for a contact or sample traits, sent to
the given address through the real provider (the SendGrid and Twilio SDKs against the fake
server), kept in the message log marked `test`, and left out of frequency caps, of the
journeys' messages and of the events journeys hear."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.activities.providers.sendgrid_email import SendGridEvent
from temporal_journeys.api.services.deliveries import apply_sendgrid
from temporal_journeys.store import messages as messages_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Message
from tests.support import harness as h
from tests.support.api import Api
from tests.support.channels import PUBLIC_URL
from tests.support.fake_providers import FakeProviders, sendgrid_error

WELCOME = {
    "channel": "email",
    "subject": "Welcome, {{ contact.first_name }}",
    "text": "Your code: {{ data.code }}",
    "html": "<p>Your code: {{ data.code }}</p>",
}
SMS = {"channel": "sms", "text": "{{ contact.first_name }}, {{ data.code }} is yours"}


async def put_template(api: Api, key: str, body: dict) -> None:
    response = await api.http.put(f"/v1/templates/{key}", json=body, headers=api.admin)
    assert response.status_code == 200, response.text


async def test_send(api: Api, key: str, **body: object):  # noqa: PT028 (a helper, not a test)
    return await api.http.post(f"/v1/templates/{key}/test-send", json=body, headers=api.admin)


test_send.__test__ = False  # type: ignore[attr-defined]


async def test_an_email_test_send_reaches_sendgrid_marked_and_is_logged_as_a_test(
    channel_api: Api, fake: FakeProviders
):
    api = channel_api
    await put_template(api, "results-welcome", WELCOME)

    response = await test_send(
        api,
        "results-welcome",
        to="marketer@example.com",
        traits={"first_name": "Sam"},
        data={"code": "TRY10"},
    )

    assert response.status_code == 200, response.text
    message = response.json()
    assert (message["status"], message["test"]) == ("sent", True)
    assert message["journey_key"] is None
    assert (message["to_address"], message["subject"]) == ("marketer@example.com", "Welcome, Sam")
    assert (message["text"], message["html"]) == ("Your code: TRY10", "<p>Your code: TRY10</p>")
    [mail] = fake.accepted("sendgrid")
    assert mail.body["personalizations"][0]["to"] == [{"email": "marketer@example.com"}]
    assert mail.body["subject"] == "Welcome, Sam"
    assert mail.body["headers"]["X-Journeys-Test"] == "1"
    assert mail.body["headers"]["List-Unsubscribe"].startswith(f"<{PUBLIC_URL}/v1/unsubscribe/")
    assert mail.body["headers"] == message["headers"]
    assert mail.message_id == message["id"]
    tests = (await api.http.get("/v1/messages?test=true", headers=api.admin)).json()
    journeys = (await api.http.get("/v1/messages?test=false", headers=api.admin)).json()
    assert message["id"] in [m["id"] for m in tests]
    assert message["id"] not in [m["id"] for m in journeys]


async def test_an_sms_test_send_goes_through_twilio(channel_api: Api, fake: FakeProviders):
    api = channel_api
    await put_template(api, "results-sms", SMS)

    response = await test_send(
        api, "results-sms", to="+15005550009", traits={"first_name": "Sam"}, data={"code": "X1"}
    )

    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["test"]) == ("sent", True)
    [sms] = fake.accepted("twilio")
    assert (sms.body["To"], sms.body["Body"]) == ("+15005550009", "Sam, X1 is yours")


async def test_a_refused_test_send_is_a_502_and_the_log_says_failed(
    channel_api: Api, fake: FakeProviders
):
    api = channel_api
    await put_template(api, "results-welcome", WELCOME)
    fake.script("sendgrid", sendgrid_error(400, "The from address does not match"))

    response = await test_send(
        api, "results-welcome", to="m@example.com", traits={"first_name": "S"}, data={"code": "1"}
    )

    assert response.status_code == 502
    assert "does not match" in response.json()["detail"]
    [logged] = (await api.http.get("/v1/messages?test=true&limit=1", headers=api.admin)).json()
    assert (logged["to_address"], logged["status"]) == ("m@example.com", "failed")


@pytest.mark.parametrize(
    ("key", "to"),
    [("results-welcome", "not-an-address"), ("results-sms", "0612345678")],
)
async def test_a_test_send_to_a_bad_address_is_a_422_naming_to(
    channel_api: Api, fake: FakeProviders, key: str, to: str
):
    await put_template(channel_api, "results-welcome", WELCOME)
    await put_template(channel_api, "results-sms", SMS)

    response = await test_send(channel_api, key, to=to, traits={"first_name": "S"})

    assert response.status_code == 422
    assert [p["path"] for p in response.json()["detail"]] == ["$.to"]
    assert fake.of("sendgrid") == fake.of("twilio") == []


async def test_a_test_send_that_does_not_render_is_a_422_and_sends_nothing(
    channel_api: Api, fake: FakeProviders
):
    await put_template(channel_api, "results-welcome", WELCOME)

    response = await test_send(channel_api, "results-welcome", to="m@example.com", traits={})

    assert response.status_code == 422
    assert {p["variable"] for p in response.json()["detail"]} == {
        "contact.first_name",
        "data.code",
    }
    assert fake.of("sendgrid") == []


@pytest.fixture
def channel_overrides() -> dict[str, object]:
    return {"email_daily_cap": 1}


async def test_a_test_send_to_a_contact_does_not_count_against_its_daily_cap(
    channel_api: Api,
    fake: FakeProviders,
    client: Client,
    time_env: WorkflowEnvironment,
    engine_db: Database,
):
    """With a daily cap of one email, a contact who got a test send today still gets the
    journey's email at once (not deferred to tomorrow); and the test message's open reaches
    no journey."""
    api = channel_api
    await put_template(api, "results-welcome", WELCOME)
    user = h.unique("capped")
    identify = {"userId": user, "traits": {"email": f"{user}@example.com", "first_name": "Kim"}}
    assert (await api.http.post("/v1/identify", json=identify, headers=api.track)).is_success
    tested = await test_send(
        api, "results-welcome", to=f"{user}@example.com", contact=user, data={"code": "T"}
    )
    assert tested.status_code == 200, tested.text
    key = h.unique("capped")
    spec = {
        "name": "Capped",
        "trigger": {"event": f"{key}.started"},
        "steps": [
            {
                "id": "hello",
                "send": {"channel": "email", "template": "results-welcome", "data": {"code": "J"}},
            }
        ],
    }
    assert (await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)).is_success
    assert (await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)).is_success
    event = {"userId": user, "event": f"{key}.started", "messageId": str(uuid.uuid4())}
    assert (await api.http.post("/v1/track", json=event, headers=api.track)).is_success
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    result, view = await h.finish(handle, time_env)

    assert result.status == "completed"
    assert not h.at(view, "deferred")
    assert [m.test for m in h.messages(engine_db, user)] == [True, False]
    assert [m.status for m in h.messages(engine_db, user)] == ["sent", "sent"]

    test_id = tested.json()["id"]
    opened = SendGridEvent(
        key=f"open-{test_id}",
        kind="open",
        at=datetime.now(UTC),
        message_id=test_id,
        provider_message_id=None,
        email=f"{user}@example.com",
    )
    with engine_db.transaction() as session:
        applied = apply_sendgrid(session, [opened], datetime.now(UTC))
    assert (applied.applied, applied.recorded) == (1, 0)  # the log moves on, no journey hears


def test_frequency_caps_count_the_journeys_sends_and_not_the_test_sends(db: Database):
    now = datetime.now(UTC)
    with db.transaction() as session:
        for number, test in ((1, True), (2, False)):
            session.add(
                Message(
                    id=f"m{number}",
                    idempotency_key=f"k{number}",
                    contact_id="kim",
                    channel="email",
                    template="t",
                    provider="sendgrid",
                    status="sent",
                    status_history=[],
                    sent_at=now - timedelta(minutes=number),
                    test=test,
                )
            )
    with db.transaction() as session:
        counted = messages_store.sent_times(
            session,
            contact_id="kim",
            channel="email",
            excluding="m3",
            statuses=["sent"],
            after=now - timedelta(days=1),
            until=now,
        )

    assert [_aware(moment) for moment in counted] == [now - timedelta(minutes=2)]


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands times back without their zone; they are UTC.
    return moment.replace(tzinfo=UTC) if moment is not None and moment.tzinfo is None else moment
