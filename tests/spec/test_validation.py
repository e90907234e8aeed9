"""Each kind of invalid journey document names its JSON path and says what is wrong."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from journeys.validation import SpecInvalid, parse_journey

CART = {
    "key": "abandoned-cart",
    "name": "Abandoned cart recovery",
    "trigger": {"event": "cart.abandoned", "correlate": "cart_id"},
    "re_entry": {"after": "P7D"},
    "goal": {"event": "order.completed"},
    "exit_on": [{"event": "contact.unsubscribed"}],
    "quiet_hours": {"start": "21:00", "end": "08:00"},
    "steps": [
        {"id": "wait-1h", "wait": "PT1H"},
        {"id": "reminder", "send": {"channel": "email", "template": "cart-reminder"}},
        {
            "id": "opened?",
            "wait_for": {"event": "email.opened", "message": "reminder", "timeout": "P1D"},
            "on_timeout": "discount",
            "next": "done",
        },
        {
            "id": "discount",
            "send": {"channel": "email", "template": "cart-discount", "data": {"code": "SAVE10"}},
        },
        {"id": "wait-3d", "wait": "P3D"},
        {"id": "last-chance", "send": {"channel": "email", "template": "cart-last-chance"}},
        {"id": "done", "exit": {}},
    ],
}


def with_steps(*steps: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"key": "k", "name": "K", "trigger": {"event": "e"}, "steps": list(steps), **top}


def problems(document: Any, **known: Any) -> list[tuple[str, str]]:
    with pytest.raises(SpecInvalid) as invalid:
        parse_journey(document, **known)
    return [(p.path, p.message) for p in invalid.value.problems]


def only(document: Any, **known: Any) -> tuple[str, str]:
    found = problems(document, **known)
    assert len(found) == 1, found
    return found[0]


def test_the_design_example_parses_and_round_trips_through_json():
    journey = parse_journey(CART)
    assert parse_journey(journey.model_dump(mode="json")) == journey
    assert type(journey).model_validate_json(journey.model_dump_json()) == journey


def test_json_text_and_yaml_text_both_load():
    import json

    import yaml

    assert parse_journey(json.dumps(CART)) == parse_journey(yaml.safe_dump(CART))


@pytest.mark.parametrize(
    ("field", "path"),
    [("next", "$.steps[0].next"), ("on_timeout", "$.steps[0].on_timeout")],
)
def test_unknown_target_of_wait_for(field: str, path: str):
    step = {"id": "w", "wait_for": {"event": "x", "timeout": "PT1H"}, field: "nowhere"}
    assert only(with_steps(step)) == (path, "unknown step 'nowhere'")


def test_unknown_on_failure_target():
    step = {"id": "s", "send": {"channel": "email", "template": "t"}, "on_failure": "gone"}
    assert only(with_steps(step)) == ("$.steps[0].on_failure", "unknown step 'gone'")


def test_unknown_branch_targets():
    branch = {
        "cases": [{"when": {"field": "tags", "contains": "vip"}, "next": "a"}],
        "default": "b",
    }
    found = problems(with_steps({"id": "x", "branch": branch}))
    assert ("$.steps[0].branch.cases[0].next", "unknown step 'a'") in found
    assert ("$.steps[0].branch.default", "unknown step 'b'") in found


def test_unknown_split_variant_target():
    split = {"variants": [{"name": "a", "weight": 1, "next": "zz"}]}
    assert only(
        with_steps(
            {"id": "x", "split": split},
        )
    ) == (
        "$.steps[0].split.variants[0].next",
        "unknown step 'zz'",
    )


def test_duplicate_step_id():
    steps = [{"id": "a", "wait": "PT1H"}, {"id": "a", "wait": "PT2H"}]
    assert ("$.steps[1].id", "duplicate step id 'a'") in problems(with_steps(*steps))


def test_unreachable_step():
    steps = [{"id": "a", "exit": {}}, {"id": "b", "wait": "PT1H"}]
    assert only(with_steps(*steps)) == ("$.steps[1]", "step 'b' can never be reached")


def test_loop_without_a_wait_is_rejected():
    steps = [
        {"id": "a", "update": {"add_tags": ["x"]}},
        {
            "id": "b",
            "branch": {"cases": [{"when": {"field": "tags", "contains": "x"}, "next": "a"}]},
        },
    ]
    path, message = only(with_steps(*steps))
    assert path == "$.steps[0]" and message.startswith("loop with no wait in it")


def test_loop_with_a_wait_is_accepted():
    steps = [
        {"id": "a", "wait_for": {"event": "page.viewed", "timeout": "P30D"}},
        {"id": "b", "update": {"score": {"lead": 5}}},
        {
            "id": "c",
            "branch": {"cases": [{"when": {"field": "scores.lead", "lt": 50}, "next": "a"}]},
        },
    ]
    assert parse_journey(with_steps(*steps)).steps[2].id == "c"


def test_unknown_template_when_templates_are_known():
    document = with_steps({"id": "s", "send": {"channel": "email", "template": "nope"}})
    assert only(document, templates=["welcome"]) == (
        "$.steps[0].send.template",
        "unknown template 'nope'",
    )


def test_unknown_channel():
    path, message = only(with_steps({"id": "s", "send": {"channel": "fax", "template": "t"}}))
    assert path == "$.steps[0].send.channel" and "'email', 'sms' or 'webhook'" in message


@pytest.mark.parametrize("duration", ["PT0S", "P4000D"])
def test_duration_out_of_range(duration: str):
    path, message = only(with_steps({"id": "w", "wait": duration}))
    assert path == "$.steps[0].wait" and "out of range" in message


@pytest.mark.parametrize("duration", ["1 hour", "P1M", "P1Y", "PT"])
def test_unparseable_durations(duration: str):
    path, message = only(with_steps({"id": "w", "wait_for": {"event": "e", "timeout": duration}}))
    assert path == "$.steps[0].wait_for.timeout" and "ISO 8601" in message


def test_bad_clock_time():
    path, message = only(with_steps({"id": "w", "wait": {"until": "25:00"}}))
    assert path == "$.steps[0].wait.until" and "HH:MM" in message


@pytest.mark.parametrize(
    "step", [{"id": "x", "wait": "PT1H", "exit": {}}, {"id": "x", "next": "y"}]
)
def test_a_step_needs_exactly_one_kind(step: dict):
    path, message = only(with_steps(step))
    assert path == "$.steps[0]" and "exactly one kind key" in message


@pytest.mark.parametrize("when", [{"field": "x", "eq": 1, "ne": 2}, {"field": "x"}])
def test_a_comparison_needs_exactly_one_operator(when: dict):
    branch = {"cases": [{"when": when, "next": "x"}]}
    path, message = only(
        with_steps({"id": "x", "wait": "PT1H", "next": "b"}, {"id": "b", "branch": branch})
    )
    assert path == "$.steps[1].branch.cases[0].when" and "exactly one operator" in message


def test_wait_for_message_must_name_a_send_step():
    steps = [
        {"id": "a", "wait": "PT1H"},
        {"id": "b", "wait_for": {"event": "e", "message": "a", "timeout": "P1D"}},
    ]
    assert only(with_steps(*steps)) == (
        "$.steps[1].wait_for.message",
        "'a' is not a send step of this journey",
    )


def test_enter_cannot_name_its_own_journey():
    assert only(with_steps({"id": "x", "enter": {"journey": "k"}})) == (
        "$.steps[0].enter.journey",
        "a journey cannot enter itself",
    )


def test_enter_must_name_a_known_journey_when_journeys_are_known():
    assert only(with_steps({"id": "x", "enter": {"journey": "other"}}), journeys=["welcome"]) == (
        "$.steps[0].enter.journey",
        "unknown journey 'other'",
    )


@pytest.mark.parametrize("kind", ["segment", "schedule", "date_attribute"])
def test_later_trigger_kinds_are_rejected_as_not_yet_supported(kind: str):
    document = with_steps({"id": "x", "exit": {}})
    document["trigger"] = {kind: "anything"}
    path, message = only(document)
    assert path == "$" and f"trigger kind `{kind}` is not yet supported" in message


def test_unknown_fields_are_named():
    document = copy.deepcopy(CART)
    document["steps"][1]["send"]["subjct"] = "typo"
    document["colour"] = "blue"
    found = problems(document)
    assert ("$.steps[1].send.subjct", "Extra inputs are not permitted") in found
    assert ("$.colour", "Extra inputs are not permitted") in found


def test_history_conditions_are_only_for_branches():
    document = with_steps({"id": "x", "exit": {}})
    document["goal"] = {"event": "order.completed", "where": {"event": "order.completed", "min": 2}}
    assert only(document) == (
        "$.goal.where",
        "event history conditions are allowed in branch cases only",
    )


def test_a_document_must_be_a_mapping():
    assert only(["not", "a", "journey"])[0] == "$"


def test_invalid_yaml_text():
    path, message = only("key: [unclosed")
    assert path == "$" and message.startswith("not valid YAML or JSON")
