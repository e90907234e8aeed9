"""The app's side of push: devices registered through the API (then sent to through the fake
FCM), and ``push.opened`` posted through ``/v1/track`` releasing a ``wait_for`` on it."""

from __future__ import annotations

from temporalio.client import Client

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Message
from tests.support import channels
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api
from tests.support.fake_fcm import FakeFcm

TOKEN = "eDevice000:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqxq"

STEPS = [
    {"id": "hello", "send": {"channel": "push", "template": "push-loop"}},
    {
        "id": "opened?",
        "wait_for": {"event": "push.opened", "message": "hello", "timeout": "P2D"},
        "on_timeout": "done",
        "next": "thanks",
    },
    {"id": "thanks", "update": {"add_tags": ["opened-push"]}},
    {"id": "done", "exit": {}},
]


async def test_devices_are_registered_moved_listed_and_removed_through_the_api(api: Api):
    user = h.unique("device-user")
    body = {"userId": user, "token": TOKEN, "platform": "ios"}

    created = await api.http.post("/v1/devices", json=body, headers=api.track)
    again = await api.http.post("/v1/devices", json=body, headers=api.track)
    listed = await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)

    assert created.status_code == 201, created.text
    assert again.status_code == 200
    assert [(d["token"], d["platform"]) for d in listed.json()] == [(TOKEN, "ios")]

    # The phone's next user signs in: the token is theirs now.
    other = h.unique("device-user")
    moved = await api.http.post(
        "/v1/devices", json={**body, "userId": other, "platform": "ios"}, headers=api.track
    )
    assert moved.status_code == 201 and moved.json()["userId"] == other
    assert (
        await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)
    ).json() == []

    gone = await api.http.delete(f"/v1/devices/{TOKEN}", params={"userId": user}, headers=api.track)
    removed = await api.http.delete(
        f"/v1/devices/{TOKEN}", params={"userId": other}, headers=api.track
    )
    assert gone.status_code == 404 and removed.status_code == 204


async def test_a_bad_device_body_is_a_422_naming_the_field(api: Api):
    response = await api.http.post(
        "/v1/devices",
        json={"userId": "u1", "token": TOKEN, "platform": "blackberry"},
        headers=api.track,
    )
    assert response.status_code == 422
    assert "platform" in response.text
    # Listing needs the admin key; the app's key may only register.
    listing = await api.http.get("/v1/devices", params={"userId": "u1"}, headers=api.track)
    assert listing.status_code == 403


async def test_push_opened_posted_through_track_releases_the_wait_for(
    client: Client, push_queue: str, engine_db: Database, fake_fcm: FakeFcm, api: Api
):
    h.template(engine_db, "push-loop", "push", subject="Hello", text="Come back")
    user = h.unique("push-user")
    registered = await api.http.post(
        "/v1/devices",
        json={"userId": user, "token": TOKEN, "platform": "android"},
        headers=api.track,
    )
    assert registered.status_code == 201
    handle = await channels.start_journey(client, engine_db, user, STEPS, push_queue)
    await h.wait_until(lambda: len(fake_fcm.accepted()) == 1, "the push")
    [received] = fake_fcm.accepted()
    message_id = received.message["data"]["journeys_message_id"]

    # What the app posts when the user taps the notification: the id it carried.
    opened = {"userId": user, "event": "push.opened", "properties": {"message_id": message_id}}
    response = await api.http.post("/v1/track", json=opened, headers=api.track)
    assert response.status_code == 202, response.text
    await api.relay()
    result, view = await h.finish(handle)

    assert result.status == "completed"
    [released] = h.at(view, "event")
    assert released.step == "opened?" and released.detail.startswith("push.opened")
    assert h.at(view, "timeout") == []
    assert sw.reload(engine_db, Contact, user).tags == ["opened-push"]
    assert sw.reload(engine_db, Message, message_id).status == "opened"


async def test_erasing_a_contact_removes_their_devices(api: Api, engine_db: Database):
    user = h.unique("erased-user")
    body = {"userId": user, "token": TOKEN + "-erase", "platform": "web"}
    assert (await api.http.post("/v1/devices", json=body, headers=api.track)).status_code == 201

    erased = await api.http.delete(f"/v1/contacts/{user}", headers=api.admin)

    assert erased.status_code == 200, erased.text
    assert erased.json()["rows_deleted"]["devices"] == 1
    listed = await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)
    assert listed.json() == []


async def test_an_identify_from_a_segment_mobile_library_registers_its_push_token(api: Api):
    user = h.unique("segment-user")
    identify = {
        "userId": user,
        "traits": {"first_name": "Ada"},
        # What analytics-ios / analytics-android put in every call's context.
        "context": {"device": {"type": "ios", "token": TOKEN + "-segment", "model": "iPhone15,2"}},
    }
    odd = {"userId": user, "context": {"device": {"type": "watchos", "token": "x"}}}

    for call in (identify, odd):
        response = await api.http.post("/v1/identify", json=call, headers=api.track)
        assert response.status_code == 202, response.text

    listed = await api.http.get("/v1/devices", params={"userId": user}, headers=api.admin)
    assert [(d["token"], d["platform"]) for d in listed.json()] == [(TOKEN + "-segment", "ios")]
    await api.relay()  # the identify events' outbox entries: no other test's relay finds them
