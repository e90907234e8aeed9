"""`/v1/batch` reads its own body (pydantic parses and validates the JSON in one pass) and stores
the batch as one JSON document: the key is still checked first, errors still name the call, and
what is stored is what was sent."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from sqlalchemy import select

from temporal_journeys.store.models import Contact, Event, OutboxEntry
from tests.support import harness as h
from tests.support.api import Api


async def test_a_batch_without_a_key_is_401_whatever_its_body(api: Api):
    for body in (b"{not json", b"", b'{"batch": [{"type": "track"}]}'):
        response = await api.http.post(
            "/v1/batch", content=body, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 401, (body, response.text)
    bad = {"Authorization": "Bearer jk_track_not-a-real-key"}
    response = await api.http.post("/v1/batch", json={"batch": []}, headers=bad)
    assert response.status_code == 401


async def test_malformed_or_missing_batch_bodies_are_4xx(api: Api):
    headers = {**api.track, "Content-Type": "application/json"}
    malformed = await api.http.post("/v1/batch", content=b'{"batch": [', headers=headers)
    assert malformed.status_code == 400
    assert "malformed JSON" in malformed.json()["detail"]

    empty = await api.http.post("/v1/batch", content=b"", headers=headers)
    assert empty.status_code == 422

    no_batch = await api.http.post("/v1/batch", json={"writeKey": "x"}, headers=api.track)
    assert no_batch.status_code == 422
    assert no_batch.json()["detail"][0]["path"] == "$.batch"

    unknown_type = {"batch": [{"type": "track", "userId": "u", "event": "e"}, {"type": "nope"}]}
    response = await api.http.post("/v1/batch", json=unknown_type, headers=api.track)
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"].startswith("$.batch[1]")


async def test_what_a_batch_stores_is_what_was_sent(api: Api):
    user = h.unique("stored")
    odd = h.unique('quote"back\\slash,{brace}')
    moment = datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    properties = {
        "text": 'é ☃ "quoted" \\ ,{}',
        "nested": {"list": [1, 2.5, None, True, {"deep": "x"}]},
        "big": 12345678901234567890,
    }
    calls = [
        {
            "type": "track",
            "userId": user,
            "event": "Odd",
            "properties": properties,
            "messageId": odd,
            "timestamp": moment.isoformat(),
        },
        {"type": "page", "userId": user, "name": "Home", "properties": {"path": "/"}},
        {"type": "track", "userId": user, "event": "Plain"},
        {"type": "group", "userId": user, "groupId": "g"},
    ]

    first = await api.http.post("/v1/batch", json={"batch": calls}, headers=api.track)
    again = await api.http.post("/v1/batch", json={"batch": calls[:1]}, headers=api.track)

    assert first.status_code == 202, first.text
    assert first.json() == {"accepted": 3, "duplicates": 0, "ignored": 1}
    assert again.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    with api.app.state.db.transaction() as session:
        events = session.scalars(
            select(Event).where(Event.contact_id == user).order_by(Event.id)
        ).all()
        queued = session.scalars(
            select(OutboxEntry.event_id).where(OutboxEntry.contact_id == user)
        ).all()
    assert [e.name for e in events] == ["Odd", "page", "Plain"]
    assert events[0].message_id == odd
    assert events[0].properties == properties
    assert events[0].timestamp == moment.astimezone(UTC)
    assert events[1].properties == {"path": "/", "name": "Home"}
    # Queued for the relay in the batch's order, once each.
    assert queued == [e.id for e in events]
    await api.relay()  # nothing left queued for the next test's relay to count


async def test_a_nul_character_is_422_not_a_server_error(api: Api):
    user = h.unique("nul")
    for call in (
        {"type": "track", "userId": user, "event": "e", "properties": {"v": "a\x00b"}},
        {"type": "track", "userId": user, "event": "e\x00"},
    ):
        response = await api.http.post("/v1/batch", json={"batch": [call]}, headers=api.track)
        assert response.status_code == 422, response.text


def test_the_schema_documents_the_batch_body():
    from temporal_journeys.api.app import create_app
    from temporal_journeys.journeys.settings import Settings

    document = create_app(Settings(database_url="sqlite://"), relay=False).openapi()
    body = document["paths"]["/v1/batch"]["post"]["requestBody"]
    assert body["required"] is True
    # The body's references point into the document itself: resolved against the whole of it.
    root = Resource.from_contents(document, default_specification=DRAFT202012)
    registry = Registry().with_resource("urn:openapi", root)
    pointer = "#/paths/~1v1~1batch/post/requestBody/content/application~1json/schema"
    validator = jsonschema.Draft202012Validator(
        {"$ref": "urn:openapi" + pointer}, registry=registry
    )

    assert validator.is_valid({"batch": [{"type": "track", "userId": "u", "event": "e"}]})
    assert validator.is_valid({"batch": [{"type": "identify", "userId": "u", "traits": {}}]})
    assert not validator.is_valid({"batch": [{"type": "track", "userId": "u"}]})
    assert not validator.is_valid({"calls": []})


async def test_a_lone_surrogate_is_a_4xx_naming_the_field(api: Api):
    # JSON can escape half of a surrogate pair; UTF-8 (and so Postgres) cannot hold it.
    user = h.unique("surrogate")
    track = f'{{"userId": "{user}", "event": "e", "properties": {{"x": "\\ud800"}}}}'.encode()
    headers = {**api.track, "Content-Type": "application/json"}

    response = await api.http.post("/v1/track", content=track, headers=headers)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == "$.properties" and "lone surrogate" in problem["message"]
    batch = b'{"batch": [' + track.replace(b"{", b'{"type": "track", ', 1) + b"]}"
    response = await api.http.post("/v1/batch", content=batch, headers=headers)
    assert response.status_code == 400  # pydantic's parser refuses it as malformed JSON


async def test_batches_identifying_the_same_contacts_in_any_order_all_apply(api: Api):
    # Each batch locks its identified contacts together (two statements, id order): batches
    # naming them in opposite orders queue instead of deadlocking, and every trait lands.
    users = [h.unique(f"locked-{n}") for n in range(20)]

    def batch(order: list[str], n: int) -> dict:
        calls = [{"type": "identify", "userId": u, "traits": {f"t{n}": n}} for u in order]
        # The same contact twice in one batch: applied in the batch's order.
        calls.append({"type": "identify", "userId": order[0], "traits": {"last": n}})
        calls.append({"type": "identify", "userId": order[0], "traits": {"last": n + 100}})
        return {"batch": calls}

    bodies = [batch(users if n % 2 == 0 else users[::-1], n) for n in range(8)]
    responses = await asyncio.gather(
        *(api.http.post("/v1/batch", json=body, headers=api.track) for body in bodies)
    )

    assert [r.status_code for r in responses] == [202] * 8, [r.text for r in responses]
    with api.app.state.db.transaction() as session:
        contacts = {c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(users)))}
    assert set(contacts) == set(users)
    for user in users:
        assert {f"t{n}" for n in range(8)} <= set(contacts[user].traits)
    for first in (users[0], users[-1]):
        assert contacts[first].traits["last"] >= 100
    await api.relay()  # nothing left queued for the next test's relay to count
