"""The committed JSON Schema is exactly what the models produce, and it agrees with them."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from temporal_journeys.journeys.validation import (
    SpecInvalid,
    json_schema,
    json_schema_text,
    load_document,
    parse_journey,
    write_json_schema,
)
from tests.support.spec_documents import CART, CART_YAML, EVERYTHING

jsonschema = pytest.importorskip("jsonschema")

COMMITTED = Path(__file__).parents[2] / "docs" / "journey.schema.json"
REGENERATE = 'python -c "from journeys.validation import write_json_schema; write_json_schema()"'


@pytest.fixture(scope="module")
def validator() -> Any:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


def test_committed_schema_is_what_the_code_generates():
    assert COMMITTED.read_text(encoding="utf-8") == json_schema_text(), (
        f"docs/journey.schema.json is stale; regenerate it with {REGENERATE}"
    )


def test_write_json_schema_writes_the_committed_form(tmp_path: Path):
    target = tmp_path / "journey.schema.json"
    write_json_schema(target)
    text = target.read_text(encoding="utf-8")
    assert text == COMMITTED.read_text(encoding="utf-8")
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"


def test_schema_is_draft_2020_12():
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)
    # Editors run the patterns as ECMA-262 regular expressions: no Python-only syntax.
    assert "(?P<" not in json_schema_text()


@pytest.mark.parametrize(
    "document",
    [CART, EVERYTHING, load_document(CART_YAML)],
    ids=["cart", "everything", "cart-yaml"],
)
def test_schema_accepts_the_valid_examples(validator: Any, document: dict[str, Any]):
    assert [error.message for error in validator.iter_errors(document)] == []


def test_schema_accepts_what_the_models_dump(validator: Any):
    for document in (CART, EVERYTHING):
        dumped = parse_journey(document).model_dump(mode="json")
        assert [error.message for error in validator.iter_errors(dumped)] == []


def _broken(change: str) -> dict[str, Any]:
    document = copy.deepcopy(CART)
    steps = document["steps"]
    if change == "channel":
        steps[1]["send"]["channel"] = "fax"
    elif change == "extra field":
        steps[1]["send"]["subjct"] = "typo"
    elif change == "clock":
        document["quiet_hours"]["start"] = "25:00"
    elif change == "clock with seconds":
        document["quiet_hours"]["start"] = "21:00:00"
    elif change == "months":
        steps[0]["wait"] = "P1M"
    elif change == "bare P":
        steps[4]["wait"] = "P"
    elif change == "two kinds":
        steps[0]["exit"] = {}
    elif change == "no kind":
        del steps[0]["wait"]
    elif change == "no trigger":
        del document["trigger"]
    elif change == "two operators":
        document["goal"]["where"] = {"field": "x", "eq": 1, "ne": 2}
    elif change == "re_entry":
        document["re_entry"] = "sometimes"
    elif change == "bad key":
        document["key"] = "Not A Key"
    return document


CHANGES = [
    "channel",
    "extra field",
    "clock",
    "clock with seconds",
    "months",
    "bare P",
    "two kinds",
    "no kind",
    "no trigger",
    "two operators",
    "re_entry",
    "bad key",
]


@pytest.mark.parametrize("change", CHANGES)
def test_schema_and_models_both_reject(validator: Any, change: str):
    document = _broken(change)
    assert list(validator.iter_errors(document)), f"the schema accepts {change}"
    with pytest.raises(SpecInvalid):
        parse_journey(document)


@pytest.mark.parametrize(
    "value", ["PT1H", "P3D", "P2W", "P1W2D", "P1DT2H30M", "PT1.5S", "PT90M", "P3660D"]
)
def test_schema_and_models_accept_the_same_durations(validator: Any, value: str):
    document = copy.deepcopy(CART)
    document["steps"][0]["wait"] = value
    assert list(validator.iter_errors(document)) == []
    assert parse_journey(document)


def test_negative_offsets_are_valid_in_the_schema(validator: Any):
    document = copy.deepcopy(CART)
    document["steps"][4] = {
        "id": "wait-3d",
        "wait": {"date_attribute": "birthday", "offset": "-P1D", "at": "09:00", "yearly": True},
    }
    assert list(validator.iter_errors(document)) == []
    assert parse_journey(document)
