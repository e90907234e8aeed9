"""Bad input gets a clear 4xx naming what is wrong; nothing is stored half-way."""

from __future__ import annotations

import gzip
import json

import pytest
from sqlalchemy import func, select

from store.models import Event, JourneyRow
from tests.api.conftest import Api
from tests.engine import harness as h


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
