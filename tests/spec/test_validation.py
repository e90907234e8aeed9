"""Each kind of invalid journey document names its JSON path and says what is wrong; valid ones
parse, and survive the JSON round trip into a workflow input unchanged."""

from __future__ import annotations

import copy
import json
from datetime import time, timedelta
from typing import Any

import pytest
import yaml

from temporal_journeys.journeys.durations import format_duration, parse_duration
from temporal_journeys.journeys.spec import Journey, SendStep, WaitForDate, WaitStep, WaitUntil
from temporal_journeys.journeys.validation import SpecInvalid, load_document, parse_journey
from tests.support.spec_documents import CART, CART_YAML, EVERYTHING


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


WAIT_1H = {"id": "w", "wait": "PT1H"}
EXIT = {"id": "end", "exit": {}}


# --- valid documents ------------------------------------------------------------------------


def test_the_design_example_parses_as_written():
    journey = parse_journey(CART_YAML)
    assert journey == parse_journey(CART)
    assert journey.re_entry.after == timedelta(days=7)  # type: ignore[union-attr]
    assert journey.quiet_hours is not None and journey.quiet_hours.start == time(21)
    assert [step.id for step in journey.steps][:3] == ["wait-1h", "reminder", "opened?"]
    assert isinstance(journey.steps[1], SendStep)
    assert journey.following("done") is None


def test_everything_parses_into_the_models():
    journey = parse_journey(EVERYTHING, templates=["welcome"], journeys=["reactivation"])
    pause, morning, eve = journey.steps[:3]
    assert isinstance(pause, WaitStep) and pause.wait == timedelta(seconds=1.5)
    assert isinstance(morning, WaitStep) and morning.wait == WaitUntil(
        until=time(9, 30), weekdays=["mon", "fri"]
    )
    assert isinstance(eve, WaitStep) and isinstance(eve.wait, WaitForDate)
    assert eve.wait.offset == -timedelta(days=1)


@pytest.mark.parametrize("document", [CART, EVERYTHING], ids=["cart", "everything"])
def test_a_spec_round_trips_through_json_unchanged(document: dict[str, Any]):
    journey = parse_journey(document)
    text = journey.model_dump_json()
    again = Journey.model_validate_json(text)
    assert again == journey
    assert again.model_dump_json() == text
    assert parse_journey(json.loads(text)) == journey
    assert parse_journey(journey.model_dump(mode="json")) == journey


@pytest.mark.parametrize("document", [CART, EVERYTHING], ids=["cart", "everything"])
def test_a_spec_round_trips_through_the_temporal_pydantic_converter(document: dict[str, Any]):
    converter = pytest.importorskip("temporalio.contrib.pydantic").pydantic_data_converter
    journey = parse_journey(document)
    payloads = converter.payload_converter.to_payloads([journey])
    [back] = converter.payload_converter.from_payloads(payloads, [Journey])
    assert back == journey


def test_json_text_and_yaml_text_both_load():
    assert parse_journey(json.dumps(CART)) == parse_journey(yaml.safe_dump(CART))
    assert parse_journey(json.dumps(CART).encode()) == parse_journey(CART)


def test_yaml_scalars_read_as_in_yaml_1_2():
    # PyYAML's YAML 1.1 would read NO as False, 21:00 as 1260 and the date as a date.
    document = load_document(
        "a: NO\nb: on\nc: 21:00\nd: 2026-01-01\ne: 017\nf: 1.5\ng: true\nh: ~\ni: -3\n"
    )
    assert document == {
        "a": "NO",
        "b": "on",
        "c": "21:00",
        "d": "2026-01-01",
        "e": "017",
        "f": 1.5,
        "g": True,
        "h": None,
        "i": -3,
    }
    journey = parse_journey(
        "key: k\nname: K\ntrigger: {event: e}\nquiet_hours: {start: 21:00, end: 08:00}\n"
        "steps:\n"
        "  - id: b\n"
        "    branch: {cases: [{when: {field: contact.country, in: [SE, NO]}, next: b2}]}\n"
        "  - id: b2\n"
        "    wait: {until: 10:30}\n"
    )
    assert journey.quiet_hours is not None and journey.quiet_hours.start == time(21)
    assert journey.steps[0].branch.cases[0].when.in_ == ["SE", "NO"]  # type: ignore[union-attr]


