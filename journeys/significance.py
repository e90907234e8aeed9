"""Is one variant's rate really different from another's? Pure arithmetic, no I/O.

A rate is ``successes / trials`` (conversions of entries, opens of messages sent, ...). Two
rates are compared with the two-proportion z-test (pooled variance under the hypothesis that
they are equal), which gives the two-sided p-value; the effect is reported as the difference
(in rate points, Wald interval) and as the relative lift ``rate / control - 1``, whose interval
comes from the log of the ratio (Katz): the ratio of two rates is skewed, its logarithm close
to normal, so the interval is not symmetric around the lift. All intervals are at 95 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z_95 = 1.959963984540054  # the 97.5th percentile of the standard normal


def two_proportion_test(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float] | None:
    """z and the two-sided p-value of ``c1/n1 - c2/n2``; None when either side has no trials
    or both rates are 0 or 1 (no variance: nothing to test)."""
    if min(n1, n2) <= 0:
        return None
    pooled = (c1 + c2) / (n1 + n2)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if spread == 0:
        return None
    z = (c1 / n1 - c2 / n2) / spread
    # P(|Z| >= |z|) = erfc(|z| / sqrt 2): exact in floating point far into the tail.
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class Comparison:
    """One rate of a variant against the same rate of the control."""

    rate: float
    control_rate: float
    difference: float
    difference_low: float
    difference_high: float
    lift: float | None  # None when the control's rate is 0
    lift_low: float | None  # None when either rate is 0 (the log of the ratio is undefined)
    lift_high: float | None
    z: float | None
    p_value: float | None


def compare(c1: int, n1: int, c2: int, n2: int) -> Comparison | None:
    """``c1`` of ``n1`` (the variant) against ``c2`` of ``n2`` (the control); None if either
    side has no trials."""
    if min(n1, n2) <= 0:
        return None
    p1, p2 = c1 / n1, c2 / n2
    difference = p1 - p2
    # Unpooled: the interval is about the size of the difference, not a test of "no difference".
    margin = Z_95 * math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    lift = p1 / p2 - 1 if p2 > 0 else None
    lift_low = lift_high = None
    if c1 > 0 and c2 > 0:
        log_ratio = math.log(p1 / p2)
        log_margin = Z_95 * math.sqrt((1 - p1) / c1 + (1 - p2) / c2)
        lift_low = math.exp(log_ratio - log_margin) - 1
        lift_high = math.exp(log_ratio + log_margin) - 1
    test = two_proportion_test(c1, n1, c2, n2)
    return Comparison(
        rate=p1,
        control_rate=p2,
        difference=difference,
        difference_low=difference - margin,
        difference_high=difference + margin,
        lift=lift,
        lift_low=lift_low,
        lift_high=lift_high,
        z=test[0] if test else None,
        p_value=test[1] if test else None,
    )
