"""Segments through the API: documents (422 with paths, 409 on delete in use), membership kept
up to date on identify and track in the ingest transaction, entered / exited events routed to
journeys (trigger, exit_on, branch), backfill and the time-based recompute as workflows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store import segments as segments_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact, Event, OutboxEntry
from temporal_journeys.workflows.segments import (
    REFRESH_WORKFLOW,
    RefreshInput,
    RefreshResult,
    backfill_id,
)
from tests.support import harness as h
from tests.support.api import Api

pytestmark = pytest.mark.usefixtures("segments_cleaned")


async def put(api: Api, key: str, condition: dict[str, Any], **extra: Any) -> dict[str, Any]:
    response = await api.http.put(
        f"/v1/segments/{key}",
        json={"name": key, "condition": condition, **extra},
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    return response.json()


async def backfilled(client: Client, key: str, version: int = 1) -> dict[str, Any]:
    return await client.get_workflow_handle(backfill_id(key, version)).result()


async def identify(api: Api, user: str, **traits: Any) -> None:
    response = await api.http.post(
        "/v1/identify", json={"userId": user, "traits": traits}, headers=api.track
    )
    assert response.status_code == 202, response.text


async def track(api: Api, user: str, event: str, **properties: Any) -> None:
    response = await api.http.post(
        "/v1/track",
        json={"userId": user, "event": event, "properties": properties},
        headers=api.track,
    )
    assert response.status_code == 202, response.text


async def members(api: Api, key: str) -> list[str]:
    response = await api.http.get(f"/v1/segments/{key}/members?limit=1000", headers=api.admin)
    assert response.status_code == 200, response.text
    return [m["userId"] for m in response.json()["members"]]


def segment_events(db: Database, user: str) -> list[tuple[str, str, bool]]:
    """(name, segment, queued for routing) of the contact's segment events, in order."""
    with db.transaction() as session:
        rows = session.execute(
            select(Event.name, Event.properties, OutboxEntry.id)
            .outerjoin(OutboxEntry, OutboxEntry.event_id == Event.id)
            .where(Event.contact_id == user, Event.name.like("segment.%"))
            .order_by(Event.id)
        ).all()
    return [(name, props["segment"], entry is not None) for name, props, entry in rows]


async def test_documents_are_stored_listed_counted_paged_and_deleted(api: Api, client: Client):
    users = [h.unique("pager") for _ in range(3)]
    for user in users:
        await identify(api, user, plan="gold")
    body = await put(api, "gold", {"trait": "plan", "eq": "gold"}, description="Gold plan")
    assert body["version"] == 1 and body["refreshed_by_schedule"] is None
    await backfilled(client, "gold")

    listed = (await api.http.get("/v1/segments", headers=api.admin)).json()
    assert [s["key"] for s in listed] == ["gold"] and listed[0]["backfilled"] is True
    count = (await api.http.get("/v1/segments/gold/count", headers=api.admin)).json()
    assert count == {"key": "gold", "count": 3}
    first = (await api.http.get("/v1/segments/gold/members?limit=2", headers=api.admin)).json()
    second = (
        await api.http.get(
            f"/v1/segments/gold/members?limit=2&after={first['next']}", headers=api.admin
        )
    ).json()
    paged = [m["userId"] for m in first["members"] + second["members"]]
    assert paged == sorted(users) and second["next"] is None

    same = await put(api, "gold", {"trait": "plan", "eq": "gold"}, description="Gold plan")
    assert same["version"] == 1  # the same document again is no new version
    changed = await put(api, "gold", {"trait": "plan", "in": ["gold", "platinum"]})
    assert changed["version"] == 2

    assert (await api.http.delete("/v1/segments/gold", headers=api.admin)).status_code == 204
    assert (await api.http.get("/v1/segments/gold", headers=api.admin)).status_code == 404


