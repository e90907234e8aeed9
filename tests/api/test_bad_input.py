"""Bad input gets a clear 4xx naming what is wrong; nothing is stored half-way."""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import func, select

from temporal_journeys.store.models import Event, JourneyRow
from tests.support import harness as h
from tests.support.api import Api


async def test_no_key_is_401_and_a_track_key_cannot_publish(api: Api):
    assert (await api.http.post("/v1/track", json={})).status_code == 401
    bad = {"Authorization": "Bearer jk_admin_not-a-real-key"}
    assert (await api.http.get("/v1/messages", headers=bad)).status_code == 401

    response = await api.http.post("/v1/journeys/any/publish", headers=api.track)

    assert response.status_code == 403
    assert "admin key" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "path", "message"),
    [
        ({"event": "x"}, "$", "userId or anonymousId is required"),
        ({"userId": "u", "event": ""}, "$.event", "at least 1 character"),
        ({"userId": "u", "event": "x", "timestamp": "yesterday"}, "$.timestamp", "datetime"),
        ({"userId": "u", "event": "x", "properties": []}, "$.properties", "dictionary"),
    ],
)
async def test_track_rejects_with_the_field_named(api: Api, body: dict, path: str, message: str):
    response = await api.http.post("/v1/track", json=body, headers=api.track)

    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["path"] == path and message in problem["message"]


async def test_a_bad_call_in_a_batch_stores_none_of_it(api: Api):
    user = h.unique("user")
    body = {
        "batch": [
            {"type": "track", "userId": user, "event": "ok"},
            {"type": "track", "userId": user, "event": "bad", "timestamp": "not a time"},
        ]
    }
    response = await api.http.post("/v1/batch", json=body, headers=api.track)

    assert response.status_code == 422
    assert response.json()["detail"][0]["path"].startswith("$.batch[1]")
    with api.app.state.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Event.contact_id == user)) == 0


