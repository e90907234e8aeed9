"""Unsubscribe links: a confirmation page on GET, RFC 8058 one-click on POST, no API key."""

from __future__ import annotations

from temporalio.client import Client

from temporal_journeys.journeys.consent import make_token
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api

ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


def link(api: Api, contact_id: str, channel: str = "email") -> str:
    return f"/v1/unsubscribe/{make_token(api.app.state.settings.secret_key, contact_id, channel)}"


async def test_the_page_asks_first_and_one_click_unsubscribes_once(api: Api, engine_db: Database):
    contact_id = h.contact(engine_db)
    url = link(api, contact_id)

    page = await api.http.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post">' in page.text
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []  # GET changes nothing

    clicks = [
        await api.http.post(url, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK),
        await api.http.post(url, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK),
        await api.http.post(url),  # the page's button, or a client sending no body
    ]

    assert [r.status_code for r in clicks] == [200, 200, 200]
    assert "You will not receive our emails anymore." in clicks[0].text
    contact = sw.reload(engine_db, Contact, contact_id)
    assert contact.unsubscribed == ["email"]
    assert sw.suppression(engine_db, "email", contact.email) == "unsubscribed"
    [event] = sw.stored_events(engine_db, contact_id)
    assert (event.name, event.properties) == (
        "email.unsubscribed",
        {"channel": "email", "source": "link"},
    )
    again = await api.http.get(url)
    assert "<form" not in again.text and "will not receive" in again.text


async def test_a_bad_token_is_404_and_changes_nothing(api: Api, engine_db: Database):
    contact_id = h.contact(engine_db)
    genuine = link(api, contact_id)
    tampered = genuine[:-3] + ("aaa" if not genuine.endswith("aaa") else "bbb")
    other_secret = f"/v1/unsubscribe/{make_token('another-secret', contact_id, 'email')}"

    responses = [
        await api.http.get("/v1/unsubscribe/not-a-token"),
        await api.http.post(tampered, content=b"List-Unsubscribe=One-Click", headers=ONE_CLICK),
        await api.http.post(other_secret),
    ]

    for response in responses:
        assert response.status_code == 404
        assert "This unsubscribe link is not valid." in response.text
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == []
    assert sw.stored_events(engine_db, contact_id) == []


async def test_a_link_for_an_erased_contact_does_not_bring_it_back(api: Api, engine_db: Database):
    contact_id = h.unique("erased")

    page = await api.http.get(link(api, contact_id))
    response = await api.http.post(link(api, contact_id))

    assert (page.status_code, response.status_code) == (200, 200)
    assert "will not receive" in response.text
    assert sw.reload(engine_db, Contact, contact_id) is None
    assert sw.stored_events(engine_db, contact_id) == []


async def test_sms_links_opt_out_of_sms(api: Api, engine_db: Database):
    contact_id = h.contact(engine_db, phone="+15550104242")

    response = await api.http.post(link(api, contact_id, "sms"))

    assert "text messages" in response.text
    assert sw.reload(engine_db, Contact, contact_id).unsubscribed == ["sms"]
    assert sw.suppression(engine_db, "sms", "+15550104242") == "unsubscribed"
    assert [e.name for e in sw.stored_events(engine_db, contact_id)] == ["sms.unsubscribed"]


TWO_EMAILS = [
    {"id": "first", "send": {"channel": "email", "template": "hook-email"}},
    {"id": "pause", "wait": "P1D"},
    {"id": "second", "send": {"channel": "email", "template": "hook-email"}},
]


async def test_after_the_link_a_later_email_is_skipped_with_the_reason(
    api: Api, client: Client, engine_db: Database
):
    handle, contact_id = await sw.start_journey(client, engine_db, TWO_EMAILS)
    [first] = await sw.sent(engine_db, contact_id)
    assert first.status == "sent"

    response = await api.http.post(link(api, contact_id), content=b"List-Unsubscribe=One-Click")
    assert response.status_code == 200
    await api.relay()
    result, view = await h.finish(handle)

    assert result.status == "completed"
    [skipped] = h.at(view, "skipped")
    assert (skipped.step, skipped.detail) == ("second", "unsubscribed from email")
    _, second = h.messages(engine_db, contact_id)
    assert (second.status, second.error) == ("skipped", "unsubscribed from email")
