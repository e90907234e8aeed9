"""The unsubscribe link's page is a preference centre: GET lists the topics, its form (POST)
updates them or leaves everything; RFC 8058 one-click from a message on a topic leaves that
topic only."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode

from temporal_journeys.journeys.consent import make_token
from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
ONE_CLICK = b"List-Unsubscribe=One-Click"


def topic(db: Database, kind: str = "opt_out") -> str:
    key = h.unique("topic")
    with db.transaction() as session:
        topics_store.put(session, key, f"Name of {key}", f"About {key}", kind)  # type: ignore[arg-type]
    return key


def link(api: Api, contact_id: str, topic_key: str | None = None) -> str:
    secret = api.app.state.settings.secret_key
    return f"/v1/unsubscribe/{make_token(secret, contact_id, 'email', topic_key)}"


def choices(db: Database, contact_id: str) -> dict[str, bool]:
    with db.transaction() as session:
        return topics_store.choices_of(session, contact_id)


def box(key: str, checked: bool) -> str:
    return (
        f'<input type="checkbox" name="topic" value="{escape(key)}"{" checked" if checked else ""}>'
    )


async def test_one_click_on_a_topic_leaves_that_topic_only(api: Api, engine_db: Database):
    newsletter, product_news = topic(engine_db), topic(engine_db)
    contact_id = h.contact(engine_db)
    url = link(api, contact_id, newsletter)

    clicks = [
        await api.http.post(url, content=ONE_CLICK, headers=FORM),
        await api.http.post(url, content=ONE_CLICK, headers=FORM),
    ]

    assert [r.status_code for r in clicks] == [200, 200]
    assert f"You will not receive Name of {newsletter} anymore." in clicks[0].text
    assert choices(engine_db, contact_id) == {newsletter: False}
    contact = sw.reload(engine_db, Contact, contact_id)
    assert contact.unsubscribed == []  # still gets email on other topics and on none
    assert sw.suppression(engine_db, "email", contact.email) is None
    shown = (await api.http.get(f"/v1/contacts/{contact_id}", headers=api.admin)).json()
    assert (shown["subscriptions"][newsletter], shown["subscriptions"][product_news]) == (
        False,
        True,
    )
    [event] = sw.stored_events(engine_db, contact_id)  # once, however many clicks
    assert (event.name, event.properties) == (
        "topic.unsubscribed",
        {"topic": newsletter, "source": "link"},
    )


async def test_the_page_lists_topics_and_its_form_updates_them(api: Api, engine_db: Database):
    newsletter, promotions, product_news = (
        topic(engine_db),
        topic(engine_db, "opt_in"),
        topic(engine_db),
    )
    contact_id = h.contact(engine_db)
    url = link(api, contact_id, newsletter)

    page = await api.http.get(url)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert f"Unsubscribe from Name of {newsletter}?" in page.text
    for key, checked in ((newsletter, True), (promotions, False), (product_news, True)):
        assert box(key, checked) in page.text
        assert f"Name of {key}" in page.text and f"About {key}" in page.text
    assert 'name="action" value="preferences"' in page.text
    assert "Unsubscribe from all emails" in page.text
    assert choices(engine_db, contact_id) == {}  # GET changes nothing

    body = urlencode(
        [
            ("action", "preferences"),
            *(("shown", key) for key in (newsletter, promotions, product_news)),
            ("topic", promotions),
            ("topic", product_news),
        ]
    )
    saved = await api.http.post(url, content=body, headers=FORM)

    assert saved.status_code == 200
    assert "Your preferences are saved." in saved.text
    assert choices(engine_db, contact_id) == {
        newsletter: False,
        promotions: True,
        product_news: True,
    }
    assert box(promotions, True) in saved.text and box(newsletter, False) in saved.text
    events = {(e.name, e.properties["topic"]) for e in sw.stored_events(engine_db, contact_id)}
    # product news was subscribed by default already: choosing it records no change event.
    assert events == {("topic.unsubscribed", newsletter), ("topic.subscribed", promotions)}
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []


async def test_the_page_can_still_leave_everything(api: Api, engine_db: Database):
    newsletter = topic(engine_db)
    contact_id = h.contact(engine_db)
    url = link(api, contact_id, newsletter)

    response = await api.http.post(url, content=b"action=all", headers=FORM)

    assert response.status_code == 200
    assert "You will not receive our emails anymore." in response.text
    contact = sw.reload(engine_db, Contact, contact_id)
    assert contact.unsubscribed == ["email"]
    assert sw.suppression(engine_db, "email", contact.email) == "unsubscribed"
    [event] = sw.stored_events(engine_db, contact_id)
    assert (event.name, event.properties) == (
        "email.unsubscribed",
        {"channel": "email", "source": "link"},
    )


async def test_a_link_without_a_topic_still_leaves_the_channel_and_offers_topics(
    api: Api, engine_db: Database
):
    newsletter = topic(engine_db)
    contact_id = h.contact(engine_db)
    url = link(api, contact_id)

    page = await api.http.get(url)
    response = await api.http.post(url, content=ONE_CLICK, headers=FORM)

    assert "Press the button to stop receiving our emails." in page.text
    assert box(newsletter, True) in page.text
    assert "You will not receive our emails anymore." in response.text
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == ["email"]
    assert choices(engine_db, contact_id) == {}


async def test_an_unknown_topic_in_the_form_is_422_naming_the_field(api: Api, engine_db: Database):
    newsletter = topic(engine_db)
    contact_id = h.contact(engine_db)
    url = link(api, contact_id, newsletter)

    bad = urlencode([("action", "preferences"), ("shown", newsletter), ("topic", "nope")])
    response = await api.http.post(url, content=bad, headers=FORM)

    assert response.status_code == 422
    assert "field topic: unknown topic &#x27;nope&#x27;" in response.text
    assert choices(engine_db, contact_id) == {}
    forged = link(api, contact_id, newsletter)[:-3] + "aaa"
    assert (await api.http.post(forged, content=ONE_CLICK, headers=FORM)).status_code == 404
