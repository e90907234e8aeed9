"""Topics through the API: defined with /v1/topics, set by identify traits and PATCH, shown on
the contact; an unknown topic anywhere is a 422 naming the field, and nothing is stored."""

from __future__ import annotations

from typing import Any

from temporal_journeys.store import topics as topics_store
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Contact
from tests.support import harness as h
from tests.support import signed_webhooks as sw
from tests.support.api import Api


async def define(api: Api, kind: str = "opt_out", name: str = "Newsletter") -> str:
    key = h.unique("topic")
    response = await api.http.put(
        f"/v1/topics/{key}", json={"name": name, "type": kind}, headers=api.admin
    )
    assert response.status_code == 201, response.text
    return key


async def contact_out(api: Api, contact_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/v1/contacts/{contact_id}", headers=api.admin)
    assert response.status_code == 200, response.text
    return response.json()


async def test_identify_sets_subscriptions_and_the_contact_shows_every_topic(
    api: Api, engine_db: Database
):
    newsletter, promotions = await define(api), await define(api, "opt_in", "Promotions")
    product_news, offers = await define(api), await define(api, "opt_in", "Offers")
    contact_id = h.unique("ada")

    response = await api.http.post(
        "/v1/identify",
        json={
            "userId": contact_id,
            "traits": {
                "email": "ada@example.com",
                "plan": "pro",
                "topic_subscriptions": {newsletter: False, promotions: True},
            },
        },
        headers=api.track,
    )

    assert response.status_code == 202, response.text
    shown = await contact_out(api, contact_id)
    subscriptions = shown["subscriptions"]
    # Chosen ones as chosen; the others by their type's default.
    assert {k: subscriptions[k] for k in (newsletter, promotions, product_news, offers)} == {
        newsletter: False,
        promotions: True,
        product_news: True,
        offers: False,
    }
    # The choices are not kept among the traits.
    assert shown["traits"] == {"plan": "pro"}

    # A later identify changes only what it names.
    again = await api.http.post(
        "/v1/batch",
        json={
            "batch": [
                {
                    "type": "identify",
                    "userId": contact_id,
                    "traits": {"topic_subscriptions": {newsletter: True}},
                }
            ]
        },
        headers=api.track,
    )
    assert again.status_code == 202, again.text
    subscriptions = (await contact_out(api, contact_id))["subscriptions"]
    assert (subscriptions[newsletter], subscriptions[promotions]) == (True, True)


async def test_an_unknown_topic_in_identify_is_422_naming_it_and_stores_nothing(
    api: Api, engine_db: Database
):
    newsletter = await define(api)
    contact_id = h.unique("bad")

    single = await api.http.post(
        "/v1/identify",
        json={"userId": contact_id, "traits": {"topic_subscriptions": {"nope": True}}},
        headers=api.track,
    )
    batch = await api.http.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "track", "userId": contact_id, "event": "Signed Up"},
                {
                    "type": "identify",
                    "userId": contact_id,
                    "traits": {"topic_subscriptions": {newsletter: "yes", "nope": False}},
                },
            ]
        },
        headers=api.track,
    )
    not_a_mapping = await api.http.post(
        "/v1/identify",
        json={"userId": contact_id, "traits": {"topic_subscriptions": [newsletter]}},
        headers=api.track,
    )

    assert single.status_code == 422
    assert single.json()["detail"] == [
        {"path": "$.traits.topic_subscriptions.nope", "message": "unknown topic 'nope'"}
    ]
    assert batch.status_code == 422
    assert batch.json()["detail"] == [
        {
            "path": f"$.batch[1].traits.topic_subscriptions.{newsletter}",
            "message": "true (subscribed) or false (unsubscribed)",
        },
        {"path": "$.batch[1].traits.topic_subscriptions.nope", "message": "unknown topic 'nope'"},
    ]
    assert not_a_mapping.status_code == 422
    assert not_a_mapping.json()["detail"][0]["path"] == "$.traits.topic_subscriptions"
    assert sw.reload(engine_db, Contact, contact_id) is None
    assert sw.stored_events(engine_db, contact_id) == []


