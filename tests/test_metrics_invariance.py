"""One table checks shared invariances of every registered metric (scikit-learn's
test_common pattern): row order does not matter; renaming classes (a permutation of class
ids, applied to labels and probability columns alike) leaves scalar metrics unchanged and
permutes per-class ones."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tunegate import metrics as M
from tunegate.metrics import MetricSpec, metric_registry, register_metric

REGISTRY = {n: s for n, s in metric_registry().items() if s.input != "per_example"}
"""The metrics of labels, probabilities, confidences and latencies; the generative
(``per_example``) metrics have their own table in tests/test_generative_metrics.py."""


def test_registry_is_complete() -> None:
    expected = {
        "accuracy_score",
        "macro_f1_score",
        "precision_per_class",
        "recall_per_class",
        "false_negative_rate",
        "expected_calibration_error",
        "confidence_calibration_error",
        "brier_score_loss",
        "selective_accuracy_score",
        "coverage_score",
        "latency_p50_ms",
        "latency_p95_ms",
    }
    assert expected <= set(REGISTRY)
    for spec in REGISTRY.values():
        if spec.name.endswith("_score"):
            assert spec.greater_is_better, spec.name
        if spec.name.endswith(("_error", "_loss", "_rate", "_ms")):
            assert not spec.greater_is_better, spec.name


def test_registry_refuses_duplicates_and_misnamed() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_metric(input="labels", greater_is_better=True)(M.accuracy_score)

    def bogus_score(y: Any, p: Any) -> float:
        return 0.0

    with pytest.raises(ValueError, match="higher-is-better"):
        register_metric(input="labels", greater_is_better=False)(bogus_score)


def _call(spec: MetricSpec, y: np.ndarray, p: np.ndarray, lat: np.ndarray) -> Any:
    k = p.shape[1]
    if spec.input == "latency":
        return spec.func(lat)
    if spec.input == "proba":
        return spec.func(y, p)
    if spec.input == "confidence":
        return spec.func(p.argmax(axis=1) == y, p.max(axis=1))
    if spec.per_class:
        return spec.func(y, p.argmax(axis=1), n_classes=k)
    return spec.func(y, p.argmax(axis=1))


def _same(a: Any, b: Any) -> None:
    np.testing.assert_allclose(
        np.asarray(a, dtype=float),
        np.asarray(b, dtype=float),
        rtol=1e-9,
        atol=1e-12,
        equal_nan=True,
    )


@st.composite
def dataset(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    k = draw(st.integers(2, 5))
    n = draw(st.integers(2, 40))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    raw = rng.random((n, k)) ** 3 + 1e-3
    p = raw / raw.sum(axis=1, keepdims=True)
    y = rng.integers(0, k, n)
    lat = rng.lognormal(size=n)
    return y, p, lat, seed


@pytest.mark.parametrize("name", sorted(REGISTRY))
@given(data=dataset())
@settings(max_examples=25, deadline=None)
def test_row_order_invariance(
    name: str, data: tuple[np.ndarray, np.ndarray, np.ndarray, int]
) -> None:
    y, p, lat, seed = data
    spec = REGISTRY[name]
    perm = np.random.default_rng(seed + 1).permutation(len(y))
    _same(_call(spec, y, p, lat), _call(spec, y[perm], p[perm], lat[perm]))


@pytest.mark.parametrize("name", sorted(n for n, s in REGISTRY.items() if s.input != "latency"))
@given(data=dataset())
@settings(max_examples=25, deadline=None)
def test_label_permutation(name: str, data: tuple[np.ndarray, np.ndarray, np.ndarray, int]) -> None:
    y, p, lat, seed = data
    spec = REGISTRY[name]
    k = p.shape[1]
    sigma = np.random.default_rng(seed + 2).permutation(k)  # old id c -> new id sigma[c]
    p_new = np.empty_like(p)
    p_new[:, sigma] = p
    # ties in argmax would resolve differently after permuting: keep tie-free rows only
    assume(np.array_equal(sigma[p.argmax(axis=1)], p_new.argmax(axis=1)))
    before = _call(spec, y, p, lat)
    after = _call(spec, sigma[y], p_new, lat)
    if spec.per_class:
        expected = np.empty_like(np.asarray(before, dtype=float))
        expected[sigma] = before
        _same(after, expected)
    else:
        _same(after, before)
