"""The numeric core's helpers beyond the registered metrics: exact calibration bin edges,
calibration from decisions (confidence, correct), softmax and temperature scaling, seed
spread, the two-proportion test and the trend test, and that the old homes of these names
hand out the metrics implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import log_softmax

from tunegate import metrics as M
from tunegate.errors import InputError

# -- exact bin edges ---------------------------------------------------------------------------


def test_uniform_bin_edges_are_exact() -> None:
    edges = M.bin_edges(np.zeros(1), n_bins=10, strategy="uniform")
    assert edges.tolist() == [b / 10 for b in range(11)]
    # np.linspace(0, 1, 11) has 0.30000000000000004, 0.6000000000000001 and 0.7000000000000001:
    # a confidence of exactly 0.3, 0.6 or 0.7 fell one bin low
    conf = np.array([0.3, 0.6, 0.7, 0.0, 1.0, 0.1])
    assert M.assign_bins(conf, edges).tolist() == [3, 6, 7, 0, 9, 1]


def _rows(conf: list[float], k: int = 4) -> np.ndarray:
    """Probability rows whose top class is 0 with the given confidences."""
    c = np.asarray(conf)[:, None]
    return np.hstack([c, np.repeat((1.0 - c) / (k - 1), k - 1, axis=1)])


def test_a_confidence_on_an_edge_opens_its_bin() -> None:
    # 0.3 (wrong) and 0.35 (right) share bin [0.3, 0.4): gap |0.325 - 0.5|
    p = _rows([0.3, 0.35])
    y = np.array([1, 0])
    assert M.expected_calibration_error(y, p, n_bins=10) == pytest.approx(0.175)
    curve = M.reliability_curve(y, p, n_bins=10)
    assert curve.count.tolist() == [0, 0, 0, 2, 0, 0, 0, 0, 0, 0]


def test_quantile_levels_are_exact() -> None:
    conf = np.linspace(0.0, 1.0, 11)  # quantile at level 0.3 is exactly conf[3]
    edges = M.bin_edges(conf, n_bins=10, strategy="quantile")
    assert edges[3] == np.quantile(conf, 0.3)


# -- calibration from decisions ----------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_confidence_form_equals_the_proba_form(seed: int) -> None:
    rng = np.random.default_rng(seed)
    raw = rng.random((300, 5)) ** 4
    p = raw / raw.sum(axis=1, keepdims=True)
    y = rng.integers(0, 5, 300)
    correct = p.argmax(axis=1) == y
    for strategy in ("uniform", "quantile"):
        assert M.confidence_calibration_error(
            correct, p.max(axis=1), n_bins=10, strategy=strategy
        ) == M.expected_calibration_error(y, p, n_bins=10, strategy=strategy)


def test_confidence_validation() -> None:
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        M.confidence_calibration_error([True], [1.2])
    with pytest.raises(InputError, match="aligned"):
        M.confidence_calibration_error([True, False], [0.5])
    with pytest.raises(InputError, match="boolean"):
        M.confidence_calibration_error([2, 0], [0.5, 0.5])


def test_accuracy_on_a_mask_is_selective_accuracy() -> None:
    y, pred = [0, 1, 1, 2], [0, 0, 1, 2]
    assert M.accuracy_score(y, pred, mask=np.array([True, True, False, False])) == 0.5
    assert math.isnan(M.accuracy_score(y, pred, mask=np.zeros(4, dtype=bool)))


# -- softmax and temperature scaling -----------------------------------------------------------


def test_softmax_rows_and_shift_invariance() -> None:
    z = np.array([[1000.0, 1001.0, 999.0], [0.0, 0.0, 0.0]])
    p = M.softmax(z)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    np.testing.assert_allclose(p[1], 1 / 3)
    np.testing.assert_allclose(M.softmax(z, 2.0), M.softmax(z / 2.0))
    np.testing.assert_array_equal(M.apply_temperature(z, 2.0), M.softmax(z, temperature=2.0))
    with pytest.raises(InputError, match="temperature"):
        M.softmax(z, 0.0)


def test_nll_loss_is_the_mean_negative_log_probability() -> None:
    z = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.array([0, 0, 1])
    expected = -np.mean(log_softmax(z / 0.5, axis=1)[np.arange(3), y])
    assert M.nll_loss(z, y, temperature=0.5) == pytest.approx(expected)


def test_fit_temperature_recovers_the_truth_and_falls_back() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(scale=3.0, size=(3000, 4))
    y = np.array([rng.choice(4, p=row) for row in M.softmax(logits, 2.0)])
    assert M.fit_temperature(logits, y) == pytest.approx(2.0, rel=0.15)
    assert M.fit_temperature(logits[:1], y[:1]) == 1.0  # one example: keep the fallback
    # fallback=None searches anyway (the zero-shot prior is not a value to fall back to)
    assert M.fit_temperature(logits[:1], y[:1], fallback=None, bounds=(0.1, 10.0)) != 1.0
    with pytest.raises(InputError, match="class indices"):
        M.fit_temperature(logits, np.full(3000, 4))
    with pytest.raises(InputError, match="bounds"):
        M.fit_temperature(logits, y, bounds=(1.0, 0.5))


def test_old_homes_hand_out_the_core() -> None:
    from tunegate import diagnose, models, monitor, routing, train

    assert models.softmax is M.softmax
    assert train.fit_temperature is M.fit_temperature
    assert train.apply_temperature is M.apply_temperature
    assert train.nll_loss is M.nll_loss
    assert monitor.one_sided_rate_increase_p is M.one_sided_rate_increase_p
    assert diagnose.mann_kendall is M.mann_kendall
    assert diagnose.sens_slope is M.sens_slope
    p = np.array([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]])
    np.testing.assert_array_equal(routing.normalized_entropy(p), M.normalized_entropy(p))


# -- seed spread -------------------------------------------------------------------------------


def test_one_seed_has_no_spread_in_training_and_evaluation_alike() -> None:
    from tunegate.train import metric_spread

    one = metric_spread([{"val_macro_f1": 0.7}])["val_macro_f1"]
    assert math.isnan(one["std"]) and math.isnan(M.seed_summary([0.7]).std)
    assert (one["mean"], one["min"], one["max"]) == (0.7, 0.7, 0.7)
    rows = [{"a": 0.8}, {"a": 0.82}, {"a": 0.84, "b": 1.0}]
    spread = metric_spread(rows)
    assert spread["a"] == M.seed_summary([0.8, 0.82, 0.84]).to_dict()
    assert math.isnan(spread["b"]["std"])


# -- tests -------------------------------------------------------------------------------------


def test_two_proportion_test() -> None:
    p = M.one_sided_rate_increase_p(100, 1000, 130, 1000)
    pooled = 230 / 2000
    z = 0.03 / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert p == pytest.approx(0.5 * math.erfc(z / math.sqrt(2)))
    assert M.one_sided_rate_increase_p(0, 0, 5, 10) == 1.0
    assert M.one_sided_rate_increase_p(0, 10, 0, 10) == 1.0


def test_trend_validation_is_the_metrics_one() -> None:
    with pytest.raises(InputError, match="1-d series"):
        M.mann_kendall(np.zeros((2, 2)))
    assert M.mann_kendall([1, 2, 3, 4]).p_increase == pytest.approx(1 / 24)
