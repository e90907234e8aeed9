"""The committed JSON Schema is what the models produce, and it accepts the design example."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from journeys.validation import json_schema
from tests.spec.test_validation import CART

COMMITTED = Path(__file__).parents[2] / "docs" / "journey.schema.json"


def test_committed_schema_matches_the_models():
    # Regenerate with: journeys schema > docs/journey.schema.json
    assert json.loads(COMMITTED.read_text()) == json_schema()


def test_schema_accepts_the_abandoned_cart_and_rejects_a_bad_channel():
    validator = jsonschema.Draft202012Validator(json_schema())
    assert list(validator.iter_errors(CART)) == []
    bad = json.loads(json.dumps(CART))
    bad["steps"][1]["send"]["channel"] = "fax"
    assert list(validator.iter_errors(bad))