@pytest.mark.parametrize(
    ("document", "path", "words"),
    [
        (
            {"name": "x", "condition": {"trait": "age", "type": "integer", "gte": 1}},
            "$.condition.type",
            "'string', 'number', 'boolean' or 'date'",
        ),
        (
            {"name": "x", "condition": {"all": [{"tag": "a"}, {"segment": "nowhere"}]}},
            "$.condition.all[1].segment",
            "unknown segment 'nowhere'",
        ),
        (
            {"name": "x", "condition": {"trait": "age", "gte": 1, "lte": 9}},
            "$.condition",
            "exactly one operator",
        ),
        (
            {"name": "x", "condition": {"trait": "born", "before": "2000-01-01"}},
            "$.condition",
            "add `type: date`",
        ),
        (
            {"name": "x", "condition": {"event": "a", "within": "P1M"}},
            "$.condition.within",
            "not an ISO 8601 duration",
        ),
        (
            {"name": "x", "condition": {"field": "trigger.total", "gt": 1}},
            "$.condition.field",
            "a segment compares contact.<trait>",
        ),
        (
            {"name": "x", "condition": {"event": "a", "where": [{"property": "t", "gt": [1]}]}},
            "$.condition.where[0]",
            "string, number or boolean",
        ),
        ({"condition": {"tag": "a"}}, "$.name", "Field required"),
    ],
)
async def test_bad_documents_are_422_naming_the_path(
    api: Api, document: dict[str, Any], path: str, words: str
):
    response = await api.http.put("/v1/segments/bad", json=document, headers=api.admin)
    assert response.status_code == 422
    problems = response.json()["detail"]
    assert any(p["path"] == path and words in p["message"] for p in problems), problems


async def test_a_cycle_of_segments_is_422_naming_the_reference(api: Api):
    await put(api, "a", {"tag": "a"})
    await put(api, "b", {"segment": "a"})
    response = await api.http.put(
        "/v1/segments/a",
        json={"name": "a", "condition": {"any": [{"tag": "x"}, {"segment": "b"}]}},
        headers=api.admin,
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"path": "$.condition.any[1].segment", "message": "segment 'b' leads back to 'a': a cycle"}
    ]


async def test_deleting_a_segment_in_use_is_409_naming_the_users(api: Api):
    await put(api, "vip", {"tag": "vip"})
    await put(api, "vip-paris", {"all": [{"segment": "vip"}, {"trait": "city", "eq": "Paris"}]})
    key = h.unique("segtest")
    spec = {
        "name": "VIP welcome",
        "trigger": {"segment": "vip"},
        "steps": [{"id": "hold", "wait": "P1D"}],
    }
    assert (
        await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)
    ).status_code == 200
    assert (
        await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    ).status_code == 200

    response = await api.http.delete("/v1/segments/vip", headers=api.admin)
    assert response.status_code == 409
    assert response.json()["detail"] == (
        f"segment 'vip' is used by journey {key}, segment vip-paris"
    )


async def test_deleting_a_segment_records_an_exit_for_each_member(
    api: Api, engine_db: Database, client: Client
):
    users = sorted(h.unique("leaver") for _ in range(3))
    outsider = h.unique("stayer")
    # Keys and a plan of their own: the database is shared with other tests' contacts, and a
    # backfill's workflow id names the key and version (a finished one is not started again).
    gold, gold_users = h.unique("gold"), h.unique("gold-users")
    for user in users:
        await identify(api, user, plan=gold)
    await identify(api, outsider, plan="free")
    await put(api, gold, {"trait": "plan", "eq": gold})
    await backfilled(client, gold)
    await put(api, gold_users, {"segment": gold})
    await backfilled(client, gold_users)
    assert await members(api, gold) == users

    # Refused while another segment names it: nobody leaves.
    refused = await api.http.delete(f"/v1/segments/{gold}", headers=api.admin)
    assert refused.status_code == 409
    assert await members(api, gold) == users
    assert all(("segment.exited", gold, True) not in segment_events(engine_db, u) for u in users)

    assert (
        await api.http.delete(f"/v1/segments/{gold_users}", headers=api.admin)
    ).status_code == 204
    assert (await api.http.delete(f"/v1/segments/{gold}", headers=api.admin)).status_code == 204
    for user in users:
        # Stored with the contact's events and queued for routing, like any exit.
        assert segment_events(engine_db, user) == [
            ("segment.entered", gold, True),
            ("segment.entered", gold_users, True),
            ("segment.exited", gold_users, True),
            ("segment.exited", gold, True),
        ]
    assert segment_events(engine_db, outsider) == []
    with engine_db.transaction() as session:
        assert segments_store.keys_of(session, users[0]) == []


