"""A send that names a topic goes only to the topic's subscribers: otherwise it is recorded as
skipped with the reason, never sent, and the journey goes on to its next step."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client

from temporal_journeys.activities.send_guards import topic_verdict
from temporal_journeys.journeys.consent import read_link
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from tests.support import channels
from tests.support import harness as h
from tests.support.channels import PUBLIC_URL, SECRET_KEY
from tests.support.fake_providers import FakeProviders


def topic(db: Database, kind: str = "opt_out") -> str:
    key = h.unique("topic")
    with db.transaction() as session:
        topics_store.put(session, key, f"Topic {key}", None, kind)  # type: ignore[arg-type]
    return key


def choose(db: Database, contact: str, **choices: bool) -> None:
    with db.transaction() as session:
        topics_store.set_choices(session, contact, choices, "test", datetime.now(UTC))


def news_then_receipt(template: str, topic_key: str) -> list[dict[str, Any]]:
    """A send on the topic, then one on none: the second shows the journey went on."""
    return [
        {
            "id": "news",
            "send": {"channel": "email", "template": template, "topic": topic_key},
            "next": "receipt",
        },
        {"id": "receipt", "send": {"channel": "email", "template": template}, "next": "done"},
        {"id": "done", "exit": {}},
    ]


async def test_an_opt_out_topic_the_contact_left_is_skipped_and_the_journey_goes_on(
    client: Client, engine_db: Database, topic_queue: str, topic_providers: FakeProviders
):
    h.template(engine_db, "topic-mail", subject="News", text="News")
    newsletter, other = topic(engine_db), topic(engine_db)
    contact = h.contact(engine_db)
    choose(engine_db, contact, **{newsletter: False, other: True})

    result, view = await channels.run_journey(
        client, engine_db, contact, news_then_receipt("topic-mail", newsletter), topic_queue
    )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("news", "skipped"), ("receipt", "sent")]
    reason = f"unsubscribed from topic {newsletter!r}"
    assert channels.detail(view, "skipped") == reason
    skipped, sent = h.messages(engine_db, contact)
    assert (skipped.step_id, skipped.status, skipped.error) == ("news", "skipped", reason)
    assert [s["status"] for s in skipped.status_history] == ["pending", "skipped"]
    assert (sent.step_id, sent.status) == ("receipt", "sent")
    # Only the message without a topic reached SendGrid.
    [mail] = topic_providers.accepted("sendgrid")
    assert mail.body["custom_args"] == {"journeys_message_id": sent.id}


async def test_an_opt_in_topic_without_an_opt_in_is_skipped(
    client: Client, engine_db: Database, topic_queue: str, topic_providers: FakeProviders
):
    h.template(engine_db, "topic-mail", subject="News", text="News")
    promotions = topic(engine_db, "opt_in")
    contact = h.contact(engine_db)

    result, view = await channels.run_journey(
        client, engine_db, contact, news_then_receipt("topic-mail", promotions), topic_queue
    )

    assert result.status == "completed"
    assert channels.step_kinds(view) == [("news", "skipped"), ("receipt", "sent")]
    assert channels.detail(view, "skipped") == f"not opted in to topic {promotions!r}"
    assert len(topic_providers.accepted("sendgrid")) == 1


async def test_subscribers_get_the_message_with_a_one_click_link_for_its_topic(
    client: Client, engine_db: Database, topic_queue: str, topic_providers: FakeProviders
):
    h.template(
        engine_db, "topic-link", subject="News", text="Manage: {{ message.unsubscribe_url }}"
    )
    promotions, product_news = topic(engine_db, "opt_in"), topic(engine_db, "opt_out")
    contact = h.contact(engine_db)
    choose(engine_db, contact, **{promotions: True})  # opted in; product news by default
    steps = news_then_receipt("topic-link", promotions)
    steps[1]["send"]["topic"] = product_news

    _, view = await channels.run_journey(client, engine_db, contact, steps, topic_queue)

    assert channels.step_kinds(view) == [("news", "sent"), ("receipt", "sent")]
    links = []
    for mail in topic_providers.accepted("sendgrid"):
        link = mail.body["headers"]["List-Unsubscribe"].split(", ")[0]
        prefix = f"<{PUBLIC_URL}/v1/unsubscribe/"
        links.append(read_link(SECRET_KEY, link[len(prefix) : -1]))
        # The same link in the body, for the preference page: ``{{ message.unsubscribe_url }}``.
        assert mail.body["content"] == [{"type": "text/plain", "value": f"Manage: {link[1:-1]}"}]
    assert sorted((lk.contact_id, lk.channel, lk.topic) for lk in links if lk) == sorted(
        [(contact, "email", promotions), (contact, "email", product_news)]
    )


def test_the_suppression_is_a_function_a_broadcast_can_call(db: Database):
    newsletter, promotions = h.unique("newsletter"), h.unique("promotions")
    with db.transaction() as session:
        topics_store.put(session, newsletter, "Newsletter", None, "opt_out")
        topics_store.put(session, promotions, "Promotions", None, "opt_in")
        topics_store.set_choices(session, "left", {newsletter: False}, "test", datetime.now(UTC))
        topics_store.set_choices(session, "joined", {promotions: True}, "test", datetime.now(UTC))

    with db.transaction() as session:
        assert topic_verdict(session, "someone", None) is None  # no topic: channel rules only
        assert topic_verdict(session, "someone", newsletter) is None
        left = topic_verdict(session, "left", newsletter)
        assert left is not None and (left.status, left.reason) == (
            "skipped",
            f"unsubscribed from topic {newsletter!r}",
        )
        never = topic_verdict(session, "someone", promotions)
        assert never is not None and never.reason == f"not opted in to topic {promotions!r}"
        assert topic_verdict(session, "joined", promotions) is None
        gone = topic_verdict(session, "someone", "deleted-topic")
        assert gone is not None and gone.reason == "unknown topic 'deleted-topic'"
        # A batch of recipients in one statement.
        everyone = ["someone", "left", "joined"]
        assert topics_store.subscribed_among(session, newsletter, everyone) == {
            "someone",
            "joined",
        }
        assert topics_store.subscribed_among(session, promotions, everyone) == {"joined"}
        assert topics_store.subscribed_among(session, "deleted-topic", everyone) is None
