"""Pause, resume and archive; API enrolment; erasure; stats per variant; health."""

from __future__ import annotations

from sqlalchemy import func, select
from temporalio.client import Client, WorkflowExecutionStatus

from temporal_journeys.api.services.journeys import ENROLL_CHUNK
from temporal_journeys.api.services.stats import two_proportion_test
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment, Event
from tests.support import harness as h
from tests.support.api import Api


async def journey(api: Api, steps: list[dict], **extra) -> str:
    key = h.unique("life")
    spec = {"name": "Lifecycle", "trigger": {"event": f"{key}.go"}, "steps": steps, **extra}
    assert (
        await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)
    ).status_code == 200
    assert (
        await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    ).status_code == 200
    return key


async def go(api: Api, key: str, user: str) -> None:
    response = await api.http.post(
        "/v1/track", json={"userId": user, "event": f"{key}.go"}, headers=api.track
    )
    assert response.status_code == 202
    await api.relay()


async def runs_of(client: Client, key: str, user: str) -> WorkflowExecutionStatus | None:
    try:
        return (
            await client.get_workflow_handle(h.suite_names().workflow_id(key, user)).describe()
        ).status
    except Exception:
        return None


WAIT = [{"id": "hold", "wait": "P1D"}, {"id": "done", "exit": {}}]


async def test_pause_stops_entries_resume_restores_them_archive_ends_them(api: Api, client: Client):
    key = await journey(api, WAIT)
    waiting = h.unique("user")
    await go(api, key, waiting)
    assert await runs_of(client, key, waiting) == WorkflowExecutionStatus.RUNNING

    assert (await api.http.post(f"/v1/journeys/{key}/pause", headers=api.admin)).json()[
        "status"
    ] == "paused"
    paused = h.unique("user")
    await go(api, key, paused)
    assert await runs_of(client, key, paused) is None
    assert await runs_of(client, key, waiting) == WorkflowExecutionStatus.RUNNING  # goes on

    assert (await api.http.post(f"/v1/journeys/{key}/resume", headers=api.admin)).json()[
        "status"
    ] == "active"
    resumed = h.unique("user")
    await go(api, key, resumed)
    assert await runs_of(client, key, resumed) == WorkflowExecutionStatus.RUNNING

    assert (await api.http.post(f"/v1/journeys/{key}/archive", headers=api.admin)).json()[
        "status"
    ] == "archived"
    late = h.unique("user")
    await go(api, key, late)
    assert await runs_of(client, key, late) is None


async def test_enroll_by_api_and_its_errors(api: Api, client: Client):
    key = await journey(api, WAIT)
    users = [h.unique("user") for _ in range(3)]

    response = await api.http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": users}, headers=api.admin
    )

    assert response.status_code == 200
    assert [r["workflow_id"] for r in response.json()] == [
        h.suite_names().workflow_id(key, u) for u in users
    ]
    for user in users:
        assert await runs_of(client, key, user) == WorkflowExecutionStatus.RUNNING
    missing = await api.http.post(
        "/v1/journeys/nope/enroll", json={"userIds": ["a"]}, headers=api.admin
    )
    assert missing.status_code == 404
    await api.http.post(f"/v1/journeys/{key}/pause", headers=api.admin)
    paused = await api.http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": ["a"]}, headers=api.admin
    )
    assert paused.status_code == 422
    empty = await api.http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": []}, headers=api.admin
    )
    assert empty.status_code == 422 and empty.json()["detail"][0]["path"] == "$.userIds"


async def test_enrolled_entries_are_admitted_and_recorded_by_the_api(
    api: Api, client: Client, engine_db: Database
):
    key = await journey(api, WAIT)
    users = [h.unique("user") for _ in range(ENROLL_CHUNK + 1)]  # two transactions

    response = await api.http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": users}, headers=api.admin
    )

    assert response.status_code == 200
    assert [r["workflow_id"] for r in response.json()] == [
        h.suite_names().workflow_id(key, u) for u in users
    ]
    with engine_db.transaction() as session:
        rows = session.scalars(select(Enrollment).where(Enrollment.contact_id.in_(users))).all()
    assert len(rows) == len(users)
    for user in (users[0], users[-1]):
        handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
        row = next(r for r in rows if r.contact_id == user)
        assert row.id == (await handle.describe()).run_id
        history = await handle.fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        assert b'"admission":{' in started.input.payloads[0].data


async def test_enrolling_into_a_journey_keyed_by_a_missing_property_names_it(
    api: Api, engine_db: Database
):
    key = await journey(api, WAIT, trigger={"event": "cart.abandoned", "correlate": "cart_id"})
    users = [h.unique("user") for _ in range(2)]

    response = await api.http.post(
        f"/v1/journeys/{key}/enroll", json={"userIds": users}, headers=api.admin
    )

    assert response.status_code == 200
    assert [r["error"] for r in response.json()] == [
        f"journey {key} is keyed by `cart_id`, not given"
    ] * 2
    with engine_db.transaction() as session:
        count = session.scalar(
            select(func.count()).select_from(Enrollment).where(Enrollment.contact_id.in_(users))
        )
    assert count == 0


