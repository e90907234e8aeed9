"""Conditions evaluate over recorded data, never raising for missing or mismatched values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from temporal_journeys.journeys.conditions import (
    Condition,
    History,
    evaluate,
    history_conditions,
    lookup,
)

adapter = TypeAdapter(Condition)
parse = adapter.validate_python
CONTEXT: dict[str, Any] = {
    "contact": {"plan": "pro", "age": 31, "email": "a@example.com", "prefs": {"lang": "sv"}},
    "tags": ["vip", "newsletter"],
    "scores": {"lead": 40},
    "trigger": {"cart_value": 120, "items": [{"sku": "a"}]},
    "variant": "b",
}


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"field": "contact.plan", "eq": "pro"}, True),
        ({"field": "contact.plan", "eq": "team"}, False),
        ({"field": "contact.prefs.lang", "eq": "sv"}, True),
        ({"field": "contact.plan", "ne": "pro"}, False),
        ({"field": "contact.plan", "ne": "team"}, True),
        ({"field": "scores.lead", "gt": 39}, True),
        ({"field": "scores.lead", "gt": 40}, False),
        ({"field": "scores.lead", "gte": 40}, True),
        ({"field": "scores.lead", "gte": 41}, False),
        ({"field": "scores.lead", "lt": 41}, True),
        ({"field": "scores.lead", "lt": 40}, False),
        ({"field": "scores.lead", "lte": 40}, True),
        ({"field": "scores.lead", "lte": 39}, False),
        ({"field": "contact.plan", "in": ["pro", "team"]}, True),
        ({"field": "contact.plan", "in": ["free"]}, False),
        ({"field": "tags", "contains": "vip"}, True),
        ({"field": "tags", "contains": "churned"}, False),
        ({"field": "contact.email", "contains": "@example"}, True),
        ({"field": "contact.prefs", "contains": "lang"}, True),
        ({"field": "contact.email", "exists": True}, True),
        ({"field": "contact.phone", "exists": True}, False),
        ({"field": "contact.phone", "exists": False}, True),
        ({"field": "variant", "eq": "b"}, True),
        ({"field": "trigger.cart_value", "gt": 99.5}, True),
    ],
)
def test_every_operator(condition: dict[str, Any], expected: bool):
    assert evaluate(parse(condition), CONTEXT) is expected


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "contact.missing", "eq": "x"},
        {"field": "contact.missing", "gt": 1},
        {"field": "contact.missing", "gte": 1},
        {"field": "contact.missing", "lt": 1},
        {"field": "contact.missing", "lte": 1},
        {"field": "contact.missing", "in": ["x"]},
        {"field": "contact.missing", "contains": "x"},
        {"field": "contact.missing", "exists": True},
        {"field": "nothing.at.all", "eq": 0},
        {"field": "contact.plan.deeper", "eq": "pro"},  # through a string: missing
        {"field": "trigger.items.0.sku", "eq": "a"},  # lists are not indexed
    ],
)
def test_missing_fields_are_false_not_errors(condition: dict[str, Any]):
    assert evaluate(parse(condition), CONTEXT) is False


def test_a_missing_field_is_none_for_eq_ne_and_exists():
    # `ne` is the negation of `eq`: a missing value is not equal to anything but null.
    assert evaluate(parse({"field": "contact.missing", "ne": "x"}), CONTEXT) is True
    assert evaluate(parse({"field": "contact.missing", "eq": None}), CONTEXT) is True
    assert evaluate(parse({"field": "contact.missing", "exists": False}), CONTEXT) is True
    assert lookup(CONTEXT, "contact.missing") is None


@pytest.mark.parametrize(
    "condition",
    [
        {"field": "contact.plan", "gt": 3},  # str > int
        {"field": "scores.lead", "lt": "50"},  # int < str
        {"field": "scores.lead", "eq": "40"},
        {"field": "contact.email", "contains": 5},  # int in str
        {"field": "contact.prefs", "contains": ["lang"]},  # unhashable in dict
        {"field": "scores.lead", "contains": 4},  # a number contains nothing
        {"field": "tags", "in": ["vip"]},  # a list is not in a list of strings
        {"field": "contact.prefs", "gt": {"lang": "a"}},
    ],
)
def test_type_mismatches_are_false_not_errors(condition: dict[str, Any]):
    assert evaluate(parse(condition), CONTEXT) is False


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"all": [{"field": "tags", "contains": "vip"}, {"field": "scores.lead", "gt": 30}]}, True),
        (
            {"all": [{"field": "tags", "contains": "vip"}, {"field": "scores.lead", "gt": 50}]},
            False,
        ),
        ({"any": [{"field": "tags", "contains": "x"}, {"field": "contact.age", "lt": 18}]}, False),
        ({"any": [{"field": "tags", "contains": "x"}, {"field": "contact.age", "gt": 18}]}, True),
        ({"not": {"field": "tags", "contains": "x"}}, True),
        ({"not": {"field": "tags", "contains": "vip"}}, False),
        ({"not": {"any": [{"all": [{"field": "variant", "eq": "b"}]}]}}, False),
        ({"not": {"field": "contact.missing", "gt": 1}}, True),
    ],
)
def test_all_any_not(condition: dict[str, Any], expected: bool):
    assert evaluate(parse(condition), CONTEXT) is expected


SEEN = [
    {"name": "page.viewed", "properties": {"path": "/pricing"}},
    {"name": "page.viewed", "properties": {"path": "/blog"}},
    {"name": "email.clicked"},  # no properties recorded
]


def test_seen_matches_buffered_events_with_their_properties():
    pricing = parse({"seen": "page.viewed", "where": {"field": "event.path", "eq": "/pricing"}})
    assert evaluate(pricing, CONTEXT, seen=SEEN)
    docs = parse({"seen": "page.viewed", "where": {"field": "event.path", "eq": "/docs"}})
    assert not evaluate(docs, CONTEXT, seen=SEEN)
    assert evaluate(parse({"seen": "email.clicked"}), CONTEXT, seen=SEEN)
    assert not evaluate(parse({"seen": "order.completed"}), CONTEXT, seen=SEEN)
    assert not evaluate(parse({"seen": "page.viewed"}), CONTEXT)  # nothing seen


def test_seen_where_can_use_the_rest_of_the_context():
    condition = parse(
        {
            "seen": "email.clicked",
            "where": {
                "all": [{"field": "event.link", "exists": False}, {"field": "variant", "eq": "b"}]
            },
        }
    )
    assert evaluate(condition, CONTEXT, seen=SEEN)


def test_history_counts_come_from_the_answers_given():
    condition = parse({"all": [{"event": "order.completed", "within": "P30D", "min": 2}]})
    [query] = history_conditions(condition)
    assert isinstance(query, History)
    assert evaluate(condition, CONTEXT, history={query.cache_key(): 2})
    assert evaluate(condition, CONTEXT, history={query.cache_key(): 9})
    assert not evaluate(condition, CONTEXT, history={query.cache_key(): 1})


def test_history_max_and_range():
    at_most = parse({"event": "email.bounced", "max": 0})
    [query] = history_conditions(at_most)
    assert evaluate(at_most, CONTEXT, history={query.cache_key(): 0})
    assert not evaluate(at_most, CONTEXT, history={query.cache_key(): 1})
    between = parse({"event": "order.completed", "min": 2, "max": 3})
    [query] = history_conditions(between)
    assert [evaluate(between, CONTEXT, history={query.cache_key(): n}) for n in range(5)] == [
        False,
        False,
        True,
        True,
        False,
    ]


def test_unanswered_history_is_a_key_error():
    condition = parse({"event": "order.completed", "within": "P30D"})
    with pytest.raises(KeyError, match="was not answered"):
        evaluate(condition, CONTEXT, history={})
    with pytest.raises(KeyError):
        evaluate(condition, CONTEXT)
    other = parse({"event": "order.completed", "within": "P7D"})
    [query] = history_conditions(other)
    with pytest.raises(KeyError):
        evaluate(condition, CONTEXT, history={query.cache_key(): 1})


def test_history_inside_seen_where_uses_the_answers():
    condition = parse(
        {"seen": "page.viewed", "where": {"not": {"event": "order.completed", "within": "P1D"}}}
    )
    [query] = history_conditions(condition)
    assert evaluate(condition, CONTEXT, history={query.cache_key(): 0}, seen=SEEN)
    assert not evaluate(condition, CONTEXT, history={query.cache_key(): 1}, seen=SEEN)


def test_history_without_bounds_means_at_least_one():
    condition = parse({"event": "order.completed"})
    assert condition.min == 1


def test_history_conditions_are_found_everywhere_once_in_order():
    condition = parse(
        {
            "any": [
                {"event": "b"},
                {"not": {"event": "a", "within": "P1D"}},
                {"all": [{"event": "b"}, {"field": "x", "eq": 1}]},
                {"seen": "s", "where": {"event": "c"}},
            ]
        }
    )
    assert [(q.event, q.within) for q in history_conditions(condition)] == [
        ("b", None),
        ("a", parse({"event": "a", "within": "P1D"}).within),
        ("c", None),
    ]
    assert history_conditions(parse({"field": "x", "eq": 1})) == []


def test_conditions_round_trip_through_json():
    for condition in (
        {"field": "x", "eq": None},
        {"field": "x", "in": [1, "a", None]},
        {"not": {"seen": "s", "where": {"field": "event.y", "exists": False}}},
        {"event": "order.completed", "within": "P30D", "min": 2},
        {"event": "order.completed", "within": "PT1.5S"},
    ):
        parsed = parse(condition)
        assert adapter.validate_json(adapter.dump_json(parsed)) == parsed
    assert adapter.dump_python(parse({"field": "x", "eq": None}), mode="json") == {
        "field": "x",
        "eq": None,
    }


def test_evaluate_refuses_what_is_not_a_condition():
    with pytest.raises(TypeError):
        evaluate({"field": "x", "eq": 1}, CONTEXT)


@pytest.mark.parametrize(
    "condition",
    [
        {"all": []},
        {"field": "x", "eq": 1, "ne": 2},
        {"field": "x"},
        {"event": "e", "within": "PT0S"},
        {"event": "e", "min": -1},
        {"seen": "s", "extra": 1},
        {},
    ],
)
def test_malformed_conditions_are_refused(condition: dict[str, Any]):
    with pytest.raises(ValidationError):
        parse(condition)
