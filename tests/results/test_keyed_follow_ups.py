"""Keyed follow-ups (issue 17, item 1): in a journey keyed by `correlate: cart_id`, an event
carrying `cart_id` concerns only the run of that cart; one without it concerns every run of the
contact. Events take the production path: `/v1/track`, the outbox, the relay."""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from temporal_journeys.api.services.routing import Router, concerns
from temporal_journeys.journeys.conditions import Compare, evaluate
from temporal_journeys.journeys.records import JourneyEvent
from temporal_journeys.journeys.spec import Journey
from temporal_journeys.store.db import Database
from temporal_journeys.store.models import Enrollment
from tests.support import harness as h
from tests.support.api import Api


def two_cart_journey(key: str, goal_where: dict | None = None) -> dict:
    goal: dict = {"event": f"{key}.ordered"}
    if goal_where is not None:
        goal["where"] = goal_where
    return {
        "name": "Two carts",
        "trigger": {"event": f"{key}.abandoned", "correlate": "cart_id"},
        "re_entry": "always",
        "goal": goal,
        "steps": [
            {"id": "wait-1h", "wait": "PT1H"},
            {"id": "reminder", "send": {"channel": "email", "template": "results-cart"}},
            {"id": "wait-1d", "wait": "P1D"},
            {"id": "last-call", "send": {"channel": "email", "template": "results-cart"}},
        ],
    }


async def publish(api: Api, spec: dict, key: str) -> None:
    template = {"channel": "email", "subject": "Your cart {{ event.cart_id }}", "text": "Back?"}
    response = await api.http.put("/v1/templates/results-cart", json=template, headers=api.admin)
    assert response.status_code == 200, response.text
    response = await api.http.put(f"/v1/journeys/{key}", json=spec, headers=api.admin)
    assert response.status_code == 200, response.text
    response = await api.http.post(f"/v1/journeys/{key}/publish", headers=api.admin)
    assert response.status_code == 200, response.text


async def track(api: Api, user: str, event: str, **properties: object) -> None:
    body = {
        "userId": user,
        "event": event,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
    }
    response = await api.http.post("/v1/track", json=body, headers=api.track)
    assert response.status_code == 202, response.text


def steps_of(db: Database, key: str) -> dict[str | None, str | None]:
    """Each run's correlation -> the step its enrollment row says it is on."""
    with db.transaction() as session:
        rows = session.query(Enrollment).filter_by(journey_key=key).all()
        return {row.correlation: row.current_step for row in rows}


async def two_carts_waiting(api: Api, key: str) -> str:
    user = h.unique("shopper")
    identify = {"userId": user, "traits": {"email": f"{user}@example.com"}}
    response = await api.http.post("/v1/identify", json=identify, headers=api.track)
    assert response.status_code == 202
    await track(api, user, f"{key}.abandoned", cart_id="a1")
    await track(api, user, f"{key}.abandoned", cart_id="a2")
    await api.relay()
    db = api.app.state.db
    await h.wait_until(
        lambda: steps_of(db, key) == {"a1": "wait-1h", "a2": "wait-1h"}, "both carts waiting"
    )
    return user


def sent_by_cart(db: Database, user: str, key: str) -> dict[str, list[str | None]]:
    names = h.suite_names()
    found: dict[str, list[str | None]] = {"a1": [], "a2": []}
    for message in h.messages(db, user):
        for cart in found:
            if message.workflow_id == names.workflow_id(key, user, cart):
                found[cart].append(message.step_id)
    return found


async def test_an_order_for_cart_a1_converts_a1_only_and_a2_sends_its_reminders(
    api: Api, client: Client, time_env: WorkflowEnvironment, engine_db: Database
):
    key = h.unique("two-carts")
    await publish(api, two_cart_journey(key), key)
    user = await two_carts_waiting(api, key)

    await track(api, user, f"{key}.ordered", cart_id="a1")
    await api.relay()
    names = h.suite_names()
    a1 = client.get_workflow_handle(names.workflow_id(key, user, "a1"))
    a2 = client.get_workflow_handle(names.workflow_id(key, user, "a2"))
    first, first_view = await h.finish(a1, time_env)
    second, second_view = await h.finish(a2, time_env)

    assert (first.status, first.reason) == ("converted", f"goal {key}.ordered")
    assert second.status == "completed"
    assert [e.step for e in h.at(second_view, "sent")] == ["reminder", "last-call"]
    assert sent_by_cart(engine_db, user, key) == {"a1": [], "a2": ["reminder", "last-call"]}
    assert not h.at(first_view, "sent")


