"""A/B assignment is a stable hash: shares follow the weights and repeats agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from temporal_journeys.journeys.spec import Split
from temporal_journeys.journeys.split import Assignment, choose_variant, uniform

SPLIT = Split.model_validate(
    {
        "variants": [{"name": "a", "weight": 60, "next": "x"}, {"name": "b", "weight": 30}],
        "holdout": {"weight": 10},
    }
)
N = 10_000


def shares(split: Split, journey: str = "cart/split") -> dict[str, float]:
    counts = Counter(
        choose_variant(split, journey, f"contact-{n}", f"event-{n}").variant for n in range(N)
    )
    return {name: count / N for name, count in counts.items()}


def test_shares_follow_the_weights_over_10000_contacts():
    found = shares(SPLIT)
    assert set(found) == {"a", "b", "holdout"}
    assert found["a"] == pytest.approx(0.6, abs=0.02)
    assert found["b"] == pytest.approx(0.3, abs=0.02)
    assert found["holdout"] == pytest.approx(0.1, abs=0.02)


def test_weights_are_relative_and_need_not_sum_to_100():
    split = Split.model_validate(
        {
            "variants": [
                {"name": "a", "weight": 1},
                {"name": "b", "weight": 1},
                {"name": "c", "weight": 2},
            ]
        }
    )
    found = shares(split, "welcome/subject-test")
    assert set(found) == {"a", "b", "c"}  # no holdout without a holdout share
    assert found["a"] == pytest.approx(0.25, abs=0.02)
    assert found["b"] == pytest.approx(0.25, abs=0.02)
    assert found["c"] == pytest.approx(0.5, abs=0.02)


def test_a_large_holdout_share_is_respected():
    split = Split.model_validate(
        {"variants": [{"name": "only", "weight": 1}], "holdout": {"weight": 1, "next": "later"}}
    )
    found = shares(split)
    assert found["holdout"] == pytest.approx(0.5, abs=0.02)
    assert found["only"] == pytest.approx(0.5, abs=0.02)


def test_the_same_inputs_give_the_same_arm():
    first = choose_variant(SPLIT, "cart/split", "contact", "entry")
    assert all(choose_variant(SPLIT, "cart/split", "contact", "entry") == first for _ in range(20))


def test_each_input_moves_the_point():
    base = uniform("cart/split", "contact", "entry")
    assert uniform("cart/other", "contact", "entry") != base
    assert uniform("cart/split", "contact2", "entry") != base
    assert uniform("cart/split", "contact", "entry2") != base
    # Joined with a separator: moving characters between parts is another input.
    assert uniform("ab", "c", "d") != uniform("a", "bc", "d")


def test_uniform_numbers_stay_in_the_unit_interval():
    points = [uniform("j", str(n), "e") for n in range(N)]
    assert all(0.0 <= p < 1.0 for p in points)
    assert sum(points) / N == pytest.approx(0.5, abs=0.02)


def test_assignment_says_where_each_arm_goes():
    arms = {choose_variant(SPLIT, "cart/split", f"c{n}", "e") for n in range(200)}
    assert arms == {
        Assignment("a", "x", False),  # the variant's own next
        Assignment("b", None, False),  # None: the split's next or the following step
        Assignment("holdout", None, True),  # None for the holdout: exit
    }


# Pinned results: a change to the hash would silently move running contacts between arms.
PINNED = {
    "contact-1": "a",
    "contact-2": "b",
    "contact-3": "b",
    "contact-4": "holdout",
    "contact-5": "b",
    "contact-6": "b",
}


def test_assignments_are_pinned():
    found = {c: choose_variant(SPLIT, "cart/split", c, "evt-1").variant for c in PINNED}
    assert found == PINNED


def test_assignments_agree_across_processes_with_different_hash_seeds():
    script = (
        "import json, sys\n"
        "from journeys.spec import Split\n"
        "from journeys.split import choose_variant\n"
        "split = Split.model_validate_json(sys.argv[1])\n"
        "print(json.dumps([choose_variant(split, 'cart/split', c, 'evt-1').variant"
        " for c in sys.argv[2:]]))\n"
    )
    results = []
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script, SPLIT.model_dump_json(), *PINNED],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed},
            cwd=Path(__file__).parents[2],
        )
        results.append(json.loads(done.stdout))
    assert results[0] == results[1] == list(PINNED.values())
