"""Seed 004: email, resend when not opened in 2 days, then SMS; tag what worked, hand off churn."""

from __future__ import annotations

from datetime import timedelta

import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from journeys.starter import workflow_id
from store import contacts as contacts_store
from store.db import Database
from tests.engine import harness as h

LADDER = """
key: {key}
name: Channel ladder
trigger: {{event: campaign.started}}
steps:
  - id: email
    send: {{channel: email, template: ladder-email}}
  - id: email-opened?
    wait_for: {{event: email.opened, message: email, timeout: P2D}}
    next: tag-email
    on_timeout: resend
  - id: resend
    send: {{channel: email, template: ladder-email}}
  - id: resend-opened?
    wait_for: {{event: email.opened, message: resend, timeout: P2D}}
    next: tag-email
    on_timeout: sms
  - id: sms
    send: {{channel: sms, template: ladder-sms}}
  - id: sms-replied?
    wait_for: {{event: sms.inbound, timeout: P2D}}
    next: tag-sms
    on_timeout: churned
  - id: tag-email
    update: {{add_tags: [channel-email]}}
    next: done
  - id: tag-sms
    update: {{add_tags: [channel-sms]}}
    next: done
  - id: churned
    update: {{add_tags: [churned]}}
  - id: reactivate
    enter: {{journey: {reactivation}}}
  - id: done
    exit: {{}}
"""

REACTIVATION = """
key: {key}
name: Re-activation
trigger: {{api: true}}
steps:
  - id: wait
    wait: P30D
  - id: comeback
    send: {{channel: email, template: ladder-email}}
"""

DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def ladder(engine_db: Database):
    h.template(engine_db, "ladder-email", subject="New arrivals", text="Come and see.")
    h.template(engine_db, "ladder-sms", channel="sms", text="New arrivals: see the app.")
    reactivation_key = h.unique("reactivation")
    h.publish(engine_db, REACTIVATION.format(key=reactivation_key))
    spec = LADDER.format(key=h.unique("ladder"), reactivation=reactivation_key)
    return (*h.publish(engine_db, spec), reactivation_key)


def tags(db: Database, contact_id: str) -> list[str]:
    with db.transaction() as session:
        return contacts_store.snapshot(contacts_store.get_or_create(session, contact_id)).tags


async def test_open_of_the_resend_tags_email(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment, ladder
):
    version, journey, _ = ladder
    contact = h.contact(engine_db, phone="+15555550100")
    handle = await h.start(client, journey, version, contact, h.event("campaign.started"))
    await time_env.sleep(3 * DAY)
    first, resend = h.messages(engine_db, contact)

    await h.signal(handle, "email.opened", message_id=resend.id)
    _, view = await h.finish(handle)

    assert first.id != resend.id
    h.assert_schedule(view, "sent", [timedelta(0), 2 * DAY])
    assert tags(engine_db, contact) == ["channel-email"]


async def test_reply_to_the_sms_tags_sms(
    client: Client, engine_db: Database, time_env: WorkflowEnvironment, ladder
):
    version, journey, _ = ladder
    contact = h.contact(engine_db, phone="+15555550101")
    handle = await h.start(client, journey, version, contact, h.event("campaign.started"))
    await time_env.sleep(5 * DAY)

    await h.signal(handle, "sms.inbound", body="YES")
    _, view = await h.finish(handle)

    h.assert_schedule(view, "sent", [timedelta(0), 2 * DAY, 4 * DAY])
    assert [m.channel for m in h.messages(engine_db, contact)] == ["email", "email", "sms"]
    assert tags(engine_db, contact) == ["channel-sms"]


async def test_never_engaging_is_tagged_churned_and_enters_reactivation(
    client: Client, engine_db: Database, ladder
):
    version, journey, reactivation_key = ladder
    contact = h.contact(engine_db, phone="+15555550102")
    handle = await h.start(client, journey, version, contact, h.event("campaign.started"))

    result, view = await h.finish(handle)

    assert result.status == "completed"
    assert tags(engine_db, contact) == ["churned"]
    [handoff] = h.at(view, "handed_off")
    reactivation = client.get_workflow_handle(workflow_id(reactivation_key, contact))
    assert handoff.detail is not None and reactivation.id in handoff.detail
    description = await reactivation.describe()
    assert description.status in (
        WorkflowExecutionStatus.RUNNING,
        WorkflowExecutionStatus.COMPLETED,
    )


async def test_contact_without_phone_skips_the_sms_with_the_reason(
    client: Client, engine_db: Database, ladder
):
    version, journey, _ = ladder
    contact = h.contact(engine_db)
    handle = await h.start(client, journey, version, contact, h.event("campaign.started"))

    _, view = await h.finish(handle)

    [skipped] = [e for e in h.at(view, "skipped") if e.step == "sms"]
    assert skipped.detail == "no phone number"
    assert tags(engine_db, contact) == ["churned"]
