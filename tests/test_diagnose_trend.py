"""The trend test on constructed series: rising, flat, falling, noisy, too short."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tunegate.diagnose import mann_kendall, sens_slope, stable_or_increasing
from tunegate.diagnose._trend import EXACT_MAX_N


def _gate(series: list[float], **kw: float) -> bool:
    opts = {"min_weeks": 4, "alpha": 0.05, "min_mean": 5.0, **kw}
    return stable_or_increasing(series, **opts).passed  # type: ignore[arg-type]


def test_rising_series_passes() -> None:
    d = stable_or_increasing([6, 9, 13, 18, 24], min_weeks=4, alpha=0.05, min_mean=5)
    assert d.passed and d.test.s > 0 and d.test.slope > 0
    assert d.weeks == 4 and d.window == [9.0, 13.0, 18.0, 24.0]


def test_flat_series_passes_and_p_is_one_sided() -> None:
    d = stable_or_increasing([20, 20, 20, 20], min_weeks=4, alpha=0.05, min_mean=5)
    assert d.passed
    assert d.test.s == 0 and d.test.p_decrease == 1.0 and d.test.slope == 0.0


def test_falling_series_fails_even_with_four_points() -> None:
    d = stable_or_increasing([40, 30, 22, 15], min_weeks=4, alpha=0.05, min_mean=5)
    assert not d.passed
    # the exact null for n=4 puts 1/24 on the strictly decreasing order
    assert d.test.p_decrease == pytest.approx(1 / 24)
    assert any("significant decrease" in r for r in d.reasons)


def test_noisy_flat_passes_noisy_falling_fails() -> None:
    rng = np.random.default_rng(0)
    flat = (30 + rng.normal(0, 4, size=10)).round().tolist()
    falling = (60 - 5 * np.arange(10) + rng.normal(0, 4, size=10)).round().tolist()
    assert _gate(flat, window=10)
    assert not _gate(falling, window=10)
    # a single dip inside a flat stretch is not a significant decrease
    assert _gate([25, 31, 18, 27], window=4)


def test_too_short_fails() -> None:
    d = stable_or_increasing([30, 35, 40], min_weeks=4, alpha=0.05, min_mean=5)
    assert not d.passed and d.weeks == 3
    assert any("needs 4" in r for r in d.reasons)


def test_low_level_fails() -> None:
    d = stable_or_increasing([2, 3, 2, 3], min_weeks=4, alpha=0.05, min_mean=5)
    assert not d.passed and any("below the minimum" in r for r in d.reasons)
    assert _gate([5, 5, 5, 5])  # exactly at the minimum passes


def test_window_takes_the_last_weeks() -> None:
    # falling long ago, flat recently: only the last 4 weeks count
    assert _gate([90, 70, 50, 30, 30, 31, 29, 30])
    assert not _gate([90, 70, 50, 30, 30, 31, 29, 30], window=8)


def test_tie_corrected_variance_matches_formula() -> None:
    x = [1, 1, 2, 2, 2, 3, 4, 4, 5, 6, 6, 6]
    r = mann_kendall(x)
    n = len(x)
    ties = [2, 3, 2, 3]  # 1,1 / 2,2,2 / 4,4 / 6,6,6
    expected = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties)) / 18
    assert r.var_s == pytest.approx(expected)
    assert not r.exact and r.z == pytest.approx((r.s - 1) / np.sqrt(expected))


def test_normal_approximation_close_to_exact_at_the_boundary() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(size=EXACT_MAX_N).tolist()
    exact = mann_kendall(x)
    assert exact.exact
    import math

    z = exact.z
    approx = 0.5 * math.erfc(-z / math.sqrt(2))
    assert abs(approx - exact.p_decrease) < 0.08


def test_matches_scipy_kendall_tau_without_ties() -> None:
    from scipy.stats import kendalltau

    rng = np.random.default_rng(1)
    x = rng.normal(size=15)
    tau, _ = kendalltau(np.arange(15), x)
    assert mann_kendall(x).tau == pytest.approx(tau)


def test_sens_slope_of_a_line_and_with_outlier() -> None:
    assert sens_slope([1, 3, 5, 7, 9]) == pytest.approx(2.0)
    assert sens_slope([1, 3, 5, 100, 9]) == pytest.approx(2.0)
    assert sens_slope([4]) == 0.0


def test_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="NaN"):
        mann_kendall([1.0, float("nan"), 2.0])
    with pytest.raises(ValueError, match="min_weeks"):
        stable_or_increasing([1, 2, 3], min_weeks=1, alpha=0.05, min_mean=0)


@settings(deadline=None, max_examples=40)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=EXACT_MAX_N))
def test_exact_p_values_are_valid(xs: list[int]) -> None:
    r = mann_kendall(xs)
    assert 0 < r.p_decrease <= 1 and 0 < r.p_increase <= 1
    # reversing the series swaps the one-sided p-values
    rev = mann_kendall(xs[::-1])
    assert rev.s == -r.s
    assert rev.p_decrease == pytest.approx(r.p_increase)


def test_exact_distribution_is_a_distribution() -> None:
    # over all orderings of distinct values, P(S <= s) at the minimum is 1/n!
    n = 5
    r = mann_kendall(list(range(n, 0, -1)))
    assert r.p_decrease == pytest.approx(1 / len(list(itertools.permutations(range(n)))))


def test_require_rise_separates_a_new_problem_from_the_standing_floor() -> None:
    floor = [24, 23, 37, 27, 35, 30]  # the simulation's pre-rollout R2 counts
    assert _gate(floor)  # stable, above the minimum ...
    d = stable_or_increasing(floor, min_weeks=4, alpha=0.05, min_mean=5, require_rise=True)
    assert not d.passed and d.rise is not None and d.rise.p_increase >= 0.05
    assert any("standing error floor" in r for r in d.reasons)
    emerged = [*floor, 39, 56, 47, 59, 67, 77]
    d = stable_or_increasing(emerged, min_weeks=4, alpha=0.05, min_mean=5, require_rise=True)
    assert d.passed and d.rise is not None and d.rise.p_increase < 0.01
    plateau = [5, 6, 5, 6, 40, 42, 39, 41, 40, 41]  # appeared, then held steady
    assert stable_or_increasing(
        plateau, min_weeks=4, alpha=0.05, min_mean=5, require_rise=True
    ).passed


def test_no_overrides_at_all_is_not_called_an_error_floor() -> None:
    d = stable_or_increasing([0] * 8, min_weeks=4, alpha=0.05, min_mean=0, require_rise=True)
    assert not d.passed
    assert not any("error floor" in r for r in d.reasons)
    assert any("none in the 8 week(s)" in r for r in d.reasons)