def test_a_loop_with_a_wait_is_accepted():
    steps = [
        {"id": "a", "wait_for": {"event": "page.viewed", "timeout": "P30D"}},
        {"id": "b", "update": {"score": {"lead": 5}}},
        {
            "id": "c",
            "branch": {"cases": [{"when": {"field": "scores.lead", "lt": 50}, "next": "a"}]},
        },
    ]
    assert parse_journey(with_steps(*steps)).steps[2].id == "c"


def test_known_templates_and_journeys_pass():
    document = with_steps(
        {"id": "s", "send": {"channel": "sms", "template": "hi"}},
        {"id": "x", "enter": {"journey": "other"}},
    )
    assert parse_journey(document, templates=["hi"], journeys=["other", "k"])


def test_api_trigger_and_re_entry_forms():
    for re_entry in ("never", "always", {"after": "P1D"}):
        journey = parse_journey(with_steps(EXIT, trigger={"api": True}, re_entry=re_entry))
        assert journey.model_dump(mode="json")["re_entry"] == re_entry


# --- unknown step targets -------------------------------------------------------------------


def test_unknown_next():
    assert only(with_steps({"id": "w", "wait": "PT1H", "next": "nowhere"})) == (
        "$.steps[0].next",
        "unknown step 'nowhere'",
    )


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


def test_unknown_branch_case_target():
    branch = {"cases": [{"when": {"field": "tags", "contains": "vip"}, "next": "a"}]}
    assert only(with_steps({"id": "x", "branch": branch})) == (
        "$.steps[0].branch.cases[0].next",
        "unknown step 'a'",
    )


def test_unknown_branch_default():
    branch = {
        "cases": [{"when": {"field": "tags", "contains": "vip"}, "next": "end"}],
        "default": "b",
    }
    assert only(with_steps({"id": "x", "branch": branch}, EXIT)) == (
        "$.steps[0].branch.default",
        "unknown step 'b'",
    )


def test_a_branch_without_default_goes_to_its_next_like_the_interpreter():
    branch = {"cases": [{"when": {"field": "tags", "contains": "vip"}, "next": "end"}]}
    assert only(with_steps({"id": "x", "branch": branch, "next": "gone"}, EXIT)) == (
        "$.steps[0].next",
        "unknown step 'gone'",
    )
    # And `next` makes its target reachable.
    steps = [{"id": "x", "branch": branch, "next": "later"}, EXIT, {"id": "later", "exit": {}}]
    assert parse_journey(with_steps(*steps))


def test_unknown_split_variant_target():
    split = {"variants": [{"name": "a", "weight": 1, "next": "zz"}]}
    assert only(with_steps({"id": "x", "split": split})) == (
        "$.steps[0].split.variants[0].next",
        "unknown step 'zz'",
    )


def test_unknown_split_holdout_target():
    split = {"variants": [{"name": "a", "weight": 1}], "holdout": {"weight": 1, "next": "zz"}}
    assert only(with_steps({"id": "x", "split": split})) == (
        "$.steps[0].split.holdout.next",
        "unknown step 'zz'",
    )


