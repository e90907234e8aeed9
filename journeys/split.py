"""Deterministic A/B assignment: the same (journey, contact, entry) always gets the same arm."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from journeys.spec import Split


@dataclass(frozen=True)
class Assignment:
    variant: str
    next: str | None
    holdout: bool


def _uniform(*parts: str) -> float:
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def choose_variant(split: Split, journey_key: str, contact_id: str, entry_id: str) -> Assignment:
    arms = [(v.name, v.weight, v.next, False) for v in split.variants]
    if split.holdout is not None:
        arms.append(("holdout", split.holdout.weight, split.holdout.next, True))
    point = _uniform(journey_key, contact_id, entry_id) * sum(weight for _, weight, _, _ in arms)
    for name, weight, target, holdout in arms:
        if point < weight:
            return Assignment(name, target, holdout)
        point -= weight
    name, _, target, holdout = arms[-1]
    return Assignment(name, target, holdout)
