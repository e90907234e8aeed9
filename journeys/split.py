"""Deterministic A/B assignment: the same (journey, contact, entry) always gets the same arm.

The three strings are hashed with SHA-256 (never ``hash()``, which is salted per process) into a
number uniform in [0, 1); the arms take consecutive slices of that interval in proportion to
their weights, variants in spec order and the holdout last. Resets, replays and other workers
therefore agree, and changing this mapping would move contacts between arms.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from temporal_journeys.journeys.spec import HOLDOUT, Split


@dataclass(frozen=True)
class Assignment:
    """The arm a contact falls in.

    ``variant`` is the variant's name, or ``"holdout"`` for the holdout share (``holdout`` is
    then True). ``next`` is the step the arm names; ``None`` means, for a variant, the split
    step's own ``next`` or else the following step, and for the holdout, exiting the journey.
    """

    variant: str
    next: str | None
    holdout: bool


def uniform(*parts: str) -> float:
    """A number in [0, 1) fixed by ``parts``: the first 64 bits of their SHA-256."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(split: Split, journey_key: str, contact_id: str, entry_id: str) -> Assignment:
    arms = [(v.name, v.weight, v.next, False) for v in split.variants]
    if split.holdout is not None:
        arms.append((HOLDOUT, split.holdout.weight, split.holdout.next, True))
    point = uniform(journey_key, contact_id, entry_id) * sum(weight for _, weight, _, _ in arms)
    for name, weight, target, holdout in arms:
        if point < weight:
            return Assignment(name, target, holdout)
        point -= weight
    name, _, target, holdout = arms[-1]  # float rounding at the very top of the interval
    return Assignment(name, target, holdout)
