"""Metrics: hand-computed cases, cross-checks against scikit-learn and a direct ECE reference,
Hypothesis properties, and the vectorized bootstrap against a per-resample loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from tunegate import metrics as M
from tunegate.config import Workflow
from tunegate.errors import InputError

sk = pytest.importorskip("sklearn.metrics")


def _random(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    y = np.where(rng.random(n) < 0.6, p.argmax(axis=1), rng.integers(0, k, n))
    return y.astype(np.intp), p


# -- hand-computed cases ---------------------------------------------------------------------

Y = [0, 0, 1, 1, 2, 2]
P = [0, 1, 1, 1, 0, 2]


def test_accuracy_hand() -> None:
    assert M.accuracy_score(Y, P) == pytest.approx(4 / 6)


def test_confusion_matrix_hand() -> None:
    assert M.confusion_matrix(Y, P).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]


def test_per_class_hand() -> None:
    r = M.per_class_report(Y, P)
    # class 0: tp 1, predicted 2, support 2; class 1: tp 2, predicted 3; class 2: tp 1 of 1/2
    assert r.precision.tolist() == pytest.approx([1 / 2, 2 / 3, 1.0])
    assert r.recall.tolist() == pytest.approx([1 / 2, 1.0, 1 / 2])
    assert r.false_negative_rate.tolist() == pytest.approx([1 / 2, 0.0, 1 / 2])
    assert r.f1.tolist() == pytest.approx([1 / 2, 0.8, 2 / 3])
    assert M.macro_f1_score(Y, P) == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)


def test_fnr_label_and_mask_hand() -> None:
    mask = np.array([True, False, True, True, True, True])
    assert M.false_negative_rate(Y, P, 0) == pytest.approx(0.5)
    assert M.false_negative_rate(Y, P, 0, mask=mask) == pytest.approx(0.0)
    assert M.false_negative_rate(Y, P, 2, mask=mask) == pytest.approx(0.5)
    # a class without true examples in the slice is undefined, not 0
    no_class_0 = np.array([False, False, True, True, True, True])
    assert math.isnan(M.false_negative_rate(Y, P, 0, mask=no_class_0))


def test_precision_nan_when_never_predicted() -> None:
    r = M.per_class_report([0, 1, 2], [0, 0, 0], n_classes=3)
    assert math.isnan(r.precision[1]) and r.recall[1] == 0.0


def test_ece_and_reliability_hand() -> None:
    # confidences 0.9, 0.9 (one right), 0.6 (right), 0.6 (wrong) with 2 equal-width bins
    proba = np.array([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.6, 0.4]])
    y = [0, 1, 1, 1]
    curve = M.reliability_curve(y, proba, n_bins=2)
    # bin [0.5, 1.0]: all four; acc 2/4, conf 0.75 -> ECE 0.25
    assert curve.count.tolist() == [0, 4]
    assert M.expected_calibration_error(y, proba, n_bins=2) == pytest.approx(0.25)
    # 10 bins: bin 0.9 -> acc 0.5 conf 0.9; bin 0.6 -> acc 0.5 conf 0.6; ECE = .5*.4 + .5*.1
    assert M.expected_calibration_error(y, proba, n_bins=10) == pytest.approx(0.25)
    assert M.expected_calibration_error(y, proba, n_bins=2, strategy="quantile") == (
        pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    )


def test_brier_hand() -> None:
    proba = np.array([[0.9, 0.1], [0.2, 0.8]])
    # (0.1^2 + 0.1^2) and (0.8^2 + 0.8^2) -> mean (0.02 + 1.28) / 2
    assert M.brier_score_loss([0, 0], proba) == pytest.approx(0.65)


def test_selective_and_coverage_hand() -> None:
    proba = np.array(
        [[0.98, 0.01, 0.01], [1 / 3, 1 / 3, 1 / 3], [0.01, 0.98, 0.01], [0.01, 0.01, 0.98]]
    )
    y = [0, 0, 0, 2]
    # row 1 is uniform (H_norm = 1) -> clarified; the rest auto; of those rows 0 and 3 right
    assert M.coverage_score(y, proba, clarify_threshold=0.5) == pytest.approx(0.75)
    assert M.selective_accuracy_score(y, proba, clarify_threshold=0.5) == pytest.approx(2 / 3)
    # escalate class 2 at >= 0.9 removes row 3 from auto
    assert M.selective_accuracy_score(y, proba, escalate={2: 0.9}) == pytest.approx(1 / 2)
    assert math.isnan(
        M.selective_accuracy_score(
            y, proba, clarify_threshold=1e-6, escalate={0: 0.5, 1: 0.5, 2: 0.5}
        )
    )


def test_latency_hand() -> None:
    assert M.latency_p50_ms([1.0, 2.0, 3.0, 10.0]) == pytest.approx(2.5)
    assert M.latency_p95_ms(list(range(1, 101))) == pytest.approx(95.05)


def test_auto_mask_agrees_with_routing_module(workflow: Workflow) -> None:
    routing = pytest.importorskip("tunegate.routing")
    _y, p = _random(300, len(workflow.label_names), 3)
    labels = workflow.label_names
    esc = {labels.index(n): t for n, t in workflow.routing.escalate_classes.items()}
    mask = M.auto_route_mask(p, clarify_threshold=workflow.routing.clarify_threshold, escalate=esc)
    routes = [r[2].value for r in routing.route_many(p, labels, workflow.routing)]
    assert mask.tolist() == [r == "auto" for r in routes]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (([0, 1], [0]), "aligned"),
        (([0, -1], [0, 1]), "negative"),
        (([0.5, 1], [0, 1]), "integer"),
        (([], []), "empty"),
    ],
)
def test_label_validation(bad: tuple[list[float], list[float]], match: str) -> None:
    with pytest.raises(InputError, match=match):
        M.accuracy_score(*bad)


def test_proba_validation() -> None:
    with pytest.raises(InputError, match="sum to 1"):
        M.brier_score_loss([0], [[0.5, 0.6]])
    with pytest.raises(InputError, match="columns"):
        M.brier_score_loss([3], [[0.5, 0.5]])


# -- cross-checks against scikit-learn and a direct ECE reference -----------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_sklearn(seed: int) -> None:
    y, p = _random(2000, 7, seed)
    pred = p.argmax(axis=1)
    assert M.accuracy_score(y, pred) == pytest.approx(sk.accuracy_score(y, pred))
    assert M.macro_f1_score(y, pred) == pytest.approx(sk.f1_score(y, pred, average="macro"))
    assert M.confusion_matrix(y, pred, n_classes=7).tolist() == (
        sk.confusion_matrix(y, pred, labels=range(7)).tolist()
    )
    r = M.per_class_report(y, pred, n_classes=7)
    assert r.precision == pytest.approx(sk.precision_score(y, pred, average=None))
    assert r.recall == pytest.approx(sk.recall_score(y, pred, average=None))
    assert r.f1 == pytest.approx(sk.f1_score(y, pred, average=None))
    # scikit-learn's multiclass Brier is the unscaled sum over classes
    assert M.brier_score_loss(y, p) == pytest.approx(
        sk.brier_score_loss(y, p, labels=list(range(7)), scale_by_half=False)
    )


def test_macro_f1_absent_class_like_sklearn() -> None:
    y = [0, 0, 1, 1]
    pred = [0, 0, 0, 3]
    assert M.macro_f1_score(y, pred) == pytest.approx(
        sk.f1_score(y, pred, average="macro", zero_division=0)
    )


def _reference_ece(y: np.ndarray, p: np.ndarray, n_bins: int) -> float:
    """ECE written as torchmetrics does it (bucketize on edges b / n_bins), loop per bin."""
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    edges = np.arange(n_bins + 1) / n_bins
    total = 0.0
    for b in range(n_bins):
        lo, hi = edges[b], edges[b + 1]
        in_bin = (conf >= lo) & ((conf < hi) if b < n_bins - 1 else (conf <= hi))
        if in_bin.any():
            total += in_bin.mean() * abs((pred[in_bin] == y[in_bin]).mean() - conf[in_bin].mean())
    return total


@pytest.mark.parametrize(("seed", "n_bins"), [(0, 10), (1, 15), (2, 20)])
def test_ece_against_reference(seed: int, n_bins: int) -> None:
    y, p = _random(3000, 5, seed)
    assert M.expected_calibration_error(y, p, n_bins=n_bins) == pytest.approx(
        _reference_ece(y, p, n_bins)
    )


def test_ece_quantile_bins_have_equal_mass() -> None:
    y, p = _random(1000, 4, 5)
    curve = M.reliability_curve(y, p, n_bins=10, strategy="quantile")
    assert curve.count.tolist() == [100] * 10


# -- Hypothesis properties -------------------------------------------------------------------


@st.composite
def labelled(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = draw(st.integers(2, 6))
    n = draw(st.integers(1, 60))
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    raw = np.array(draw(st.lists(st.floats(0.0, 1.0), min_size=n * k, max_size=n * k)))
    raw = raw.reshape(n, k) + 1e-3
    return y, raw.argmax(axis=1), raw / raw.sum(axis=1, keepdims=True)


@given(labelled())
@settings(max_examples=60, deadline=None)
def test_properties(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    y, pred, p = data
    k = p.shape[1]
    acc = M.accuracy_score(y, pred)
    cm = M.confusion_matrix(y, pred, n_classes=k)
    assert 0.0 <= acc <= 1.0
    assert acc == pytest.approx(np.trace(cm) / len(y))
    assert 0.0 <= M.macro_f1_score(y, pred) <= 1.0
    fnr = M.false_negative_rate(y, pred, n_classes=k)
    rec = M.recall_per_class(y, pred, n_classes=k)
    np.testing.assert_allclose(fnr, 1 - rec)
    ece = M.expected_calibration_error(y, p)
    assert 0.0 <= ece <= 1.0
    assert 0.0 <= M.brier_score_loss(y, p) <= 2.0
    assert 0.0 <= M.coverage_score(y, p) <= 1.0
    h = M.normalized_entropy(p)
    assert np.all((h >= 0) & (h <= 1))


# -- McNemar, seeds --------------------------------------------------------------------------


def test_mcnemar_exact_matches_binomial() -> None:
    a = np.array([True] * 10 + [False] * 2 + [True] * 5)
    b = np.array([False] * 10 + [True] * 2 + [True] * 5)
    r = M.mcnemar_exact(a, b)
    assert (r.only_a, r.only_b) == (10, 2)
    # two-sided exact: 2 * P(X <= 2), X ~ Bin(12, 1/2)
    assert r.p_value == pytest.approx(min(1.0, 2 * stats.binom.cdf(2, 12, 0.5)))
    assert M.mcnemar_exact(a, a).p_value == 1.0


def test_seed_summary() -> None:
    s = M.seed_summary([0.8, 0.82, 0.84])
    assert (s.mean, s.k) == (pytest.approx(0.82), 3)
    assert s.std == pytest.approx(0.02)
    assert math.isnan(M.seed_summary([0.5]).std)


# -- the bootstrap ---------------------------------------------------------------------------


def test_bootstrap_point_estimates_equal_metric_functions() -> None:
    y, p = _random(500, 4, 7)
    lat = np.random.default_rng(0).lognormal(size=500)
    mask = np.arange(500) % 3 == 0
    r = M.paired_bootstrap(y, p, subsets={"s": mask}, latency_a=lat, n_resamples=50)
    o = r.a["overall"]
    pred = p.argmax(axis=1)
    assert o["accuracy"].estimate == pytest.approx(M.accuracy_score(y, pred))
    assert o["macro_f1"].estimate == pytest.approx(M.macro_f1_score(y, pred))
    assert o["expected_calibration_error"].estimate == pytest.approx(
        M.expected_calibration_error(y, p)
    )
    assert o["brier_score_loss"].estimate == pytest.approx(M.brier_score_loss(y, p))
    assert o["selective_accuracy"].estimate == pytest.approx(M.selective_accuracy_score(y, p))
    assert o["coverage"].estimate == pytest.approx(M.coverage_score(y, p))
    assert o["latency_p50_ms"].estimate == pytest.approx(M.latency_p50_ms(lat))
    assert o["latency_p95_ms"].estimate == pytest.approx(M.latency_p95_ms(lat))
    assert r.a["s"]["accuracy"].estimate == pytest.approx(M.accuracy_score(y[mask], pred[mask]))
    assert r.a["s"]["fnr:1"].estimate == pytest.approx(M.false_negative_rate(y, pred, 1, mask=mask))


def test_bootstrap_equals_per_resample_loop() -> None:
    """The vectorized tables give exactly what the metric functions give on each resample."""
    y, p = _random(120, 3, 11)
    q = np.roll(p, 1, axis=1)
    lat = np.random.default_rng(1).lognormal(size=120)
    b = 40
    r = M.paired_bootstrap(
        y, p, q, latency_a=lat, latency_b=lat * 2, n_resamples=b, seed=5, keep_samples=True
    )
    rng = np.random.Generator(np.random.SFC64(5))
    idx = rng.integers(0, 120, size=(b, 120), dtype=np.intp)
    for row, ix in enumerate(idx):
        for tag, proba, latency in (("a", p, lat), ("b", q, lat * 2)):
            s = r.samples[tag]["overall"]
            yy, pp = y[ix], proba[ix]
            assert s["accuracy"][row] == pytest.approx(M.accuracy_score(yy, pp.argmax(1)))
            assert s["macro_f1"][row] == pytest.approx(M.macro_f1_score(yy, pp.argmax(1)))
            assert s["expected_calibration_error"][row] == pytest.approx(
                M.expected_calibration_error(yy, pp)
            )
            assert s["brier_score_loss"][row] == pytest.approx(M.brier_score_loss(yy, pp))
            assert s["latency_p50_ms"][row] == pytest.approx(M.latency_p50_ms(latency[ix]))
            assert s["latency_p95_ms"][row] == pytest.approx(M.latency_p95_ms(latency[ix]))


def test_bootstrap_interval_behaviour() -> None:
    y, p = _random(400, 4, 2)
    r = M.paired_bootstrap(y, p, p, n_resamples=200)
    acc = r.a["overall"]["accuracy"]
    assert acc.low <= acc.estimate <= acc.high
    assert r.diff is not None
    d = r.diff["overall"]["accuracy"]
    assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0) and d.within_noise
    # same seed, same intervals; more data, narrower intervals
    again = M.paired_bootstrap(y, p, n_resamples=200)
    assert again.a["overall"]["accuracy"] == acc
    y2, p2 = _random(4000, 4, 2)
    big = M.paired_bootstrap(y2, p2, n_resamples=200).a["overall"]["accuracy"]
    assert big.high - big.low < acc.high - acc.low


def test_bootstrap_chunking_does_not_change_results() -> None:
    y, p = _random(300, 3, 4)
    one = M.paired_bootstrap(y, p, n_resamples=64, max_chunk_elements=10**9)
    many = M.paired_bootstrap(y, p, n_resamples=64, max_chunk_elements=300 * 5)
    assert one.a == many.a


def test_paired_mean_difference() -> None:
    a = np.array([1, 1, 1, 0] * 25, dtype=float)
    d = M.paired_mean_difference(a, a, n_resamples=100)
    assert (d.estimate, d.low, d.high) == (0.0, 0.0, 0.0)
    worse = M.paired_mean_difference(a, np.zeros(100), n_resamples=300)
    assert worse.estimate == pytest.approx(-0.75) and worse.high < 0


def test_bad_arguments_raise_input_error() -> None:
    """Documented: bad inputs raise InputError (a ValueError), never a bare ValueError."""
    with pytest.raises(InputError, match="class id"):
        M.false_negative_rate(Y, P, -1)
    with pytest.raises(InputError, match="class id"):
        M.false_negative_rate(Y, P, 1.5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="out of range for n_classes=3"):
        M.false_negative_rate(Y, P, 3, n_classes=3)
    assert math.isnan(M.false_negative_rate(Y, P, 5))  # no true example of class 5: undefined
    y, p = _random(20, 3, 0)
    with pytest.raises(InputError, match="n_bins"):
        M.expected_calibration_error(y, p, n_bins=0)
    with pytest.raises(InputError, match="strategy"):
        M.expected_calibration_error(y, p, strategy="equal")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="n_bins"):
        M.paired_bootstrap(y, p, n_bins=0, n_resamples=2)
