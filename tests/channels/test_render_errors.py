"""A template that cannot render for one contact fails that message, never the run: the step
follows its ``on_failure`` or, without one, the run goes on to the step after it."""

from __future__ import annotations

from temporalio.client import Client

from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.fake_providers import FakeProviders

GREETING = "Hello {{ contact.first_name }}"


def steps_without_on_failure(template: str) -> list[dict[str, object]]:
    return [
        {"id": "greet", "send": {"channel": "email", "template": template}},
        {"id": "later", "update": {"add_tags": ["went-on"]}},
        {"id": "done", "exit": {}},
    ]


async def test_a_missing_trait_fails_the_message_and_the_run_goes_on(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-greet", subject=GREETING, text="Hi")
    contact = h.contact(engine_db)  # no first_name

    result, view = await channels.run_journey(
        channel_client, engine_db, contact, steps_without_on_failure("ch-greet")
    )

    assert result.status == "completed", (result.status, result.reason)
    assert [e.step for e in h.at(view, "updated")] == ["later"]
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed"
    assert "contact.first_name is undefined" in (message.error or "")
    assert fake_providers.of("sendgrid") == []
    # The run's trace says why the step sent nothing.
    [entry] = [e for e in view.trace if e.step == "greet" and e.kind in {"failed", "skipped"}]
    assert "contact.first_name is undefined" in (entry.detail or "")
    assert h.assert_recorded(engine_db, view).status == "completed"


async def test_a_missing_trait_follows_on_failure_when_the_step_has_one(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    h.template(engine_db, "ch-greet-fallback", subject=GREETING, text="Hi")
    contact = h.contact(engine_db)

    result, view = await channels.run_send(
        channel_client, engine_db, contact, "email", "ch-greet-fallback"
    )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("send", "failed"), ("fallback", "updated")]
    [message] = h.messages(engine_db, contact)
    assert message.status == "failed" and "first_name" in (message.error or "")


async def test_a_default_filter_covers_a_missing_trait(
    channel_client: Client, engine_db: Database, fake_providers: FakeProviders
):
    subject = 'Hello {{ contact.first_name | default: "there" }}'
    h.template(engine_db, "ch-greet-default", subject=subject, text="Hi")
    contact = h.contact(engine_db)

    result, view = await channels.run_journey(
        channel_client, engine_db, contact, steps_without_on_failure("ch-greet-default")
    )

    assert result.status == "completed"
    [received] = fake_providers.accepted("sendgrid")
    assert received.body["subject"] == "Hello there"
