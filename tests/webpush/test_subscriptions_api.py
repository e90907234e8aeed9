"""The browser's side of web push: its subscription registered through ``POST /v1/devices``
(``PushSubscription.toJSON()`` as it comes), refused with a 422 naming the field when it is
not one or names no push service, removed by its endpoint; and ``push.opened`` posted by the
service worker releasing a ``wait_for`` on the push it showed."""

from __future__ import annotations

from urllib.parse import quote

from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api
from tests.support.fake_webpush import FakeWebPush

STEPS = [
    {"id": "hello", "send": {"channel": "push", "template": "webpush-loop"}},
    {
        "id": "opened?",
        "wait_for": {"event": "push.opened", "message": "hello", "timeout": "P2D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["opened-push"]}},
    {"id": "done", "exit": {}},
]
# A real push service's endpoint shape (Mozilla's); the default settings allow its host.
MOZILLA = "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABnX0"


async def test_a_subscription_is_registered_listed_and_removed_by_its_endpoint(
    api: Api, fake_webpush: FakeWebPush, vapid: tuple[str, str]
):
    user = h.unique("browser-user")
    keys = fake_webpush.subscribe(vapid[1]).keys
    endpoint = f"{MOZILLA}{h.unique('sub')}"
    body = {
        "userId": user,
        "platform": "webpush",
        "subscription": {"endpoint": endpoint, "expirationTime": None, "keys": keys},
    }

    created = await api.http.post("/v1/devices", json=body, headers=api.track)
    again = await api.http.post("/v1/devices", json=body, headers=api.track)
    listed = await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)

    assert created.status_code == 201, created.text
    assert created.json()["token"] == endpoint
    assert again.status_code == 200
    assert [(d["token"], d["platform"]) for d in listed.json()] == [(endpoint, "webpush")]

    # The page unsubscribed: the endpoint (slashes and all) names the device.
    removed = await api.http.delete(
        f"/v1/devices/{quote(endpoint, safe='')}", params={"userId": user}, headers=api.track
    )
    assert removed.status_code == 204, removed.text
    listed = await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)
    assert listed.json() == []


async def test_a_bad_subscription_is_a_422_naming_the_field(
    api: Api, fake_webpush: FakeWebPush, vapid: tuple[str, str]
):
    keys = fake_webpush.subscribe(vapid[1]).keys
    subscription = {"endpoint": f"{MOZILLA}x", "keys": keys}
    cases = [
        ({"platform": "webpush"}, "subscription is required"),
        (
            {"platform": "webpush", "subscription": {**subscription, "keys": {"auth": "x"}}},
            "$.subscription.keys",
        ),
        ({"platform": "android", "subscription": subscription}, "webpush only"),
        # Anybody with the tracking key may register: not a URL the worker would post to.
        (
            {
                "platform": "webpush",
                "subscription": {**subscription, "endpoint": "https://10.0.0.7/admin"},
            },
            "$.subscription.endpoint",
        ),
        (
            {
                "platform": "webpush",
                "subscription": {
                    **subscription,
                    "endpoint": "http://updates.push.services.mozilla.com/wpush/v2/x",
                },
            },
            "not an https URL",
        ),
    ]
    for extra, expected in cases:
        response = await api.http.post(
            "/v1/devices", json={"userId": "u1", **extra}, headers=api.track
        )
        assert response.status_code == 422, (extra, response.text)
        assert expected in response.text, (extra, response.text)


async def test_push_opened_from_the_service_worker_releases_the_wait_for(
    client: Client,
    webpush_queue: str,
    engine_db: Database,
    fake_webpush: FakeWebPush,
    webpush_api: Api,
    vapid: tuple[str, str],
):
    api = webpush_api
    h.template(engine_db, "webpush-loop", "push", subject="Hello", text="Come back")
    user = h.unique("browser-user")
    subscription = fake_webpush.subscribe(vapid[1])
    registered = await api.http.post(
        "/v1/devices",
        json={"userId": user, "platform": "webpush", "subscription": subscription.to_json()},
        headers=api.track,
    )
    assert registered.status_code == 201, registered.text
    handle = await channels.start_journey(client, engine_db, user, STEPS, webpush_queue)
    await h.wait_until(lambda: len(fake_webpush.accepted()) == 1, "the push")
    [received] = fake_webpush.accepted()
    message_id = received.json["data"]["journeys_message_id"]

    # What the service worker posts on ``notificationclick``: the id the payload carried.
    opened = {"userId": user, "event": "push.opened", "properties": {"message_id": message_id}}
    response = await api.http.post("/v1/track", json=opened, headers=api.track)
    assert response.status_code == 202, response.text
    await api.relay()
    result, view = await h.finish(handle)

    assert result.status == "completed"
    [released] = h.at(view, "event")
    assert released.step == "opened?" and released.detail.startswith("push.opened")
    assert sw.reload(engine_db, Contact, user).tags == ["opened-push"]
    assert sw.reload(engine_db, Message, message_id).status == "opened"


async def test_a_test_send_reaches_a_registered_browser(
    webpush_api: Api, fake_webpush: FakeWebPush, vapid: tuple[str, str]
):
    api = webpush_api
    template = {"channel": "push", "subject": "Hi {{ contact.first_name }}", "text": "Test"}
    put = await api.http.put("/v1/templates/webpush-try", json=template, headers=api.admin)
    assert put.status_code == 200, put.text
    subscription = fake_webpush.subscribe(vapid[1])
    device = {"userId": "web-tester", "platform": "webpush", "subscription": subscription.to_json()}
    assert (await api.http.post("/v1/devices", json=device, headers=api.track)).is_success

    response = await api.http.post(
        "/v1/templates/webpush-try/test-send",
        json={"to": subscription.endpoint, "traits": {"first_name": "Sam"}},
        headers=api.admin,
    )

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "sent" and response.json()["test"] is True
    [received] = fake_webpush.accepted()
    assert received.json["title"] == "Hi Sam" and received.json["body"] == "Test"
    assert received.json["tag"] == response.json()["id"]
