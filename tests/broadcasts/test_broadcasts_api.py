"""Broadcasts through the API, run by the time-skipping server's worker with the console
provider: each member of the segment as it was at the start gets exactly one message row
keyed ``broadcast/<id>/<contact>``, a topic's leavers are skipped with the reason, the run can
be paused, resumed and cancelled, and bad input is a 422 naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.store import segments as segments_store
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import broadcasts as b
from tests.support import harness as h
from tests.support.api import Api


@pytest.fixture
def prefix(engine_db: Database) -> Iterator[str]:
    name = b.unique("bc")
    yield name
    b.forget(engine_db, name)


async def test_every_member_gets_one_message_keyed_by_broadcast_and_contact(
    api: Api, client: Client, engine_db: Database, prefix: str
):
    ids = b.add_contacts(engine_db, prefix, 30)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-hello", subject="Hello {{ contact.first_name }}", text="Hi")

    created = await b.create(
        api.http, api.admin, segment=segment, template=f"{prefix}-hello", batch_size=7
    )
    assert created["workflow_id"] == f"broadcast/{created['id']}"
    assert created["channel"] == "email"
    handle = client.get_workflow_handle(created["workflow_id"])
    result = await handle.result()

    assert result["status"] == "completed" and result["sent"] == 30 and result["total"] == 30
    rows = b.messages(engine_db, created["id"])
    assert sorted(m.contact_id for m in rows) == ids
    assert {m.idempotency_key for m in rows} == {f"broadcast/{created['id']}/{i}" for i in ids}
    assert {m.status for m in rows} == {"sent"} and rows[0].subject == "Hello Ada"
    shown = (await api.http.get(f"/v1/broadcasts/{created['id']}", headers=api.admin)).json()
    assert shown["status"] == "completed" and shown["counts"] == {"sent": 30}
    assert shown["total"] == 30 and shown["finished_at"] is not None
    metadata = await handle.query("__temporal_workflow_metadata")
    current = metadata["currentDetails"] if isinstance(metadata, dict) else metadata.current_details
    assert "30 of 30 sent, 0 skipped, 0 failed [completed]" in current, current
    listed = (await api.http.get("/v1/broadcasts?status=completed", headers=api.admin)).json()
    assert created["id"] in [item["id"] for item in listed]
    page = (
        await api.http.get(f"/v1/broadcasts/{created['id']}/recipients?limit=20", headers=api.admin)
    ).json()
    assert len(page["recipients"]) == 20 and page["next"] == ids[19]


async def test_a_topic_opt_out_is_skipped_with_the_reason(
    api: Api, client: Client, engine_db: Database, prefix: str
):
    ids = b.add_contacts(engine_db, prefix, 6)
    topic = f"{prefix}-news"
    with engine_db.transaction() as session:
        topics_store.put(session, topic, "News", None, "opt_out")
        for contact_id in ids[:2]:
            topics_store.set_choices(session, contact_id, {topic: False}, "test", datetime.now(UTC))
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-news", subject="News", text="News")

    created = await b.create(
        api.http, api.admin, segment=segment, template=f"{prefix}-news", topic=topic
    )
    result = await client.get_workflow_handle(created["workflow_id"]).result()

    reason = f"unsubscribed from topic {topic!r}"
    assert result["sent"] == 4 and result["skipped"] == 2
    assert result["skipped_reasons"] == {reason.replace(f" {topic!r}", ""): 2}
    rows = {m.contact_id: m for m in b.messages(engine_db, created["id"])}
    assert {rows[i].status for i in ids[:2]} == {"skipped"}
    assert {rows[i].error for i in ids[:2]} == {reason}
    assert {rows[i].status for i in ids[2:]} == {"sent"}
    shown = (await api.http.get(f"/v1/broadcasts/{created['id']}", headers=api.admin)).json()
    assert shown["counts"] == {"sent": 4, "skipped": 2} and shown["reasons"] == {reason: 2}


async def test_members_who_join_after_the_start_are_not_sent_to(
    api: Api, client: Client, time_env: WorkflowEnvironment, engine_db: Database, prefix: str
):
    b.add_contacts(engine_db, prefix, 3)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-slow", subject="Hi", text="Hi")
    # One a minute: the run is still sending when the newcomer joins.
    created = await b.create(
        api.http, api.admin, segment=segment, template=f"{prefix}-slow", rate_per_minute=1
    )
    await b.until_status(api.http, api.admin, created["id"], ("sending",), started=True)
    late = f"{prefix}-late"
    with engine_db.transaction() as session:
        now = datetime.now(UTC)
        session.execute(
            insert(Contact),
            [
                {
                    "id": late,
                    "email": f"{late}@example.com",
                    "traits": {"batch": prefix},
                    "tags": [],
                    "scores": {},
                    "unsubscribed": [],
                    "created_at": now,
                    "updated_at": now,
                }
            ],
        )
        segments_store.recompute(session, segment)
        assert segments_store.count(session, segment) == 4

    result = await b.result(time_env, client, created)

    assert result["total"] == 3 and result["sent"] == 3
    assert late not in b.per_contact(engine_db, created["id"])


async def test_pause_resume_and_cancel(
    api: Api, client: Client, time_env: WorkflowEnvironment, engine_db: Database, prefix: str
):
    b.add_contacts(engine_db, prefix, 5)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-ctl", subject="Hi", text="Hi")
    created = await b.create(
        api.http, api.admin, segment=segment, template=f"{prefix}-ctl", rate_per_minute=1
    )
    bid = created["id"]
    await b.until_status(api.http, api.admin, bid, ("sending",), started=True)
    url = f"/v1/broadcasts/{bid}"

    paused = await api.http.post(f"{url}/pause", headers=api.admin)
    assert paused.status_code == 200, paused.text
    assert paused.json()["status"] == "paused"
    handle = client.get_workflow_handle(created["workflow_id"])
    assert (await handle.query("progress"))["status"] == "paused"
    resumed = await api.http.post(f"{url}/resume", headers=api.admin)
    assert resumed.status_code == 200 and resumed.json()["status"] == "sending"

    cancelled = await api.http.post(f"{url}/cancel", headers=api.admin)
    assert cancelled.status_code == 200, cancelled.text
    body = cancelled.json()
    assert body["status"] == "cancelled" and body["finished_at"] is not None
    # One a minute, cut short at once: the first went, the rest never will.
    assert body["counts"].get("sent", 0) < 5 and body["counts"].get("queued", 0) >= 1
    sent_before = sum(b.per_contact(engine_db, bid).values())
    result = await b.result(time_env, client, created)
    assert result["status"] == "cancelled"
    await b.record(client, created, "paused_resumed_cancelled")
    assert sum(b.per_contact(engine_db, bid).values()) == sent_before
    again = await api.http.post(f"{url}/resume", headers=api.admin)
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


async def test_a_segment_a_live_broadcast_uses_cannot_be_deleted(
    api: Api, client: Client, engine_db: Database, prefix: str
):
    b.add_contacts(engine_db, prefix, 1)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-later", subject="Hi", text="Hi")
    later = (datetime.now(UTC) + timedelta(days=60)).isoformat()
    created = await b.create(
        api.http, api.admin, segment=segment, template=f"{prefix}-later", send_at=later
    )
    assert created["status"] == "scheduled" and created["total"] is None

    refused = await api.http.delete(f"/v1/segments/{segment}", headers=api.admin)

    assert refused.status_code == 409
    assert f"broadcast {created['id']}" in refused.json()["detail"]
    cancelled = await api.http.post(f"/v1/broadcasts/{created['id']}/cancel", headers=api.admin)
    assert cancelled.json()["status"] == "cancelled"


async def test_bad_input_is_422_naming_the_field(api: Api, engine_db: Database, prefix: str):
    h.template(engine_db, f"{prefix}-sms", channel="sms", text="Hi")
    with engine_db.transaction() as session:
        segments_store.put(
            session,
            segments_store.Segment.model_validate(
                {"key": f"bc-{prefix}", "name": "x", "condition": {"trait": "batch", "eq": prefix}}
            ),
        )
    segment = f"bc-{prefix}"

    async def problems(**body: object) -> list[dict[str, str]]:
        response = await api.http.post("/v1/broadcasts", json=body, headers=api.admin)
        assert response.status_code == 422, response.text
        return response.json()["detail"]

    assert await problems(segment="nope", template=f"{prefix}-sms") == [
        {"path": "$.segment", "message": "unknown segment 'nope'"}
    ]
    assert await problems(segment=segment, template="nope") == [
        {"path": "$.template", "message": "unknown template 'nope'"}
    ]
    assert await problems(segment=segment, template=f"{prefix}-sms", topic="nope") == [
        {"path": "$.topic", "message": "unknown topic 'nope'"}
    ]
    assert (await problems(segment=segment, template=f"{prefix}-sms", channel="email"))[0][
        "path"
    ] == "$.channel"
    assert (await problems(segment=segment))[0]["path"] == "$.template"
    assert (await problems(segment=segment, journey="nope"))[0]["path"] == "$.journey"
    bad_time = await problems(segment=segment, template=f"{prefix}-sms", send_at="tomorrow")
    assert [p["path"] for p in bad_time] == ["$.send_at"]
    past = await problems(segment=segment, template=f"{prefix}-sms", send_at="2020-01-01T09:00Z")
    assert past == [{"path": "$.send_at", "message": "2020-01-01T09:00:00+00:00 is in the past"}]
    naive = await problems(segment=segment, template=f"{prefix}-sms", send_at="2099-01-01T09:00")
    assert [p["path"] for p in naive] == ["$.send_at"]
    bad_clock = await problems(segment=segment, template=f"{prefix}-sms", local_time="25:00")
    assert [p["path"] for p in bad_clock] == ["$.local_time"]
    slow = await problems(segment=segment, template=f"{prefix}-sms", rate_per_minute=0)
    assert [p["path"] for p in slow] == ["$.rate_per_minute"]
    missing = await api.http.get("/v1/broadcasts/bc_nope", headers=api.admin)
    assert missing.status_code == 404


async def test_a_journey_broadcast_enters_each_member_once(
    api: Api, client: Client, engine_db: Database, prefix: str
):
    ids = b.add_contacts(engine_db, prefix, 4)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-welcome", subject="Welcome", text="Hi")
    key = f"{prefix}-journey"
    h.publish(
        engine_db,
        {
            "key": key,
            "name": key,
            "trigger": {"event": f"{key}.never"},
            "steps": [
                {"id": "hello", "send": {"channel": "email", "template": f"{prefix}-welcome"}},
                {"id": "done", "exit": {}},
            ],
        },
    )

    created = await b.create(api.http, api.admin, segment=segment, journey=key)
    result = await client.get_workflow_handle(created["workflow_id"]).result()

    assert result["entered"] == 4 and result["status"] == "completed"
    ended = await h.wait_for_enrollments(engine_db, key, 4, seconds=60)
    assert sorted(e.contact_id for e in ended) == ids
    shown = (await api.http.get(f"/v1/broadcasts/{created['id']}", headers=api.admin)).json()
    assert shown["counts"] == {"entered": 4}


async def test_the_cli_starts_a_broadcast_and_follows_it_with_a_progress_bar(
    api: Api, client: Client, engine_db: Database, prefix: str, served: dict[str, str]
):
    from typer.testing import CliRunner

    from temporal_journeys.cli.commands import app

    b.add_contacts(engine_db, prefix, 12)
    segment = await b.segment_of_batch(api.http, api.admin, client, prefix)
    h.template(engine_db, f"{prefix}-cli", subject="Hi", text="Hi")
    runner = CliRunner()
    argv = ["broadcast", segment, "--template", f"{prefix}-cli", "--batch-size", "5"]

    result = await asyncio.to_thread(runner.invoke, app, [*argv, "--poll", "0.2"], env=served)

    assert result.exit_code == 0, result.output
    assert "12 sent" in result.output and "completed" in result.output
    assert "broadcast bc_" in result.output and "12/12" in result.output
    bad = await asyncio.to_thread(
        runner.invoke, app, ["broadcast", "nope", "--template", "nope"], env=served
    )
    assert bad.exit_code == 2
    assert "$.segment: unknown segment 'nope'" in bad.output
    assert "$.template: unknown template 'nope'" in bad.output