async def test_an_order_without_a_cart_id_converts_every_cart_of_the_contact(
    api: Api, client: Client, time_env: WorkflowEnvironment, engine_db: Database
):
    key = h.unique("two-carts")
    await publish(api, two_cart_journey(key), key)
    user = await two_carts_waiting(api, key)

    await track(api, user, f"{key}.ordered", total=42)
    await api.relay()
    names = h.suite_names()
    results = [
        await h.finish(client.get_workflow_handle(names.workflow_id(key, user, cart)), time_env)
        for cart in ("a1", "a2")
    ]

    assert [result.status for result, _ in results] == ["converted", "converted"]
    assert sent_by_cart(engine_db, user, key) == {"a1": [], "a2": []}


async def test_a_goal_may_compare_the_event_with_the_trigger(
    api: Api, client: Client, time_env: WorkflowEnvironment, engine_db: Database
):
    """`{field: event.cart_id, eq: {field: trigger.cart_id}}`: an order without a cart id
    then converts no cart (the condition asks for the same cart), one for a2 converts a2."""
    key = h.unique("two-carts")
    same_cart = {"field": "event.cart_id", "eq": {"field": "trigger.cart_id"}}
    await publish(api, two_cart_journey(key, goal_where=same_cart), key)
    user = await two_carts_waiting(api, key)

    await track(api, user, f"{key}.ordered", total=42)  # reaches both runs, converts neither
    await track(api, user, f"{key}.ordered", cart_id="a2")
    await api.relay()
    names = h.suite_names()
    a1, _ = await h.finish(client.get_workflow_handle(names.workflow_id(key, user, "a1")), time_env)
    a2, _ = await h.finish(client.get_workflow_handle(names.workflow_id(key, user, "a2")), time_env)

    assert (a1.status, a2.status) == ("completed", "converted")
    assert sent_by_cart(engine_db, user, key) == {"a1": ["reminder", "last-call"], "a2": []}


def test_routing_sends_a_keyed_event_to_its_run_only():
    journey = Journey.model_validate({"key": "cart", **two_cart_journey("cart")})
    router = Router([(1, journey)])
    keyed = JourneyEvent(id="1", name="cart.ordered", properties={"cart_id": "a1"})
    unkeyed = JourneyEvent(id="2", name="cart.ordered", properties={"total": 3})
    empty = JourneyEvent(id="3", name="cart.ordered", properties={"cart_id": ""})
    numeric = JourneyEvent(id="4", name="cart.ordered", properties={"cart_id": 7})

    assert router.wants(journey, 1, keyed, "a1")
    assert not router.wants(journey, 1, keyed, "a2")
    assert router.wants(journey, 1, unkeyed, "a1") and router.wants(journey, 1, unkeyed, "a2")
    assert router.wants(journey, 1, empty, "a2")  # an empty key is no key, as at the start
    assert concerns(journey, "7", numeric) and not concerns(journey, "8", numeric)
    assert not router.wants(journey, 1, JourneyEvent(id="5", name="other"), "a1")


def test_a_field_reference_compares_two_fields_and_a_missing_one_never_matches():
    same = Compare.model_validate({"field": "event.cart_id", "eq": {"field": "trigger.cart_id"}})
    other = Compare.model_validate({"field": "event.cart_id", "ne": {"field": "trigger.cart_id"}})
    more = Compare.model_validate({"field": "event.total", "gt": {"field": "trigger.total"}})

    assert evaluate(same, {"event": {"cart_id": "a1"}, "trigger": {"cart_id": "a1"}})
    assert not evaluate(same, {"event": {"cart_id": "a1"}, "trigger": {"cart_id": "a2"}})
    assert not evaluate(same, {"event": {}, "trigger": {}})  # two absent ids are not one cart
    assert evaluate(other, {"event": {"cart_id": "a1"}, "trigger": {"cart_id": "a2"}})
    assert evaluate(more, {"event": {"total": 5}, "trigger": {"total": 3}})
    assert same.model_dump() == {"field": "event.cart_id", "eq": {"field": "trigger.cart_id"}}
