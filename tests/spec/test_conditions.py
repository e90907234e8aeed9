"""Conditions evaluate over recorded data, never raising for missing or mismatched values."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter

from journeys.conditions import Condition, History, evaluate, history_conditions

parse = TypeAdapter(Condition).validate_python
CONTEXT = {
    "contact": {"plan": "pro", "age": 31, "email": "a@example.com"},
    "tags": ["vip", "newsletter"],
    "scores": {"lead": 40},
    "trigger": {"cart_value": 120},
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "contact.plan", "eq": "pro"}, True),
        ({"field": "contact.plan", "ne": "pro"}, False),
        ({"field": "scores.lead", "gt": 39}, True),
        ({"field": "scores.lead", "gte": 40}, True),
        ({"field": "scores.lead", "lt": 40}, False),
        ({"field": "scores.lead", "lte": 40}, True),
        ({"field": "contact.plan", "in": ["pro", "team"]}, True),
        ({"field": "tags", "contains": "vip"}, True),
        ({"field": "contact.email", "contains": "@example"}, True),
        ({"field": "contact.phone", "exists": False}, True),
        ({"field": "contact.nothing.deeper", "eq": None}, True),
        ({"field": "contact.plan", "gt": 3}, False),
        ({"field": "contact.missing", "gte": 1}, False),
        (
            {
                "all": [
                    {"field": "tags", "contains": "vip"},
                    {"field": "trigger.cart_value", "gt": 100},
                ]
            },
            True,
        ),
        ({"any": [{"field": "tags", "contains": "x"}, {"field": "contact.age", "lt": 18}]}, False),
        ({"not": {"field": "tags", "contains": "x"}}, True),
    ],
)
def test_comparisons(condition: dict, expected: bool):
    assert evaluate(parse(condition), CONTEXT) is expected


def test_seen_matches_buffered_events_with_their_properties():
    seen = [{"name": "page.viewed", "properties": {"path": "/pricing"}}]
    condition = parse({"seen": "page.viewed", "where": {"field": "event.path", "eq": "/pricing"}})
    assert evaluate(condition, CONTEXT, seen=seen)
    assert not evaluate(parse({"seen": "order.completed"}), CONTEXT, seen=seen)


def test_history_counts_come_from_the_answers_given():
    condition = parse({"all": [{"event": "order.completed", "within": "P30D", "min": 2}]})
    [query] = history_conditions(condition)
    assert isinstance(query, History)
    assert evaluate(condition, CONTEXT, history={query.cache_key(): 2})
    assert not evaluate(condition, CONTEXT, history={query.cache_key(): 1})
    with pytest.raises(KeyError):
        evaluate(condition, CONTEXT, history={})


def test_history_without_bounds_means_at_least_one():
    condition = parse({"event": "order.completed"})
    assert condition.min == 1