def test_unknown_split_next_for_variants_without_their_own():
    split = {"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}
    assert only(with_steps({"id": "x", "split": split, "next": "zz"})) == (
        "$.steps[0].next",
        "unknown step 'zz'",
    )


def test_split_variant_names():
    twice = {"variants": [{"name": "a", "weight": 1}, {"name": "a", "weight": 1}]}
    assert only(with_steps({"id": "x", "split": twice})) == (
        "$.steps[0].split.variants",
        "variant names must be unique",
    )
    reserved = {"variants": [{"name": "holdout", "weight": 1}]}
    path, message = only(with_steps({"id": "x", "split": reserved}))
    assert path == "$.steps[0].split.variants[0].name" and "names the holdout share" in message


# --- graph shape ----------------------------------------------------------------------------


def test_duplicate_step_id():
    steps = [{"id": "a", "wait": "PT1H"}, {"id": "a", "wait": "PT2H"}]
    assert only(with_steps(*steps)) == ("$.steps[1].id", "duplicate step id 'a'")


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
    assert only(with_steps(*steps)) == ("$.steps[0]", "loop with no wait in it: a -> b -> a")


def test_a_step_that_loops_to_itself():
    step = {"id": "a", "update": {"add_tags": ["x"]}, "next": "a"}
    assert only(with_steps(step)) == ("$.steps[0]", "loop with no wait in it: a -> a")


def test_each_loop_is_reported_once_at_its_first_step():
    branch = {"cases": [{"when": {"field": "x", "eq": 1}, "next": "a"}], "default": "c"}
    steps = [
        WAIT_1H,
        {"id": "a", "update": {"add_tags": ["x"]}},
        {"id": "b", "branch": branch},
        {"id": "c", "update": {"add_tags": ["y"]}, "next": "b"},
    ]
    # a -> b -> a and b -> c -> b are one tangle of instant steps: one problem, at `a`.
    assert only(with_steps(*steps)) == ("$.steps[1]", "loop with no wait in it: a -> b -> a")


def test_loop_checks_stay_fast_on_many_converging_branches():
    # Every step offers three ways to the next one: 3**40 paths, one linear-time check.
    steps = []
    for n in range(40):
        target = f"s{n + 1}" if n < 39 else "s0"
        cases = [{"when": {"field": "x", "eq": k}, "next": target} for k in range(2)]
        steps.append({"id": f"s{n}", "branch": {"cases": cases, "default": target}})
    path, message = only(with_steps(*steps))
    assert path == "$.steps[0]" and message.endswith("s38 -> s39 -> s0")


# --- step contents --------------------------------------------------------------------------


def test_unknown_template_when_templates_are_known():
    document = with_steps({"id": "s", "send": {"channel": "email", "template": "nope"}})
    assert only(document, templates=["welcome"]) == (
        "$.steps[0].send.template",
        "unknown template 'nope'",
    )


def test_unknown_channel():
    path, message = only(with_steps({"id": "s", "send": {"channel": "fax", "template": "t"}}))
    assert path == "$.steps[0].send.channel"
    assert "'email', 'sms', 'webhook', 'push' or 'whatsapp'" in message


@pytest.mark.parametrize("duration", ["PT0S", "P4000D", "-PT1H"])
def test_duration_out_of_range(duration: str):
    path, message = only(with_steps({"id": "w", "wait": duration}))
    assert path == "$.steps[0].wait" and "out of range (PT1S to P3660D)" in message


def test_offset_out_of_range():
    wait = {"date_attribute": "birthday", "offset": "-P400D"}
    path, message = only(with_steps({"id": "w", "wait": wait}))
    assert path == "$.steps[0].wait.offset" and "out of range (at most P366D)" in message


@pytest.mark.parametrize("duration", ["1 hour", "P1M", "P1Y", "PT", "P1DT", "60"])
def test_unparseable_durations(duration: str):
    path, message = only(with_steps({"id": "w", "wait_for": {"event": "e", "timeout": duration}}))
    assert path == "$.steps[0].wait_for.timeout" and "ISO 8601" in message


def test_months_are_refused_with_the_reason():
    _, message = only(with_steps({"id": "w", "wait": "P1M"}))
    assert "years and months are not allowed" in message


@pytest.mark.parametrize(
    ("wait", "path"),
    [({"until": "25:00"}, "$.steps[0].wait.until"), ({"until": "9:00"}, "$.steps[0].wait.until")],
)
def test_bad_clock_time(wait: dict[str, Any], path: str):
    found, message = only(with_steps({"id": "w", "wait": wait}))
    assert found == path and "HH:MM" in message


def test_bad_quiet_hours_clock_time():
    path, message = only(with_steps(EXIT, quiet_hours={"start": "21:00", "end": "24:00"}))
    assert path == "$.quiet_hours.end" and "HH:MM" in message


def test_unknown_weekday():
    path, message = only(
        with_steps({"id": "w", "wait": {"until": "09:00", "weekdays": ["monday"]}})
    )
    assert path == "$.steps[0].wait.weekdays[0]" and "'mon'" in message


def test_a_wait_of_the_wrong_shape():
    path, message = only(with_steps({"id": "w", "wait": 3600}))
    assert path == "$.steps[0].wait" and message.startswith("a wait is a duration")


@pytest.mark.parametrize(
    "step", [{"id": "x", "wait": "PT1H", "exit": {}}, {"id": "x", "next": "y"}]
)
def test_a_step_needs_exactly_one_kind(step: dict[str, Any]):
    path, message = only(with_steps(step))
    assert path == "$.steps[0]" and "exactly one kind key" in message


def test_an_empty_update():
    assert only(with_steps({"id": "u", "update": {}})) == (
        "$.steps[0].update",
        "an update sets attributes, adds or removes tags, or adds to scores",
    )


@pytest.mark.parametrize("weight", [0, -1, float("inf"), float("nan")])
def test_split_weights_are_positive_and_finite(weight: float):
    split = {"variants": [{"name": "a", "weight": weight}]}
    path, _ = only(with_steps({"id": "x", "split": split}))
    assert path == "$.steps[0].split.variants[0].weight"


@pytest.mark.parametrize("when", [{"field": "x", "eq": 1, "ne": 2}, {"field": "x"}])
def test_a_comparison_needs_exactly_one_operator(when: dict[str, Any]):
    branch = {"cases": [{"when": when, "next": "w"}]}
    path, message = only(with_steps(WAIT_1H, {"id": "b", "branch": branch}))
    assert path == "$.steps[1].branch.cases[0].when" and "exactly one operator" in message


@pytest.mark.parametrize(
    "when", [{}, {"all": [{"field": "a", "eq": 1}], "any": [{"field": "a", "eq": 1}]}]
)
def test_a_condition_needs_exactly_one_form(when: dict[str, Any]):
    branch = {"cases": [{"when": when, "next": "w"}]}
    path, message = only(with_steps(WAIT_1H, {"id": "b", "branch": branch}))
    assert path == "$.steps[1].branch.cases[0].when" and message.startswith("a condition is one of")


def test_a_nested_condition_problem_has_its_full_path():
    when = {"all": [{"field": "a", "eq": 1}, {"not": {"field": "b", "gt": 1, "lt": 2}}]}
    branch = {"cases": [{"when": when, "next": "w"}]}
    path, message = only(with_steps(WAIT_1H, {"id": "b", "branch": branch}))
    assert path == "$.steps[1].branch.cases[0].when.all[1].not"
    assert "exactly one operator" in message


def test_wait_for_message_must_name_a_send_step():
    steps = [
        {"id": "a", "wait": "PT1H"},
        {"id": "b", "wait_for": {"event": "e", "message": "a", "timeout": "P1D"}},
    ]
    assert only(with_steps(*steps)) == (
        "$.steps[1].wait_for.message",
        "'a' is not a send step of this journey",
    )


def test_wait_for_message_must_name_an_existing_step():
    step = {"id": "b", "wait_for": {"event": "e", "message": "nope", "timeout": "P1D"}}
    assert only(with_steps(step)) == (
        "$.steps[0].wait_for.message",
        "'nope' is not a send step of this journey",
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


def test_history_conditions_are_only_for_branches():
    document = with_steps(EXIT)
    document["goal"] = {"event": "order.completed", "where": {"event": "order.completed", "min": 2}}
    assert only(document) == (
        "$.goal.where",
        "event history conditions are allowed in branch cases only",
    )


# --- the document as a whole ----------------------------------------------------------------


def test_a_schedule_trigger_that_is_no_schedule_is_refused_at_its_path():
    document = with_steps(EXIT, trigger={"schedule": "anything", "segment": "vip"})
    assert only(document) == (
        "$.trigger.schedule",
        "a schedule is {cron: <5 fields>, timezone: <IANA zone>} or "
        "{at: <ISO date-time with offset>}",
    )


def test_a_bad_schedule_trigger_does_not_hide_other_problems():
    trigger = {"schedule": {"cron": "0 9 * *", "timezone": "Europe/Paris"}, "segment": "vip"}
    document = with_steps({"id": "x", "wait": "P1M"}, trigger=trigger)
    paths = [path for path, _ in problems(document)]
    assert paths == ["$.trigger.schedule.cron", "$.steps[0].wait"]


def test_a_trigger_needs_a_kind():
    assert only(with_steps(EXIT, trigger={})) == (
        "$.trigger",
        "a trigger needs `event` (an event name), `api: true`, `date_attribute` (a trait), "
        "`segment` (a segment key) or `schedule` with a `segment`",
    )


@pytest.mark.parametrize(
    ("re_entry", "message"),
    [
        ("sometimes", "Input should be 'never' or 'always'"),
        (7, "re_entry is never, always or {after: <duration>}"),
    ],
)
def test_bad_re_entry_has_a_plain_path(re_entry: Any, message: str):
    assert only(with_steps(EXIT, re_entry=re_entry)) == ("$.re_entry", message)


def test_unknown_fields_are_named():
    document = copy.deepcopy(CART)
    document["steps"][1]["send"]["subjct"] = "typo"
    document["steps"][2]["wait_for"]["timout"] = "P1D"
    document["colour"] = "blue"
    found = problems(document)
    assert ("$.steps[1].send.subjct", "Extra inputs are not permitted") in found
    assert ("$.steps[2].wait_for.timout", "Extra inputs are not permitted") in found
    assert ("$.colour", "Extra inputs are not permitted") in found


def test_missing_fields_are_named():
    found = problems({"key": "k"})
    assert found == [
        ("$.name", "Field required"),
        ("$.trigger", "Field required"),
        ("$.steps", "Field required"),
    ]


def test_bad_keys_and_ids():
    path, message = only(with_steps(EXIT, key="Not A Key"))
    assert path == "$.key" and "pattern" in message
    path, _ = only(with_steps({"id": "a b", "exit": {}}))
    assert path == "$.steps[0].id"
    path, message = only(with_steps())
    assert path == "$.steps" and "at least 1 item" in message


@pytest.mark.parametrize("document", [["not", "a", "journey"], "just a string", 42, None, ""])
def test_a_document_must_be_a_mapping(document: Any):
    assert only(document) == ("$", "a journey is a mapping with key, name, trigger, steps")


def test_invalid_yaml_text():
    path, message = only("key: [unclosed")
    assert path == "$" and message.startswith("not valid YAML or JSON")


def test_invalid_json_text():
    path, message = only('{"key": "k",}')
    assert path == "$" and message.startswith("not valid YAML or JSON")
    assert "line 1" in message


def test_every_problem_is_listed_at_once():
    document = with_steps(
        {"id": "a", "send": {"channel": "email", "template": "t"}, "next": "nowhere"},
        {"id": "b", "enter": {"journey": "k"}},
    )
    assert problems(document) == [
        ("$.steps[0].next", "unknown step 'nowhere'"),
        ("$.steps[1].enter.journey", "a journey cannot enter itself"),
        ("$.steps[1]", "step 'b' can never be reached"),
    ]
    message = str(pytest.raises(SpecInvalid, parse_journey, document).value)
    assert message.startswith("$.steps[0].next: unknown step 'nowhere'; ")


# --- durations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value", "shortest"),
    [
        ("PT1H", timedelta(hours=1), "PT1H"),
        ("PT90M", timedelta(minutes=90), "PT1H30M"),
        ("P2W", timedelta(weeks=2), "P14D"),
        ("P1DT2H3M4S", timedelta(days=1, hours=2, minutes=3, seconds=4), "P1DT2H3M4S"),
        ("PT1.5S", timedelta(seconds=1.5), "PT1.5S"),
        ("PT0.000001S", timedelta(microseconds=1), "PT0.000001S"),
        ("-P1D", -timedelta(days=1), "-P1D"),
        ("-PT1.25S", -timedelta(seconds=1.25), "-PT1.25S"),
        ("PT0S", timedelta(0), "PT0S"),
    ],
)
def test_durations_parse_and_format_without_loss(text: str, value: timedelta, shortest: str):
    assert parse_duration(text) == value
    assert format_duration(value) == shortest
    assert parse_duration(format_duration(value)) == value


def test_a_fractional_wait_survives_the_workflow_input():
    journey = parse_journey(with_steps({"id": "w", "wait": "PT2.5S"}))
    again = Journey.model_validate_json(journey.model_dump_json())
    assert again.steps[0].wait == timedelta(seconds=2.5)  # type: ignore[union-attr]
