"""A/B assignment is a stable hash: shares follow the weights and repeats agree."""

from __future__ import annotations

from collections import Counter

from journeys.spec import Split
from journeys.split import choose_variant

SPLIT = Split.model_validate(
    {
        "variants": [{"name": "a", "weight": 60, "next": "x"}, {"name": "b", "weight": 30}],
        "holdout": {"weight": 10},
    }
)


def test_shares_follow_the_weights_over_10000_contacts():
    counts = Counter(choose_variant(SPLIT, "j/s", f"c{n}", f"e{n}").variant for n in range(10000))
    assert abs(counts["a"] / 10000 - 0.6) < 0.02
    assert abs(counts["b"] / 10000 - 0.3) < 0.02
    assert abs(counts["holdout"] / 10000 - 0.1) < 0.02


def test_the_same_inputs_give_the_same_arm_and_its_target():
    first = choose_variant(SPLIT, "j/s", "contact", "entry")
    assert all(choose_variant(SPLIT, "j/s", "contact", "entry") == first for _ in range(20))
    arms = {choose_variant(SPLIT, "j/s", f"c{n}", "e") for n in range(200)}
    assert {(a.variant, a.next, a.holdout) for a in arms} == {
        ("a", "x", False),
        ("b", None, False),
        ("holdout", None, True),
    }
