"""The two-proportion test and the lift's interval, against figures worked by hand."""

from __future__ import annotations

import math

import pytest

from temporal_journeys.journeys.significance import compare, two_proportion_test


def test_seven_opens_of_ten_against_two_of_ten_give_p_0_0246():
    """Worked by hand. Urgent: 7 opened of 10 sent (0.7); plain: 2 of 10 (0.2).

    Pooled rate p = (7 + 2) / (10 + 10) = 0.45; standard error under "no difference"
    SE = sqrt(p (1 - p) (1/10 + 1/10)) = sqrt(0.45 * 0.55 * 0.2) = sqrt(0.0495) = 0.222486;
    z = (0.7 - 0.2) / 0.222486 = 2.24733; two-sided p = 2 (1 - Phi(2.24733)) = 2 * 0.012309
    = 0.02462.

    Difference 0.5 ± 1.959964 * sqrt(0.7*0.3/10 + 0.2*0.8/10) = 0.5 ± 1.959964 * 0.192354
    = 0.5 ± 0.37701: [0.12299, 0.87701].

    Lift 0.7 / 0.2 - 1 = 2.5; log ratio ln 3.5 = 1.252763 ± 1.959964 * sqrt(0.3/7 + 0.8/2)
    = 1.252763 ± 1.959964 * 0.665475 = 1.252763 ± 1.304307, so the ratio is in
    [e^-0.051544, e^2.557070] = [0.94976, 12.8980]: lift in [-0.0502, 11.898]."""
    z, p = two_proportion_test(7, 10, 2, 10)  # type: ignore[misc]
    assert z == pytest.approx(2.24733, abs=1e-5)
    assert p == pytest.approx(0.02462, abs=1e-5)

    found = compare(7, 10, 2, 10)
    assert found is not None
    assert found.difference == pytest.approx(0.5)
    assert (found.difference_low, found.difference_high) == pytest.approx(
        (0.12299, 0.87701), abs=1e-5
    )
    assert found.lift == pytest.approx(2.5)
    assert (found.lift_low, found.lift_high) == pytest.approx((-0.0502, 11.898), abs=1e-3)
    assert found.p_value == p


def test_the_test_is_symmetric_and_equal_rates_give_p_1():
    z, p = two_proportion_test(2, 10, 7, 10)  # type: ignore[misc]
    assert z == pytest.approx(-2.24733, abs=1e-5) and p == pytest.approx(0.02462, abs=1e-5)
    z, p = two_proportion_test(30, 100, 30, 100)  # type: ignore[misc]
    assert z == 0 and p == 1


def test_nothing_to_test_without_trials_or_variance():
    assert two_proportion_test(0, 0, 1, 10) is None
    assert two_proportion_test(0, 10, 0, 10) is None  # both 0 %: no spread
    assert two_proportion_test(10, 10, 5, 5) is None  # both 100 %
    assert compare(1, 10, 0, 0) is None


def test_a_control_at_zero_has_no_lift_and_no_lift_interval():
    found = compare(3, 10, 0, 10)
    assert found is not None
    assert found.lift is None and found.lift_low is None and found.lift_high is None
    assert found.difference == pytest.approx(0.3)
    assert found.p_value is not None and 0 < found.p_value < 0.1
    assert math.isfinite(found.difference_low)