async def test_identify_and_track_move_contacts_in_and_out_in_the_ingest_transaction(
    api: Api, engine_db: Database, client: Client
):
    await put(api, "parisians", {"trait": "city", "eq": "Paris"})
    await put(
        api,
        "big-spenders",
        {"event": "order.completed", "min": 2, "where": [{"property": "total", "gte": 100}]},
    )
    await put(
        api, "parisian-spenders", {"all": [{"segment": "parisians"}, {"segment": "big-spenders"}]}
    )
    user = h.unique("ada")

    await identify(api, user, city="Paris")
    assert user in await members(api, "parisians")
    await track(api, user, "order.completed", total=150)
    await track(api, user, "order.completed", total=20)  # filtered out by `where`
    assert user not in await members(api, "big-spenders")
    await track(api, user, "order.completed", total=300)
    assert user in await members(api, "big-spenders")
    assert user in await members(api, "parisian-spenders")  # follows its segments
    await identify(api, user, city="Lyon")
    assert user not in await members(api, "parisians")
    assert user not in await members(api, "parisian-spenders")

    assert segment_events(engine_db, user) == [
        ("segment.entered", "parisians", True),
        ("segment.entered", "big-spenders", True),
        ("segment.entered", "parisian-spenders", True),
        ("segment.exited", "parisians", True),
        ("segment.exited", "parisian-spenders", True),
    ]


JOURNEY_ON_SEGMENT: dict[str, Any] = {
    "name": "Welcome to VIP",
    "trigger": {"segment": "vip"},
    "re_entry": "always",
    "exit_on": [{"segment_exited": "vip"}],
    "steps": [
        {
            "id": "which",
            "branch": {"cases": [{"when": {"segment": "vip-paris"}, "next": "paris"}]},
        },
        {"id": "elsewhere", "update": {"add_tags": ["vip-elsewhere"]}, "next": "hold"},
        {"id": "paris", "update": {"add_tags": ["vip-paris"]}},
        {"id": "hold", "wait": "P30D"},
    ],
}


async def test_a_journey_on_a_segment_enters_branches_on_and_exits_with_membership(
    api: Api, engine_db: Database, client: Client
):
    await put(api, "vip", {"trait": "vip", "eq": True})
    await put(api, "vip-paris", {"all": [{"segment": "vip"}, {"trait": "city", "eq": "Paris"}]})
    key = h.unique("segtest")
    assert (
        await api.http.put(f"/v1/journeys/{key}", json=JOURNEY_ON_SEGMENT, headers=api.admin)
    ).status_code == 200
    assert (
        await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    ).status_code == 200
    user = h.unique("vip")

    await identify(api, user, vip=True, city="Paris")
    await api.relay()
    handle = client.get_workflow_handle(h.suite_names().workflow_id(key, user))
    await h.wait_until(
        lambda: "vip-paris" in _tags(engine_db, user), "the branch on vip-paris", seconds=30
    )
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    await identify(api, user, vip=False)  # leaves the segment: exit_on ends the run
    await api.relay()
    await handle.result()
    with engine_db.transaction() as session:
        from temporal_journeys.store.models import Enrollment

        reason = session.scalar(
            select(Enrollment.exit_reason).where(Enrollment.workflow_id == handle.id)
        )
    assert reason is not None and "segment.exited" in reason


