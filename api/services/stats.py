"""Funnel and experiment figures per journey version: steps, variants, significance."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any

from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from store.models import Enrollment, StepEvent

LEFT_STEP = (
    "waited",
    "sent",
    "skipped",
    "event",
    "timeout",
    "branched",
    "variant",
    "updated",
    "handed_off",
    "failed",
    "migrated",
)


class StepStats(BaseModel):
    step: str
    entered: int = 0
    waiting_now: int = 0
    completed: int = 0
    converted: int = 0


class VariantStats(BaseModel):
    variant: str
    entered: int
    converted: int
    conversion_rate: float
    compared_to: str | None = None
    z: float | None = None
    p_value: float | None = None


class VersionStats(BaseModel):
    version: int
    entered: int
    running: int
    converted: int
    ended: dict[str, int]
    steps: list[StepStats]
    variants: list[VariantStats]


def two_proportion_test(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float] | None:
    """z and two-sided p-value of the difference of two conversion rates."""
    if min(n1, n2) == 0:
        return None
    pooled = (c1 + c2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return None
    z = (c1 / n1 - c2 / n2) / spread
    return z, math.erfc(abs(z) / math.sqrt(2))


def _variants(rows: list[Any]) -> list[VariantStats]:
    totals: Counter[str] = Counter()
    converted: Counter[str] = Counter()
    for variant, is_converted, count in rows:
        if variant is None:
            continue
        totals[variant] += count
        if is_converted:
            converted[variant] += count
    if not totals:
        return []
    control = "holdout" if "holdout" in totals else sorted(totals)[0]
    out = []
    for variant in sorted(totals):
        stats = VariantStats(
            variant=variant,
            entered=totals[variant],
            converted=converted[variant],
            conversion_rate=converted[variant] / totals[variant],
        )
        if variant != control:
            test = two_proportion_test(
                converted[variant], totals[variant], converted[control], totals[control]
            )
            stats.compared_to = control
            if test is not None:
                stats.z, stats.p_value = test
        out.append(stats)
    return out


def journey_stats(session: Session, key: str) -> list[VersionStats]:
    steps: dict[int, dict[str, StepStats]] = defaultdict(dict)

    def step(version: int, step_id: str) -> StepStats:
        return steps[version].setdefault(step_id, StepStats(step=step_id))

    for version, step_id, kind, count in session.execute(
        select(StepEvent.version, StepEvent.step_id, StepEvent.kind, func.count())
        .where(StepEvent.journey_key == key, StepEvent.step_id.is_not(None))
        .group_by(StepEvent.version, StepEvent.step_id, StepEvent.kind)
    ):
        target = step(version, step_id)
        if kind == "entered":
            target.entered += count
        elif kind == "converted":
            target.converted += count
        elif kind in LEFT_STEP:
            target.completed += count

    statuses: dict[int, Counter[str]] = defaultdict(Counter)
    for version, status, current, count in session.execute(
        select(Enrollment.version, Enrollment.status, Enrollment.current_step, func.count())
        .where(Enrollment.journey_key == key)
        .group_by(Enrollment.version, Enrollment.status, Enrollment.current_step)
    ):
        statuses[version][status] += count
        if status == "running" and current is not None:
            step(version, current).waiting_now += count

    variant_rows: dict[int, list[Any]] = defaultdict(list)
    for version, variant, converted, count in session.execute(
        select(Enrollment.version, Enrollment.variant, Enrollment.converted, func.count())
        .where(Enrollment.journey_key == key, Enrollment.status != "skipped")
        .group_by(Enrollment.version, Enrollment.variant, Enrollment.converted)
    ):
        variant_rows[version].append((variant, converted, count))

    result = []
    for version in sorted(set(statuses) | set(steps)):
        counts = statuses[version]
        result.append(
            VersionStats(
                version=version,
                entered=sum(n for s, n in counts.items() if s != "skipped"),
                running=counts["running"],
                converted=counts["converted"],
                ended={s: n for s, n in counts.items() if s != "running"},
                steps=list(steps[version].values()),
                variants=_variants(variant_rows[version]),
            )
        )
    return result