async def test_patch_sets_some_topics_and_refuses_unknown_ones(api: Api, engine_db: Database):
    newsletter, promotions = await define(api), await define(api, "opt_in")
    contact_id = h.contact(engine_db)
    url = f"/v1/contacts/{contact_id}/topics"

    changed = await api.http.patch(url, json={promotions: True}, headers=api.admin)
    unknown = await api.http.patch(url, json={"nope": False}, headers=api.admin)
    nobody = await api.http.patch(
        f"/v1/contacts/{h.unique('nobody')}/topics", json={newsletter: False}, headers=api.admin
    )

    assert changed.status_code == 200, changed.text
    subscriptions = changed.json()["subscriptions"]
    assert (subscriptions[newsletter], subscriptions[promotions]) == (True, True)
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == [{"path": "$.nope", "message": "unknown topic 'nope'"}]
    assert nobody.status_code == 404
    [event] = sw.stored_events(engine_db, contact_id)
    assert (event.name, event.properties) == (
        "topic.subscribed",
        {"topic": promotions, "source": "api"},
    )


async def test_topics_are_a_resource_and_a_topic_in_use_cannot_be_deleted(
    api: Api, engine_db: Database
):
    key = await define(api, name="Product news")
    h.template(engine_db, "topic-api-mail", subject="Hi", text="Hi")

    renamed = await api.http.put(
        f"/v1/topics/{key}",
        json={"name": "Product updates", "description": "Once a month", "type": "opt_in"},
        headers=api.admin,
    )
    listed = await api.http.get("/v1/topics", headers=api.admin)
    bad_type = await api.http.put(
        f"/v1/topics/{key}", json={"name": "X", "type": "maybe"}, headers=api.admin
    )
    bad_key = await api.http.put("/v1/topics/Not A Key", json={"name": "X"}, headers=api.admin)

    assert renamed.status_code == 200
    assert {k: renamed.json()[k] for k in ("key", "name", "description", "type")} == {
        "key": key,
        "name": "Product updates",
        "description": "Once a month",
        "type": "opt_in",
    }
    assert key in [t["key"] for t in listed.json()]
    assert bad_type.status_code == 422 and bad_type.json()["detail"][0]["path"] == "$.type"
    assert bad_key.status_code == 422

    journey = h.unique("topic-journey")
    document = {
        "key": journey,
        "name": "Topic journey",
        "trigger": {"event": "signed_up"},
        "steps": [
            {"id": "mail", "send": {"channel": "email", "template": "topic-api-mail", "topic": "x"}}
        ],
    }
    unknown = await api.http.put(f"/v1/journeys/{journey}", json=document, headers=api.admin)
    assert unknown.status_code == 422
    assert unknown.json()["detail"] == [
        {"path": "$.steps[0].send.topic", "message": "unknown topic 'x'"}
    ]
    document["steps"][0]["send"]["topic"] = key
    saved = await api.http.put(f"/v1/journeys/{journey}", json=document, headers=api.admin)
    assert saved.status_code == 200, saved.text
    published = await api.http.post(f"/v1/journeys/{journey}/publish", headers=api.admin)
    assert published.status_code == 200, published.text

    in_use = await api.http.delete(f"/v1/topics/{key}", headers=api.admin)
    assert in_use.status_code == 409
    assert journey in in_use.json()["detail"]

    unused = await define(api)
    assert (await api.http.delete(f"/v1/topics/{unused}", headers=api.admin)).status_code == 204
    assert (await api.http.get(f"/v1/topics/{unused}", headers=api.admin)).status_code == 404
    assert (await api.http.get("/v1/topics", headers=api.track)).status_code in (401, 403)


async def test_erasure_removes_the_contacts_topic_choices(api: Api, engine_db: Database):
    newsletter = await define(api)
    contact_id = h.contact(engine_db)
    await api.http.patch(
        f"/v1/contacts/{contact_id}/topics", json={newsletter: False}, headers=api.admin
    )

    erased = await api.http.delete(f"/v1/contacts/{contact_id}", headers=api.admin)

    assert erased.status_code == 200, erased.text
    assert erased.json()["rows_deleted"]["topics"] == 1
    with engine_db.transaction() as session:
        assert topics_store.choices_of(session, contact_id) == {}