def _tags(db: Database, user: str) -> list[str]:
    with db.transaction() as session:
        contact = session.get(Contact, user)
        return list(contact.tags or []) if contact is not None else []


async def test_a_window_condition_changes_with_time_alone(
    api: Api, engine_db: Database, client: Client, time_env: WorkflowEnvironment
):
    body = await put(api, "bought-lately", {"event": "order.completed", "within": "P1D"})
    assert body["refreshed_by_schedule"] == "segment-refresh/bought-lately"
    user = h.unique("buyer")
    await track(api, user, "order.completed")
    assert user in await members(api, "bought-lately")  # with earlier tests' buyers

    await time_env.sleep(timedelta(days=2))  # no event: only the clock moves
    # What the segment's schedule starts at each fire (the time-skipping server has no
    # schedules; tests/segments/test_refresh_schedule.py runs the real one on the dev server).
    result = await client.execute_workflow(
        REFRESH_WORKFLOW,
        RefreshInput(key="bought-lately"),
        id=h.unique("segment-refresh/bought-lately"),
        task_queue=h.TASK_QUEUE,
        result_type=RefreshResult,
    )
    assert result.exited["bought-lately"] >= 1
    assert user not in await members(api, "bought-lately")
    assert segment_events(engine_db, user)[-1] == ("segment.exited", "bought-lately", True)


@pytest.mark.slow
async def test_backfill_of_a_thousand_contacts_reports_progress(
    api: Api, engine_db: Database, client: Client
):
    prefix = h.unique("bulk")
    now = datetime.now(UTC)
    with engine_db.transaction() as session:
        session.execute(
            insert(Contact),
            [
                {
                    "id": f"{prefix}-{n:04d}",
                    "traits": {"age": n % 100, "batch": prefix},
                    "tags": [],
                    "scores": {},
                    "unsubscribed": [],
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(1000)
            ],
        )
    await put(
        api,
        "adults-of-batch",
        {"all": [{"trait": "batch", "eq": prefix}, {"trait": "age", "gte": 18}]},
    )
    handle = client.get_workflow_handle(backfill_id("adults-of-batch", 1))
    result = await handle.result()
    assert result["entered"] == 820 and result["superseded"] is False
    count = (await api.http.get("/v1/segments/adults-of-batch/count", headers=api.admin)).json()
    assert count["count"] == 820
    metadata = await handle.query("__temporal_workflow_metadata")
    details = metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
    assert "contacts evaluated; 820 entered" in details


async def test_a_journey_naming_an_unknown_segment_is_422_with_its_path(api: Api):
    spec = {
        "name": "Nowhere",
        "trigger": {"segment": "nowhere"},
        "steps": [
            {"id": "b", "branch": {"cases": [{"when": {"segment": "elsewhere"}, "next": "x"}]}},
            {"id": "x", "exit": {}},
        ],
    }
    response = await api.http.put(
        f"/v1/journeys/{h.unique('segtest')}", json=spec, headers=api.admin
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"path": "$.trigger.segment", "message": "unknown segment 'nowhere'"},
        {"path": "$.steps[0].branch.cases[0].when", "message": "unknown segment 'elsewhere'"},
    ]


async def test_erasing_a_contact_removes_its_memberships(api: Api, engine_db: Database):
    await put(api, "erasable", {"trait": "plan", "eq": "erasable"})
    user = h.unique("gone")
    await identify(api, user, plan="erasable")
    assert user in await members(api, "erasable")
    erased = await api.http.delete(f"/v1/contacts/{user}", headers=api.admin)
    assert erased.status_code == 200, erased.text
    assert erased.json()["rows_deleted"]["segments"] == 1
    assert user not in await members(api, "erasable")
