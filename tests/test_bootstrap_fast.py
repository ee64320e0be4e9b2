"""The scatter path of the paired bootstrap gives bit-identical numbers to the reference
(gather + offsets + ``np.bincount``) path for the same seed, on every option that changes
the tables, and it is the path that actually runs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tunegate import metrics as M
from tunegate.metrics import OUT_OF_SCOPE
from tunegate.metrics import _bootstrap as B


def _data(n: int, k: int, seed: int, oos: bool) -> tuple[Any, Any, Any, Any]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(k, 0.7), n)
    y = np.where(rng.random(n) < 0.6, p.argmax(axis=1), rng.integers(0, k, n))
    if oos:
        y[rng.random(n) < 0.1] = OUT_OF_SCOPE
    q = np.roll(p, 1, axis=1)
    q[: n // 2] = p[: n // 2]
    lat = np.repeat(rng.lognormal(1.0, 0.3, n // 8 + 1), 8)[:n]
    return y, p, q, lat


def _both(monkeypatch: pytest.MonkeyPatch, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
    monkeypatch.setattr(B, "_RESAMPLE_PATH", "scatter")
    fast = M.paired_bootstrap(*args, keep_samples=True, **kwargs)
    monkeypatch.setattr(B, "_RESAMPLE_PATH", "gather")
    ref = M.paired_bootstrap(*args, keep_samples=True, **kwargs)
    return fast, ref


def _assert_identical(fast: Any, ref: Any) -> None:
    assert fast.samples.keys() == ref.samples.keys()
    n_checked = 0
    for tag, subsets in ref.samples.items():
        assert fast.samples[tag].keys() == subsets.keys()
        for subset, metrics in subsets.items():
            assert fast.samples[tag][subset].keys() == metrics.keys()
            for name, values in metrics.items():
                got = fast.samples[tag][subset][name]
                assert np.array_equal(got, values, equal_nan=True), (tag, subset, name)
                n_checked += 1
    assert n_checked > 20
    assert fast.a == ref.a
    assert fast.b == ref.b
    assert fast.diff == ref.diff


CASES = {
    "two models, slice, both latencies, out of scope": dict(
        two=True, oos=True, subsets=True, lat="both"
    ),
    "one model, latency": dict(two=False, oos=False, subsets=False, lat="a"),
    "two models, only B timed": dict(two=True, oos=False, subsets=True, lat="b"),
    "two models, nothing else": dict(two=True, oos=False, subsets=False, lat=None),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_scatter_path_equals_reference_bit_for_bit(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    c = CASES[case]
    n = 1500
    y, p, q, lat = _data(n, 6, 3, bool(c["oos"]))
    kwargs: dict[str, Any] = {"n_resamples": 120, "seed": 11}
    if c["subsets"]:
        kwargs["subsets"] = {"slice": np.arange(n) % 3 == 0, "other": np.arange(n) % 5 == 0}
    if c["lat"] in ("a", "both"):
        kwargs["latency_a"] = lat
    if c["lat"] in ("b", "both"):
        kwargs["latency_b"] = lat * 1.3
    fast, ref = _both(monkeypatch, y, p, q if c["two"] else None, **kwargs)
    _assert_identical(fast, ref)


def test_scatter_path_equals_reference_with_routing_options(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 900
    y, p, q, lat = _data(n, 4, 8, True)
    fast, ref = _both(
        monkeypatch,
        y,
        p,
        q,
        latency_a=lat,
        clarify_threshold=0.4,
        clarify_threshold_b=0.7,
        escalate={1: 0.3},
        n_bins=7,
        strategy="quantile",
        n_resamples=90,
        seed=2,
        max_chunk_elements=n * 7,  # several chunks, the last one short
    )
    _assert_identical(fast, ref)


def test_more_entropy_steps_than_the_curve_keeps(monkeypatch: pytest.MonkeyPatch) -> None:
    """Above CURVE_STEPS distinct entropies the resamples read merged steps on both paths."""
    n = B.CURVE_STEPS + 700
    y, p, q, _ = _data(n, 3, 5, False)
    fast, ref = _both(monkeypatch, y, p, q, n_resamples=30, seed=4)
    _assert_identical(fast, ref)


def test_the_scatter_path_runs_and_gathers_only_for_point_estimates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    y, p, q, lat = _data(600, 4, 1, False)
    calls: list[bool] = []
    original = B._tables

    def spy(model: Any, idx: Any, n_keys: int) -> Any:
        calls.append(idx is None)
        return original(model, idx, n_keys)

    monkeypatch.setattr(B, "_tables", spy)
    monkeypatch.setattr(B, "_RESAMPLE_PATH", "scatter")
    M.paired_bootstrap(y, p, q, latency_a=lat, latency_b=lat, n_resamples=50)
    assert calls and all(calls)  # point estimates only (two passes x two models)
    calls.clear()
    monkeypatch.setattr(B, "_RESAMPLE_PATH", "gather")
    M.paired_bootstrap(y, p, q, n_resamples=50)
    assert not all(calls)


def test_scatter_add_sums_duplicates_in_order() -> None:
    idx = np.array([[0, 2, 2, 1], [3, 3, 3, 0]], dtype=np.int32)
    w = np.array([0.1, 0.2, 0.3, 0.4, 1.0, 2.0, 3.0, 4.0])
    out = B._scatter_add(idx, w, 4)
    expected = np.zeros((2, 4))
    for row in range(2):
        for j in range(4):
            expected[row, idx[row, j]] += w[row * 4 + j]
    assert np.array_equal(out, expected)


def test_threads_do_not_change_the_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks counted on several threads give what one thread gives (the draws stay in
    stream order), and so does the reference path."""
    n = 700
    y, p, q, lat = _data(n, 5, 6, True)
    kwargs: dict[str, Any] = {
        "subsets": {"slice": np.arange(n) % 4 == 0},
        "latency_a": lat,
        "latency_b": lat + 1.0,
        "n_resamples": 150,
        "seed": 9,
        "max_chunk_elements": 20_000,  # many chunks, more than the threads keep in flight
        "keep_samples": True,
    }
    monkeypatch.setattr(B, "_SHARD_THREADS", 3)
    threaded = M.paired_bootstrap(y, p, q, **kwargs)
    monkeypatch.setattr(B, "_SHARD_THREADS", 1)
    single = M.paired_bootstrap(y, p, q, **kwargs)
    _assert_identical(threaded, single)
    monkeypatch.setattr(B, "_RESAMPLE_PATH", "gather")
    _assert_identical(threaded, M.paired_bootstrap(y, p, q, **kwargs))