async def test_malformed_json_is_400(api: Api):
    response = await api.http.post(
        "/v1/track", content=b"{not json", headers={**api.track, "Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "malformed JSON" in response.json()["detail"]


async def test_oversize_bodies_are_413_compressed_or_not(api: Api):
    huge = {"userId": "u", "event": "x", "properties": {"blob": "x" * 600_000}}
    response = await api.http.post("/v1/track", json=huge, headers=api.track)
    assert response.status_code == 413

    bomb = gzip.compress(json.dumps(huge).encode())
    response = await api.http.post(
        "/v1/track",
        content=bomb,
        headers={**api.track, "Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 413


async def test_more_than_2500_calls_in_a_batch_is_refused(api: Api):
    body = {"batch": [{"type": "track", "userId": "u", "event": "e"}] * 2501}
    response = await api.http.post("/v1/batch", json=body, headers=api.track)
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "$.batch"


async def test_unknown_fields_in_admin_bodies_are_named(api: Api):
    response = await api.http.put(
        "/v1/templates/t", json={"channel": "email", "subjct": "typo"}, headers=api.admin
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "$.subjct"


async def test_a_template_with_broken_liquid_is_refused(api: Api):
    response = await api.http.put(
        "/v1/templates/t", json={"channel": "email", "text": "{% if %}"}, headers=api.admin
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "$.text"


async def test_unknown_journey_and_contact_are_404(api: Api):
    assert (await api.http.get("/v1/journeys/nope/stats", headers=api.admin)).status_code == 404
    assert (await api.http.post("/v1/journeys/nope/publish", headers=api.admin)).status_code == 404
    assert (await api.http.get("/v1/contacts/nobody", headers=api.admin)).status_code == 404
    assert (await api.http.delete("/v1/contacts/nobody", headers=api.admin)).status_code == 404


async def test_an_invalid_draft_is_422_with_paths_and_not_stored(api: Api):
    key = h.unique("bad")
    spec = {
        "name": "Bad",
        "trigger": {"event": "x"},
        "steps": [
            {"id": "a", "send": {"channel": "email", "template": "missing-template"}, "next": "zz"},
        ],
    }
    response = await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)

    assert response.status_code == 422
    problems = {(p["path"], p["message"]) for p in response.json()["detail"]}
    assert ("$.steps[0].next", "unknown step 'zz'") in problems
    assert ("$.steps[0].send.template", "unknown template 'missing-template'") in problems
    with api.app.state.db.transaction() as session:
        assert session.get(JourneyRow, key) is None


async def test_a_draft_whose_key_differs_from_the_url_is_refused(api: Api):
    spec = {
        "key": "other",
        "name": "X",
        "trigger": {"event": "x"},
        "steps": [{"id": "a", "exit": {}}],
    }
    response = await api.http.put("/v1/journeys/mine", json=spec, headers=api.admin)
    assert response.status_code == 422
    assert response.json()["detail"][0]["path"] == "$.key"


async def test_text_postgres_cannot_store_is_422_not_500(api: Api):
    response = await api.http.post(
        "/v1/track", json={"userId": "u\u0000", "event": "x"}, headers=api.track
    )
    assert response.status_code == 422
    assert "cannot be stored" in response.json()["detail"]


def _nested(depth: int) -> dict:
    """An object ``depth`` objects deep, counting itself: ``{"a": {"a": ... {}}}``."""
    value: dict = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def test_an_event_nested_300_deep_is_refused_at_the_door(api: Api):
    """Temporal's JSON encoder refuses ~256 levels; accepted, such an event stopped the relay."""
    user = h.unique("deep")
    body = {"userId": user, "event": "cart.abandoned", "properties": _nested(300)}

    response = await api.http.post("/v1/track", json=body, headers=api.track)

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == "$.properties"
    assert problem["message"] == "nested 300 deep, at most 32"
    with api.app.state.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Event.contact_id == user)) == 0


async def test_the_door_limits_name_the_call_of_a_batch_and_the_traits(api: Api):
    user = h.unique("limits")
    calls = [{"type": "track", "userId": user, "event": "ok"}] * 3
    deep = {"type": "track", "userId": user, "event": "deep", "properties": _nested(40)}
    response = await api.http.post("/v1/batch", json={"batch": [*calls, deep]}, headers=api.track)
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {
            "path": "$.batch[3].properties",
            "location": "body",
            "message": "nested 40 deep, at most 32",
        }
    ]

    many = {f"k{i}": i for i in range(1001)}
    response = await api.http.post(
        "/v1/identify", json={"userId": user, "traits": many}, headers=api.track
    )
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["path"] == "$.traits"
    assert problem["message"] == "1001 keys, at most 1000"

    big = {"userId": user, "event": "big", "properties": {"blob": "x" * 40_000}}
    response = await api.http.post("/v1/track", json=big, headers=api.track)
    assert response.status_code == 413
    assert response.json()["detail"].startswith("$.properties: 40011 bytes of JSON, at most 32768")

    # Exactly at the limits is accepted.
    edge = {"userId": user, "event": "edge", "properties": _nested(32)}
    assert (await api.http.post("/v1/track", json=edge, headers=api.track)).status_code == 202
    with api.app.state.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Event.contact_id == user)) == 1
    await api.relay()  # nothing left queued for the next test's relay to count


async def test_every_member_of_a_multi_member_gzip_body_is_read(api: Api):
    user = h.unique("members")
    body = json.dumps(
        {"batch": [{"type": "track", "userId": user, "event": f"e{i}"} for i in range(2)]}
    ).encode()
    half = len(body) // 2
    members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    headers = {**api.track, "Content-Encoding": "gzip", "Content-Type": "application/json"}

    response = await api.http.post("/v1/batch", content=members, headers=headers)

    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 2
    with api.app.state.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Event.contact_id == user)) == 2
    await api.relay()  # nothing left queued for the next test's relay to count


async def test_a_bomb_spread_over_gzip_members_is_413(api: Api):
    member = gzip.compress(b" " * 300_000)  # each under the limit, together over it
    headers = {**api.track, "Content-Encoding": "gzip", "Content-Type": "application/json"}

    response = await api.http.post("/v1/track", content=member * 2, headers=headers)

    assert response.status_code == 413


async def test_enroll_properties_over_the_limits_are_refused_not_a_500(api: Api):
    key = h.unique("enroll-limits")
    spec = {"name": "E", "trigger": {"api": True}, "steps": [{"id": "done", "exit": {}}]}
    assert (await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)).is_success
    assert (await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)).is_success

    response = await api.http.post(
        f"/v1/journeys/{key}/enroll",
        json={"userIds": [h.unique("u")], "properties": _nested(300)},
        headers=api.admin,
    )

    assert response.status_code == 422, response.text
    [problem] = response.json()["detail"]
    assert problem["path"] == "$.properties"
    assert problem["message"] == "nested 300 deep, at most 32"
