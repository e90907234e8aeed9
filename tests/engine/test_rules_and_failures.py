"""Exit events, re-entry rules, failed sends following on_failure, and exactly-once sends."""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from temporal_journeys.activities.sends import SendActivities
from temporal_journeys.plugin import JourneysPlugin, default_providers
from temporal_journeys.store.db import Database
from temporal_journeys.workflows.activity_types import SendMessageInput
from tests.support import harness as h

NUDGE = """
key: {key}
name: Nudge
trigger: {{event: app.opened}}
re_entry: {re_entry}
exit_on: [{{event: contact.unsubscribed}}]
steps:
  - id: wait-2d
    wait: P2D
  - id: nudge
    send: {{channel: email, template: {template}}}
    on_failure: apologise
    next: done
  - id: apologise
    update: {{add_tags: [nudge-failed]}}
  - id: done
    exit: {{}}
"""


def nudge(db: Database, re_entry: str = "never", template: str = "nudge") -> tuple:
    h.template(db, "nudge", subject="We miss you", text="Come back")
    h.template(db, "broken-nudge", subject="Hi {{ contact.first_name }}", text="x")
    return h.publish(db, NUDGE.format(key=h.unique("nudge"), re_entry=re_entry, template=template))


async def test_an_exit_event_ends_the_run_during_a_wait(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment
):
    version, journey = nudge(engine_db)
    contact = h.contact(engine_db)
    handle = await h.start(client, journey, version, contact, h.event("app.opened"))
    await time_env.sleep(timedelta(days=1))

    await h.signal(handle, "contact.unsubscribed")
    result, view = await h.finish(handle)

    assert (result.status, result.reason, result.step) == (
        "exited",
        "exit event contact.unsubscribed",
        "wait-2d",
    )
    assert h.messages(engine_db, contact) == []


async def test_re_entry_never_skips_a_second_entry(client: Client, engine_db: Database):
    version, journey = nudge(engine_db, re_entry="never")
    contact = h.contact(engine_db)
    await h.finish(await h.start(client, journey, version, contact, h.event("app.opened")))

    second = await h.start(client, journey, version, contact, h.event("app.opened"))
    result, _ = await h.finish(second)

    assert result.status == "skipped"
    assert "never" in (result.reason or "")
    assert len(h.messages(engine_db, contact)) == 1


async def test_re_entry_always_runs_again(client: Client, engine_db: Database):
    version, journey = nudge(engine_db, re_entry="always")
    contact = h.contact(engine_db)
    await h.finish(await h.start(client, journey, version, contact, h.event("app.opened")))

    result, _ = await h.finish(
        await h.start(client, journey, version, contact, h.event("app.opened"))
    )

    assert result.status == "completed"
    assert len(h.messages(engine_db, contact)) == 2


async def test_a_template_that_fails_to_render_follows_on_failure(
    client: Client, engine_db: Database
):
    version, journey = nudge(engine_db, template="broken-nudge")
    contact = h.contact(engine_db)

    result, view = await h.finish(
        await h.start(client, journey, version, contact, h.event("app.opened"))
    )

    [failed] = h.at(view, "failed")
    assert failed.step == "nudge"
    assert "contact.first_name is undefined" in (failed.detail or "")
    assert [e.step for e in h.at(view, "updated")] == ["apologise"]
    assert result.status == "completed"
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed" and "first_name" in (message.error or "")


async def test_a_retried_send_activity_records_and_sends_once(
    engine_db: Database, plugin: JourneysPlugin
):
    h.template(engine_db, "nudge", subject="We miss you", text="Come back")
    contact = h.contact(engine_db)
    sends = SendActivities(engine_db, default_providers(plugin.settings), plugin.settings)
    request = SendMessageInput(
        idempotency_key=f"journey/x/{contact}/run/nudge/1",
        message_id=h.unique("msg"),
        contact_id=contact,
        journey_key="x",
        version=1,
        step_id="nudge",
        workflow_id=f"journey/x/{contact}",
        channel="email",
        template="nudge",
    )

    env = ActivityEnvironment()
    first = await env.run(sends.send_message, request)
    second = await env.run(sends.send_message, request)

    assert first.status == second.status == "sent"
    [message] = h.messages(engine_db, contact)
    # Committed as sending before the provider call; the second run sends nothing.
    assert [entry["status"] for entry in message.status_history] == ["pending", "sending", "sent"]
