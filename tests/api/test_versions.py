"""Runs stay on their version; a publish with a step mapping moves waiting runs onto the new one."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.workflows.contract import STATE_QUERY
from temporal_journeys.workflows.types import RunView
from tests.support import harness as h
from tests.support.api import Api


def spec(key: str, subject_template: str, extra_wait: bool = False) -> dict:
    # Each test publishes a journey of its own; a shared trigger would enter both tests' users.
    steps = [
        {"id": "welcome", "send": {"channel": "email", "template": subject_template}},
        {"id": "pause", "wait": "P2D"},
        {"id": "follow-up", "send": {"channel": "email", "template": subject_template}},
    ]
    if extra_wait:
        steps.insert(1, {"id": "short-pause", "wait": "P1D"})
        steps[2] = {"id": "long-pause", "wait": "P5D"}
    return {"name": "Versioned", "trigger": {"event": f"{key}.signed_up"}, "steps": steps}


async def test_publish_with_a_mapping_moves_waiting_runs_and_leaves_others(
    api: Api, client: Client, time_env: WorkflowEnvironment
):
    for key, subject in (("v1-mail", "Version one"), ("v2-mail", "Version two")):
        response = await api.http.put(
            f"/v1/templates/{key}", json={"channel": "email", "subject": subject}, headers=api.admin
        )
        assert response.status_code == 200
    key = h.unique("versioned")
    assert (
        await api.http.put(f"/v1/journeys/{key}", json=spec(key, "v1-mail"), headers=api.admin)
    ).status_code == 200
    assert (await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)).json()[
        "version"
    ] == 1

    users = [h.unique("user") for _ in range(3)]
    for user in users:
        await sign_up(api, key, user)
    await api.relay()
    handles = [client.get_workflow_handle(h.suite_names().workflow_id(key, user)) for user in users]
    for handle in handles:
        await h.wait_until(
            lambda handle=handle: _waiting(api, handle.id), "runs to reach the pause"
        )

    v2 = spec(key, "v2-mail", extra_wait=True)
    assert (
        await api.http.put(f"/v1/journeys/{key}", json=v2, headers=api.admin)
    ).status_code == 200
    response = await api.http.post(
        f"/v1/journeys/{key}/publish",
        json={"migrate": {"steps": {"pause": "long-pause"}}},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.json()["migrated"] == 3

    # A contact who enters now starts on version 2; the migrated ones continue on its steps.
    late = h.unique("user")
    await sign_up(api, key, late)
    await api.relay()

    for handle in handles:
        result, view = await h.finish(handle, time_env)
        assert result.status == "completed"
        [migrated] = h.at(view, "migrated")
        assert migrated.detail == "v1 pause -> v2 long-pause"
        assert [m.template for m in h.messages(api.app.state.db, view.contact_id)] == [
            "v1-mail",
            "v2-mail",
        ]
        assert view.version == 2
    late_view = await client.get_workflow_handle(h.suite_names().workflow_id(key, late)).query(
        STATE_QUERY, result_type=RunView
    )
    assert late_view.version == 2


async def test_unmapped_runs_finish_on_their_version(
    api: Api, client: Client, time_env: WorkflowEnvironment
):
    response = await api.http.put(
        "/v1/templates/v1-mail", json={"channel": "email", "subject": "One"}, headers=api.admin
    )
    assert response.status_code == 200
    await api.http.put(
        "/v1/templates/v2-mail", json={"channel": "email", "subject": "Two"}, headers=api.admin
    )
    key = h.unique("versioned")
    await api.http.put(f"/v1/journeys/{key}", json=spec(key, "v1-mail"), headers=api.admin)
    await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    user = h.unique("user")
    await sign_up(api, key, user)
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    await h.wait_until(lambda: _waiting(api, handle.id), "the run to reach the pause")

    await api.http.put(
        f"/v1/journeys/{key}", json=spec(key, "v2-mail", extra_wait=True), headers=api.admin
    )
    response = await api.http.post(
        f"/v1/journeys/{key}/publish",
        json={"migrate": {"steps": {"welcome": "welcome"}}},
        headers=api.admin,
    )

    assert response.json()["migrated"] == 0
    [refused] = response.json()["not_migrated"]
    assert "does not name the run's step 'pause'" in refused["reason"]
    result, view = await h.finish(handle, time_env)
    assert view.version == 1 and result.status == "completed"
    sent = h.messages(api.app.state.db, user)
    assert [m.template for m in sent] == ["v1-mail", "v1-mail"], [
        (m.template, m.workflow_id, m.version, m.step_id) for m in sent
    ]


async def sign_up(api: Api, key: str, user: str) -> None:
    traits = {"email": f"{user}@example.com"}
    await api.http.post("/v1/identify", json={"userId": user, "traits": traits}, headers=api.track)
    event = {"userId": user, "event": f"{key}.signed_up"}
    assert (await api.http.post("/v1/track", json=event, headers=api.track)).status_code == 202


def _waiting(api: Api, workflow_id: str) -> bool:
    from sqlalchemy import select

    from temporal_journeys.store.models import Enrollment

    with api.app.state.db.transaction() as session:
        row = session.scalars(
            select(Enrollment).where(Enrollment.workflow_id == workflow_id)
        ).first()
        return row is not None and row.current_step == "pause"
