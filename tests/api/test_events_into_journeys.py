"""Events posted over HTTP enter contacts into journeys, release waits, and convert."""

from __future__ import annotations

import base64
import gzip
import json
import uuid

from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Event
from temporal_journeys.workflows.contract import STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h
from tests.support.api import Api

WELCOME = {
    "name": "Trial nudge",
    "trigger": {"event": "trial.started"},
    "goal": {"event": "plan.upgraded"},
    "steps": [
        {"id": "hello", "send": {"channel": "email", "template": "api-hello"}},
        {
            "id": "clicked?",
            "wait_for": {"event": "email.clicked", "message": "hello", "timeout": "P3D"},
            "on_timeout": "nudge",
            "next": "thanks",
        },
        {"id": "nudge", "send": {"channel": "email", "template": "api-hello"}},
        {"id": "thanks", "update": {"add_tags": ["clicked"]}},
    ],
}


async def published(api: Api, spec: dict, key: str | None = None) -> str:
    key = key or h.unique("api-journey")
    response = await api.http.put(
        "/v1/templates/api-hello",
        json={"channel": "email", "subject": "Hi {{ contact.first_name }}", "text": "Welcome"},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    # A trigger of its own, so no other test's journey takes this test's contacts.
    spec = {**spec, "trigger": {"event": f"{key}.started"}}
    response = await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)
    assert response.status_code == 200, response.text
    response = await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 1
    return key


async def track(api: Api, user: str, event: str, **properties) -> dict:
    body = {
        "userId": user,
        "event": event,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
    }
    response = await api.http.post("/v1/track", json=body, headers=api.track)
    assert response.status_code == 202, response.text
    return body


async def test_identify_and_track_enter_a_run_that_a_click_releases(api: Api, client: Client):
    key = await published(api, WELCOME)
    user = h.unique("user")
    response = await api.http.post(
        "/v1/identify",
        json={"userId": user, "traits": {"email": f"{user}@example.com", "first_name": "Ada"}},
        headers=api.track,
    )
    assert response.status_code == 202

    await track(api, user, f"{key}.started")
    assert await api.relay() == 2
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    await h.wait_until(lambda: _sent(api, user), "the first email")

    [message] = (await api.http.get(f"/v1/messages?contact={user}", headers=api.admin)).json()
    assert message["subject"] == "Hi Ada"
    await track(api, user, "email.clicked", message_id=message["id"])
    await api.relay()
    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert [e.step for e in h.at(view, "event")] == ["clicked?"]
    contact = (await api.http.get(f"/v1/contacts/{user}", headers=api.admin)).json()
    assert contact["tags"] == ["clicked"]
    journeys = (await api.http.get(f"/v1/contacts/{user}/journeys", headers=api.admin)).json()
    assert [(j["journey"], j["status"]) for j in journeys] == [(key, "completed")]


def _sent(api: Api, user: str) -> bool:
    return bool(h.messages(api.app.state.db, user))


async def test_a_goal_event_converts_the_run(api: Api, client: Client):
    key = await published(api, WELCOME)
    user = h.unique("user")
    await track(api, user, f"{key}.started")
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    await h.wait_until(lambda: _step_is(api, handle.id, "clicked?"), "the wait step")

    await track(api, user, "plan.upgraded", plan="pro")
    await api.relay()
    result, _ = await h.finish(handle)

    assert result.status == "converted"
    stats = (await api.http.get(f"/v1/journeys/{key}/stats", headers=api.admin)).json()
    assert stats[0]["converted"] == 1
    steps = {s["step"]: s for s in stats[0]["steps"]}
    assert steps["hello"]["entered"] == 1 and steps["hello"]["completed"] == 1
    assert steps["clicked?"]["converted"] == 1


def _step_is(api: Api, workflow_id: str, step: str) -> bool:
    from temporal_journeys.store.models import Enrollment

    with api.app.state.db.transaction() as session:
        row = session.scalars(
            select(Enrollment).where(Enrollment.workflow_id == workflow_id)
        ).first()
        return row is not None and row.current_step == step


async def test_a_repeated_message_id_is_one_event_and_one_run(
    api: Api, client: Client, engine_db: Database
):
    key = await published(api, WELCOME)
    user = h.unique("user")
    body = await track(api, user, f"{key}.started")
    again = await api.http.post("/v1/track", json=body, headers=api.track)

    assert again.status_code == 202
    assert again.json() == {"accepted": 0, "duplicates": 1, "ignored": 0}
    with engine_db.transaction() as session:
        stored = session.scalar(select(func.count()).where(Event.message_id == body["messageId"]))
    assert stored == 1
    assert await api.relay() == 1
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    view = await handle.query(STATE_QUERY, result_type=RunView)
    assert view.journey == key


async def test_segment_libraries_batch_gzip_with_basic_auth(api: Api, engine_db: Database):
    token = api.track["Authorization"].removeprefix("Bearer ")
    basic = base64.b64encode(f"{token}:".encode()).decode()
    user = h.unique("user")
    body = {
        "batch": [
            {
                "type": "identify",
                "userId": user,
                "traits": {"email": "x@example.com"},
                "messageId": str(uuid.uuid4()),
                "context": {"library": {"name": "analytics-python"}},
            },
            {
                "type": "track",
                "userId": user,
                "event": "Product Viewed",
                "properties": {"sku": "A1"},
                "messageId": str(uuid.uuid4()),
                "timestamp": "2026-11-22T10:00:00Z",
                "integrations": {},
            },
            {
                "type": "page",
                "anonymousId": "anon-1",
                "name": "Pricing",
                "messageId": str(uuid.uuid4()),
            },
            {"type": "alias", "userId": user, "previousId": "anon-1"},
        ],
        "writeKey": token,
        "sentAt": "2026-11-22T10:00:01Z",
    }
    response = await api.http.post(
        "/v1/batch",
        content=gzip.compress(json.dumps(body).encode()),
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Encoding": "gzip",
            "Content-Type": "application/json",
        },
    )

    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 3, "duplicates": 0, "ignored": 1}
    with engine_db.transaction() as session:
        names = set(
            session.scalars(
                select(Event.name).where(Event.contact_id.in_([user, "anonymous:anon-1"]))
            )
        )
    assert names == {"identify", "Product Viewed", "page"}


SEEN = {
    "name": "Onboarding check",
    "steps": [
        {"id": "wait-1d", "wait": "P1D"},
        {
            "id": "used-app?",
            "branch": {
                "cases": [{"when": {"seen": "app.opened"}, "next": "active"}],
                "default": "idle",
            },
        },
        {"id": "active", "update": {"add_tags": ["active"]}, "next": "done"},
        {"id": "idle", "update": {"add_tags": ["idle"]}},
        {"id": "done", "exit": {}},
    ],
}


async def test_an_event_a_branch_asks_about_with_seen_reaches_the_run(
    api: Api, client: Client, time_env: WorkflowEnvironment
):
    key = await published(api, SEEN)
    user = h.unique("user")
    await track(api, user, f"{key}.started")
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    await h.wait_until(lambda: _step_is(api, handle.id, "wait-1d"), "the wait step")

    await track(api, user, "app.opened", screen="home")
    assert await api.relay() == 1
    result, view = await h.finish(handle, time_env)

    assert result.status == "completed"
    [branched] = h.at(view, "branched")
    assert branched.detail == "case 1 -> active"