async def test_erasing_a_contact_ends_runs_and_removes_personal_data(api: Api, client: Client):
    key = await journey(api, WAIT)
    user = h.unique("user")
    await api.http.post(
        "/v1/identify",
        json={"userId": user, "traits": {"email": "e@example.com"}},
        headers=api.track,
    )
    await go(api, key, user)
    await h.wait_until(lambda: bool(_running(api, user)), "the run to report in")

    response = await api.http.delete(f"/v1/contacts/{user}", headers=api.admin)

    assert response.status_code == 200, response.text
    erased = response.json()
    assert erased["runs_ended"] == 1 and erased["rows_deleted"]["contact"] == 1
    assert erased["rows_deleted"]["events"] >= 2  # the identify and the trigger
    assert erased["key_destroyed"] is False  # payloads are not encrypted here
    assert await runs_of(client, key, user) == WorkflowExecutionStatus.COMPLETED
    assert (await api.http.get(f"/v1/contacts/{user}", headers=api.admin)).status_code == 404
    with api.app.state.db.transaction() as session:
        assert session.scalar(select(func.count()).where(Event.contact_id == user)) == 0


def _running(api: Api, user: str) -> list:
    from temporal_journeys.store.models import Enrollment

    with api.app.state.db.transaction() as session:
        return list(session.scalars(select(Enrollment).where(Enrollment.contact_id == user)))


async def test_stats_split_conversions_by_variant(api: Api, client: Client):
    steps = [
        {
            "id": "pick",
            "split": {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]},
        },
        {"id": "hold", "wait": "P1D"},
    ]
    key = await journey(api, steps, goal={"event": "bought"})
    users = [h.unique("user") for _ in range(12)]
    for user in users:
        await go(api, key, user)
    await h.wait_until(lambda: _all_waiting(api, key, len(users)), "runs to reach the wait")
    for user in users[:5]:
        await api.http.post(
            "/v1/track", json={"userId": user, "event": "bought"}, headers=api.track
        )
    await api.relay()
    await h.wait_until(lambda: _converted(api, key) == 5, "five conversions")

    [version] = (await api.http.get(f"/v1/journeys/{key}/stats", headers=api.admin)).json()

    assert version["entered"] == 12 and version["converted"] == 5
    variants = {v["variant"]: v for v in version["variants"]}
    assert set(variants) == {"a", "b"}
    assert sum(v["entered"] for v in variants.values()) == 12
    assert sum(v["converted"] for v in variants.values()) == 5
    assert variants["b"]["compared_to"] == "a" and variants["b"]["p_value"] is not None
    steps_seen = {s["step"]: s for s in version["steps"]}
    assert steps_seen["hold"]["entered"] == 12
    assert steps_seen["hold"]["waiting_now"] == 7 and steps_seen["hold"]["converted"] == 5


def _all_waiting(api: Api, key: str, count: int) -> bool:
    from temporal_journeys.store.models import Enrollment

    with api.app.state.db.transaction() as session:
        return (
            session.scalar(
                select(func.count()).where(
                    Enrollment.journey_key == key, Enrollment.current_step == "hold"
                )
            )
            == count
        )


def _converted(api: Api, key: str) -> int:
    from temporal_journeys.store.models import Enrollment

    with api.app.state.db.transaction() as session:
        return session.scalar(
            select(func.count()).where(
                Enrollment.journey_key == key, Enrollment.converted.is_(True)
            )
        )


def test_two_proportion_test_matches_a_worked_example():
    # 200/1000 against 150/1000: pooled p = 0.175, se = 0.01699, z = 2.94, p = 0.0033.
    z, p = two_proportion_test(200, 1000, 150, 1000)
    assert round(z, 2) == 2.94 and round(p, 4) == 0.0033
    assert two_proportion_test(0, 0, 1, 10) is None


async def test_ready_and_metrics(api: Api):
    ready = await api.http.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {
        "ready": True,
        "database": True,
        "temporal": True,
    }
    assert (await api.http.get("/healthz")).json() == {"status": "ok"}
    metrics = (await api.http.get("/metrics")).text
    assert "journeys_events_accepted_total" in metrics
    assert "journeys_event_to_signal_seconds_bucket" in metrics


async def test_erasing_a_contact_in_a_run_while_temporal_is_down_is_a_503(api: Api):
    user = h.unique("user")
    h.contact(api.app.state.db, user)
    with api.app.state.db.transaction() as session:
        session.add(
            Enrollment(
                id=h.unique("run"),
                workflow_id=f"journey/x/{user}",
                journey_key="x",
                version=1,
                contact_id=user,
                status="running",
            )
        )
    # Not connected, as the API is while Temporal is unreachable.
    api.app.state.temporal.client = None

    response = await api.http.delete(f"/v1/contacts/{user}", headers=api.admin)

    assert response.status_code == 503, response.text
    assert response.json()["detail"] == "Temporal is unreachable; try again shortly"
    assert (await api.http.get(f"/v1/contacts/{user}", headers=api.admin)).status_code == 200
