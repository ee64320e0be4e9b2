"""Vectorized paired bootstrap: confidence intervals for every metric, and for every
difference between two models scored on the same examples.

How it is fast: one index matrix of shape (B, n) (drawn in chunks of resamples to bound
memory) is shared by every metric and both models. Each example is packed into one integer
key ``(group, routed-auto, true class, predicted class, calibration bin)``; gathering the keys
through the index matrix and counting them with one ``np.bincount`` over per-resample offsets
gives, for every resample at once, the confusion matrix of every slice, the routing split and
the calibration-bin counts. Two weighted bincounts over the same keys add the calibration gaps
and Brier terms. Latency percentiles come from a bincount over latency ranks and a cumulative
sum. Every metric is then a few array operations on these tables; no Python loop runs per
resample.

How the resamples are counted (:data:`_RESAMPLE_PATH`): per chunk of resamples, three gathers
of packed int32 key pairs (the key of A and B; their curve keys; their latency ranks) and one
complex gather per model (gap + 1j * Brier), each followed by one compiled scatter-add
(:func:`_scatter_add`: scipy's CSR-to-dense conversion, which adds duplicate entries in
order) straight into the per-resample tables: no per-resample offsets, no ``intp`` copies, no
separate pass per weighted sum. Every sum is added in the same order as the reference path's
``np.bincount`` (kept as ``_RESAMPLE_PATH = "gather"``), so the numbers are bit-identical for
the same seed. Chunks are drawn in stream order on one thread and counted on
:data:`_SHARD_THREADS` threads, so threads do not change the numbers either.

Selective prediction: ``selective_risk`` (error rate among in-scope decisions routed
``auto``), ``coverage`` and ``oos_auto_rate`` (share of out-of-scope examples, class id
:data:`~tunegate.metrics.OUT_OF_SCOPE`, routed ``auto``) come from the same key table, where
out-of-scope examples get their own "true class" row (they never count for accuracy, F1,
calibration or Brier). ``aurc`` (area under the risk-coverage curve sorted by normalized
entropy, :func:`~tunegate.metrics.aurc_rate`) and ``selective_risk_matched`` (the risk of the
most confident ``c`` share of in-scope examples, ``c`` the baseline's full-sample coverage held
fixed across resamples, :func:`~tunegate.metrics.selective_risk_at_coverage`) need the order
of the examples: a second bincount over (resample, group, entropy step, right/wrong/out of
scope) gives per-resample step tables, and AURC follows in closed form from harmonic numbers
(:func:`~tunegate.metrics._selective.aurc_from_steps`): still no Python loop per resample,
one more pass over the (B, n) index matrix. To keep that pass cheap, resamples read the curve
over at most :data:`CURVE_STEPS` (2048) entropy steps: neighbouring distinct entropies are
merged into one tied step (ties are spread evenly, so this smooths the curve within a step of
at most n/2048 examples). Point estimates use every distinct entropy and equal
:func:`~tunegate.metrics.aurc_rate` exactly.

Each model is routed with its own threshold (``clarify_threshold`` for A,
``clarify_threshold_b`` for B when given): a version's fitted threshold is part of the model.

Intervals are bias-corrected percentile (BC) intervals (:func:`bias_corrected_interval`),
for every metric, model and difference alike, and every reported interval contains its point
estimate. Why BC: the plug-in ECE (and macro-F1, a ratio, a latency percentile) is biased
under resampling, the resamples' ECE sitting above the sample's, so the plain percentile
interval of a well-calibrated model can lie entirely above its own estimate. BC shifts the
percentiles by the measured median bias; for an unbiased statistic (accuracy, Brier, a
difference of means) it is the percentile interval up to Monte Carlo noise. Not BCa: the
acceleration needs a jackknife (n leave-one-out evaluations of every metric of every subset),
which would cost more than the whole vectorized bootstrap; for means and ratios of bounded
per-example terms it is O(1/sqrt(n)) and small. For ``strategy="quantile"`` the calibration
bin edges are those of the full sample, held fixed across resamples.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import sparse

from tunegate.errors import InputError
from tunegate.metrics._calibration import BinStrategy, assign_bins, bin_edges, per_example_brier
from tunegate.metrics._classification import f1_from_confusion
from tunegate.metrics._selective import (
    aurc_from_steps,
    auto_route_mask,
    normalized_entropy,
    risk_at_coverage_from_steps,
)
from tunegate.metrics._validation import OUT_OF_SCOPE, check_latency, check_mask, check_proba

__all__ = [
    "BootstrapResult",
    "Interval",
    "bias_corrected_interval",
    "paired_bootstrap",
    "paired_mean_difference",
    "paired_median_ratio",
    "percentile_interval",
]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.intp]

SCALAR_METRICS = (
    "accuracy",
    "macro_f1",
    "expected_calibration_error",
    "brier_score_loss",
    "selective_accuracy",
    "coverage",
    "selective_risk",
    "aurc",
    "selective_risk_matched",
    "oos_auto_rate",
)
PER_CLASS_METRICS = ("precision", "recall", "fnr")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")
CURVE_STEPS = 2048
"""Resamples read the risk-coverage curve over at most this many entropy steps (neighbouring
distinct entropies merged into one tied step); point estimates use every distinct value."""


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap interval ``[low, high]``.

    From :func:`paired_bootstrap` and :func:`paired_mean_difference` the interval is
    bias-corrected and always contains the estimate (all three are ``nan`` only where the
    metric is undefined)."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float = 0.0) -> bool:
        """True when ``value`` lies inside the interval (``nan`` bounds contain everything)."""
        if np.isnan(self.low) or np.isnan(self.high):
            return True
        return bool(self.low <= value <= self.high)

    @property
    def within_noise(self) -> bool:
        """For a difference: the interval contains 0, so it is not distinguishable from noise."""
        return self.contains(0.0)

    def to_dict(self) -> dict[str, float | None]:
        """JSON-friendly form (``nan`` -> ``None``)."""
        return {
            k: (None if np.isnan(v) else float(v))
            for k, v in (("estimate", self.estimate), ("low", self.low), ("high", self.high))
        }


Table = dict[str, dict[str, Interval]]


@dataclass(frozen=True)
class BootstrapResult:
    """Intervals per subset and metric: ``a[subset][metric]`` for model A, ``b`` for model B
    and ``diff`` for ``B - A`` (paired). Per-class metrics are named ``"recall:<class id>"``.

    ``subsets`` always include ``"overall"``; latency metrics are reported under ``"overall"``.
    """

    n_resamples: int
    confidence: float
    seed: int
    a: Table
    b: Table | None = None
    diff: Table | None = None
    samples: dict[str, dict[str, dict[str, FloatArray]]] = field(default_factory=dict)
    """When requested: raw per-resample values, ``samples[model][subset][metric]`` (B,)."""


def percentile_interval(samples: FloatArray, estimate: float, confidence: float) -> Interval:
    """The bootstrap percentile interval of ``samples`` (``nan`` resamples are ignored).

    It keeps the statistic's resampling bias: for the plug-in ECE it can lie entirely above
    ``estimate``. :func:`paired_bootstrap` reports :func:`bias_corrected_interval` instead."""
    alpha = (1.0 - confidence) / 2.0
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(float(estimate), float(low), float(high))


_NORMAL = NormalDist()


def bias_corrected_interval(samples: FloatArray, estimate: float, confidence: float) -> Interval:
    """The bias-corrected percentile (BC) interval of bootstrap ``samples`` around
    ``estimate``, widened if needed so that it always contains ``estimate``.

    ``z0 = Phi^-1(share of resamples below the estimate)`` (ties count half; the share is
    clipped to ``[1/(2B), 1 - 1/(2B)]`` so ``z0`` stays finite), and the bounds are the
    ``Phi(2 z0 -/+ z)`` quantiles of the resamples, with ``z = Phi^-1(1 - (1 - confidence)/2)``.
    With no bias (``z0 = 0``) this is the percentile interval. When the estimate lies beyond
    the chosen quantiles (it can, when nearly every resample is on one side of it) the
    interval is stretched to the estimate. ``nan`` resamples are ignored; with no finite
    resample the bounds are ``nan``; with a ``nan`` estimate this is the percentile interval.
    """
    est = float(estimate)
    finite = samples[~np.isnan(samples)]
    if finite.size == 0 or np.isnan(est):
        return percentile_interval(finite, est, confidence)
    b = finite.size
    below = float(np.count_nonzero(finite < est) + 0.5 * np.count_nonzero(finite == est))
    share = min(max(below / b, 0.5 / b), 1.0 - 0.5 / b)
    z0 = _NORMAL.inv_cdf(share) if 0.0 < share < 1.0 else 0.0
    z = _NORMAL.inv_cdf(1.0 - (1.0 - confidence) / 2.0)
    low, high = np.quantile(finite, [_NORMAL.cdf(2.0 * z0 - z), _NORMAL.cdf(2.0 * z0 + z)])
    return Interval(est, min(float(low), est), max(float(high), est))


@dataclass(frozen=True)
class _Model:
    key: IntArray  # (n,) packed key
    gap: FloatArray  # (n,) confidence - correct
    brier: FloatArray  # (n,) per-example Brier term
    lat_rank: IntArray | None  # (n,) index into lat_values
    lat_values: FloatArray | None  # (u,) sorted distinct latencies
    h_key3: IntArray  # (n,) 3 * (group * n_h + entropy rank) + (0 right, 1 wrong, 2 oos)
    n_h: int  # distinct normalized entropies
    h_key3_coarse: IntArray  # the same over at most CURVE_STEPS entropy steps (resamples)
    n_h_coarse: int
    weights: npt.NDArray[np.complex128]  # (n,) gap + 1j * brier: both sums in one pass


def _prepare(
    y: IntArray,
    proba: FloatArray,
    group: IntArray,
    *,
    n_bins: int,
    strategy: BinStrategy,
    clarify_threshold: float,
    escalate: Mapping[int, float] | None,
    latency: Any,
) -> _Model:
    k = proba.shape[1]
    ky = _true_rows(y, k)
    oos = y == OUT_OF_SCOPE
    yk = np.where(oos, k, y)
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    auto = auto_route_mask(proba, clarify_threshold=clarify_threshold, escalate=escalate)
    bins = assign_bins(conf, bin_edges(conf, n_bins=n_bins, strategy=strategy))
    key = (((group * 2 + auto.astype(np.intp)) * ky + yk) * k + pred) * n_bins + bins
    gap = conf - (pred == y).astype(np.float64)
    h_values, h_rank = np.unique(normalized_entropy(proba), return_inverse=True)
    outcome = np.where(oos, 2, (pred != y).astype(np.intp))
    h_rank = h_rank.reshape(-1)
    n_coarse = min(int(h_values.size), CURVE_STEPS)
    coarse = h_rank * n_coarse // h_values.size  # monotone: merges neighbouring steps
    lat_rank = lat_values = None
    if latency is not None:
        lat = check_latency(latency)
        if lat.size != y.size:
            raise InputError(f"latency has {lat.size} values but there are {y.size} examples")
        lat_values, lat_rank = np.unique(lat, return_inverse=True)
        lat_rank = lat_rank.astype(np.intp)
    brier = np.where(oos, 0.0, per_example_brier(np.where(oos, 0, y), proba))
    weights = np.empty(y.size, dtype=np.complex128)
    weights.real = gap
    weights.imag = brier
    return _Model(
        key.astype(np.intp),
        gap,
        brier,
        lat_rank,
        lat_values,
        ((group * h_values.size + h_rank.reshape(-1)) * 3 + outcome).astype(np.intp),
        int(h_values.size),
        ((group * n_coarse + coarse) * 3 + outcome).astype(np.intp),
        n_coarse,
        weights,
    )


def _true_rows(y: IntArray, k: int) -> int:
    """Rows of the "true class" axis of the key: ``k``, plus one for out-of-scope examples."""
    return k + 1 if bool(np.any(y == OUT_OF_SCOPE)) else k


def _curve_table(model: _Model, idx: IntArray | None, g: int) -> tuple[FloatArray, int]:
    """Examples per (resample, group, entropy step, right/wrong/out of scope), gathered
    through ``idx`` (R resamples; R=1 and every distinct entropy without ``idx``)."""
    key3, n_h = model.h_key3_coarse, model.n_h_coarse
    if idx is None:
        idx = np.arange(model.h_key3.size, dtype=np.intp)[None, :]
        key3, n_h = model.h_key3, model.n_h
    r = idx.shape[0]
    size = g * n_h
    keys = np.take(key3, idx)
    keys += (np.arange(r, dtype=np.intp) * (3 * size))[:, None]
    table = np.bincount(keys.ravel(), minlength=r * size * 3).astype(np.float64)
    return table.reshape(r, size * 3), n_h


def _curve_stats(
    table: FloatArray,
    n_h: int,
    member: npt.NDArray[np.bool_],
    names: list[str],
    matched: Mapping[str, float],
) -> dict[str, dict[str, FloatArray]]:
    """``aurc`` and ``selective_risk_matched`` per subset from a (R, g * n_h * 3) table of
    examples per (group, entropy step, right/wrong/out of scope)."""
    r = table.shape[0]
    g = member.shape[0]
    table = table.reshape(r, g, n_h, 3)
    errs3 = table[..., 1].astype(np.float64)
    count3 = errs3 + table[..., 0]
    out: dict[str, dict[str, FloatArray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        for s, name in enumerate(names):
            groups = np.flatnonzero(member[:, s])
            c = count3[:, groups].sum(axis=1)
            e = errs3[:, groups].sum(axis=1)
            cover = matched.get(name, float("nan"))
            out[name] = {
                "aurc": aurc_from_steps(c, e),
                "selective_risk_matched": (
                    risk_at_coverage_from_steps(c, e, cover)
                    if np.isfinite(cover) and cover > 0
                    else np.full(r, np.nan)
                ),
            }
    return out


def _tables(
    model: _Model, idx: IntArray | None, n_keys: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Counts, gap sums and Brier sums per key: shape (R, n_keys) for R resamples (or R=1 for
    the full sample when ``idx`` is None)."""
    if idx is None:
        idx = np.arange(model.key.size, dtype=np.intp)[None, :]
    r = idx.shape[0]
    keys = np.take(model.key, idx)
    keys += (np.arange(r, dtype=np.intp) * n_keys)[:, None]
    flat = keys.ravel()
    size = r * n_keys
    counts = np.bincount(flat, minlength=size).reshape(r, n_keys).astype(np.float64)
    gaps = np.bincount(flat, weights=np.take(model.gap, idx).ravel(), minlength=size)
    briers = np.bincount(flat, weights=np.take(model.brier, idx).ravel(), minlength=size)
    return (
        counts,
        gaps.reshape(r, n_keys).astype(np.float64),
        briers.reshape(r, n_keys).astype(np.float64),
    )


def _latency_counts(model: _Model, idx: IntArray | None) -> FloatArray:
    """Examples per (resample, latency rank), gathered through ``idx`` (R=1 without it)."""
    assert model.lat_rank is not None and model.lat_values is not None
    u = model.lat_values.size
    ranks = model.lat_rank[None, :].copy() if idx is None else np.take(model.lat_rank, idx)
    r = ranks.shape[0]
    ranks += (np.arange(r, dtype=np.intp) * u)[:, None]
    return np.bincount(ranks.ravel(), minlength=r * u).reshape(r, u).astype(np.float64)


def _latency(model: _Model, counts: FloatArray, n: int) -> dict[str, FloatArray]:
    """p50 and p95 per resample from (R, distinct latencies) counts."""
    assert model.lat_values is not None
    u = model.lat_values.size
    cum = counts.cumsum(axis=1)
    out: dict[str, FloatArray] = {}
    for name, q in (("latency_p50_ms", 0.5), ("latency_p95_ms", 0.95)):
        # numpy's default (linear) percentile: interpolate order statistics lo and lo + 1
        h = (n - 1) * q
        lo = int(np.floor(h))
        frac = h - lo
        v_lo = model.lat_values[np.minimum((cum <= lo).sum(axis=1), u - 1)]
        v_hi = model.lat_values[np.minimum((cum <= min(lo + 1, n - 1)).sum(axis=1), u - 1)]
        out[name] = v_lo + frac * (v_hi - v_lo)
    return out


_RESAMPLE_PATH = "scatter"
"""How resamples are counted. ``"scatter"`` (the default): each chunk of resamples is one
gather of every example's keys through the index matrix and one compiled scatter-add per
table (:func:`_scatter_add`), with no per-resample offsets and no intermediate copies.
``"gather"``: the reference path of 2026-12 (gather, add per-resample offsets,
``np.bincount``). Both add the same values in the same order, so they give bit-identical
numbers (``tests/test_bootstrap_fast.py`` checks it)."""

_INT32_MAX = 2**31 - 1

_SHARD_THREADS = min(2, os.cpu_count() or 1)
"""Threads that count chunks of resamples on the scatter path (the gathers and scatter-adds
run in compiled code without the GIL). The numbers do not depend on it."""


def _scatter_add(indices: npt.NDArray[np.int32], data: npt.NDArray[Any], width: int) -> Any:
    """``out[row, indices[row, j]] += data[row, j]`` for an (R, m) block of int32 indices,
    adding in order of ``j`` (so float sums equal ``np.bincount``'s), as one compiled pass:
    scipy's CSR-to-dense conversion, which adds duplicate entries instead of sorting them."""
    r, m = indices.shape
    indptr = np.arange(0, r * m + 1, m, dtype=np.int32)
    mat = sparse.csr_array((data.reshape(-1), indices.reshape(-1), indptr), shape=(r, width))
    return mat.toarray()


def _pack(first: IntArray, second: IntArray) -> npt.NDArray[np.int64]:
    """Two int32 keys per example side by side in one int64, so one gather fetches both and
    the gathered block, viewed as int32, is an (R, 2n) index block for :func:`_scatter_add`."""
    pair = np.empty((first.size, 2), dtype=np.int32)
    pair[:, 0] = first
    pair[:, 1] = second
    return pair.view(np.int64).reshape(first.size)


@dataclass(frozen=True)
class _Scatter:
    """Packed int32 keys of both models for the scatter path (see :data:`_RESAMPLE_PATH`).

    Three gathers of packed pairs serve every unit-weight table of both models: the packed
    key (A, then B offset by ``n_keys``), the curve key and the latency rank; each pair feeds
    one scatter of 2n entries per resample into a table with A's columns then B's. Gap and
    Brier sums are one complex gather and scatter per model (real part gap, imaginary part
    Brier: two float sums in one pass, each in the same order as ``np.bincount``'s). Counts
    are float32 while every count is exact in it (``n < 2**24``)."""

    tags: tuple[str, ...]
    key: npt.NDArray[np.int64] | npt.NDArray[np.int32]
    curve: npt.NDArray[np.int64] | npt.NDArray[np.int32]
    lat: npt.NDArray[np.int64] | npt.NDArray[np.int32] | None
    weights: tuple[npt.NDArray[np.complex128], ...]
    n_keys: int
    curve_width: tuple[int, ...]
    lat_width: tuple[int, ...]
    unit: type[np.floating[Any]]

    @classmethod
    def build(cls, models: Mapping[str, _Model], n_keys: int, g: int) -> _Scatter | None:
        """The packed keys, or None when a key or a chunk would not fit in int32 (then the
        reference path runs)."""
        tags = tuple(models)
        ms = [models[t] for t in tags]
        n = ms[0].key.size
        curve_width = tuple(g * m.n_h_coarse * 3 for m in ms)
        has_lat = all(m.lat_rank is not None for m in ms)
        lat_width = tuple(int(m.lat_values.size) if m.lat_values is not None else 0 for m in ms)
        if 2 * n_keys + sum(curve_width) + sum(lat_width) > _INT32_MAX or 2 * n > _INT32_MAX:
            return None

        def pack(parts: list[IntArray], widths: tuple[int, ...]) -> Any:
            if len(parts) == 1:
                return parts[0].astype(np.int32)
            return _pack(parts[0], parts[1] + widths[0])

        lat = None
        if has_lat:
            lat = pack([m.lat_rank for m in ms if m.lat_rank is not None], lat_width)
        return cls(
            tags,
            pack([m.key for m in ms], (n_keys, n_keys)),
            pack([m.h_key3_coarse for m in ms], curve_width),
            lat,
            tuple(m.weights for m in ms),
            n_keys,
            curve_width,
            lat_width,
            np.float32 if n < 2**24 else np.float64,
        )

    def tables(
        self, idx: IntArray
    ) -> dict[str, tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray | None]]:
        """Per model: counts, gap sums and Brier sums per key, the curve table and the
        latency counts (None without latencies) for the (R, n) resamples ``idx``."""
        r, n = idx.shape
        m = len(self.tags)
        ones = np.ones(m * r * n, dtype=self.unit)

        def unit(packed: Any, width: int) -> tuple[npt.NDArray[np.int32], FloatArray]:
            keys = np.take(packed, idx, mode="clip").view(np.int32).reshape(r, m * n)
            return keys, _scatter_add(keys, ones, width).astype(np.float64)

        keys, counts = unit(self.key, m * self.n_keys)
        _, curve = unit(self.curve, sum(self.curve_width))
        lat = None if self.lat is None else unit(self.lat, sum(self.lat_width))[1]
        out = {}
        c0 = l0 = 0
        for i, tag in enumerate(self.tags):
            own = keys if m == 1 else np.ascontiguousarray(keys[:, i::m])
            if i:
                own -= self.n_keys
            w = np.take(self.weights[i], idx, mode="clip")
            sums = _scatter_add(own, w, self.n_keys)
            out[tag] = (
                counts[:, i * self.n_keys : (i + 1) * self.n_keys],
                np.ascontiguousarray(sums.real),
                np.ascontiguousarray(sums.imag),
                curve[:, c0 : c0 + self.curve_width[i]],
                None if lat is None else lat[:, l0 : l0 + self.lat_width[i]],
            )
            c0 += self.curve_width[i]
            l0 += self.lat_width[i]
        return out


def _stats(
    counts: FloatArray,
    gaps: FloatArray,
    briers: FloatArray,
    member: npt.NDArray[np.bool_],
    names: list[str],
    k: int,
    n_bins: int,
) -> dict[str, dict[str, FloatArray]]:
    r = counts.shape[0]
    g = member.shape[0]
    ky = counts.shape[1] // (g * 2 * k * n_bins)  # k, or k + 1 with out-of-scope examples
    shape = (r, g, 2, ky, k, n_bins)
    c_all = counts.reshape(shape)
    c6 = c_all[:, :, :, :k]
    gap6 = gaps.reshape(shape)[:, :, :, :k]
    bri = briers.reshape(r, g, -1).sum(axis=2)  # (r, g); out-of-scope terms are 0
    weights = member.astype(np.float64)  # (g, s)
    out: dict[str, dict[str, FloatArray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        c_auto = np.einsum("rgaijb,gs->sraij", c6, weights)  # (s, r, 2, k, k)
        gap_bin = np.einsum("rgaijb,gs->srb", gap6, weights)  # (s, r, n_bins)
        bri_s = bri @ weights  # (r, s)
        oos_route = np.zeros((len(names), r, 2))
        if ky > k:  # out-of-scope examples: (s, r, 2) routed clarify/auto
            oos_route = np.einsum("rgaijb,gs->sra", c_all[:, :, :, k:], weights)
        for s, name in enumerate(names):
            cm = c_auto[s].sum(axis=1)  # (r, k, k)
            n_s = cm.sum(axis=(1, 2))
            tp = np.diagonal(cm, axis1=1, axis2=2)
            support = cm.sum(axis=2)
            predicted = cm.sum(axis=1)
            auto_cm = c_auto[s][:, 1]
            n_auto = auto_cm.sum(axis=(1, 2))
            res: dict[str, FloatArray] = {
                "accuracy": tp.sum(axis=1) / n_s,
                "macro_f1": np.where(n_s > 0, f1_from_confusion(cm), np.nan),
                "expected_calibration_error": np.abs(gap_bin[s]).sum(axis=1) / n_s,
                "brier_score_loss": bri_s[:, s] / n_s,
                "selective_accuracy": np.trace(auto_cm, axis1=1, axis2=2) / n_auto,
                "coverage": n_auto / n_s,
                "selective_risk": 1.0 - np.trace(auto_cm, axis1=1, axis2=2) / n_auto,
            }
            if ky > k:  # only with out-of-scope examples in the data
                res["oos_auto_rate"] = oos_route[s][:, 1] / oos_route[s].sum(axis=1)
            precision = np.where(predicted > 0, tp / predicted, np.nan)
            recall = np.where(support > 0, tp / support, np.nan)
            for c in range(k):
                res[f"precision:{c}"] = precision[:, c]
                res[f"recall:{c}"] = recall[:, c]
                res[f"fnr:{c}"] = 1.0 - recall[:, c]
            out[name] = res
    return out


def paired_bootstrap(
    y_true: Any,
    proba_a: Any,
    proba_b: Any = None,
    *,
    subsets: Mapping[str, Any] | None = None,
    latency_a: Any = None,
    latency_b: Any = None,
    clarify_threshold: float = 0.5,
    clarify_threshold_b: float | None = None,
    escalate: Mapping[int, float] | None = None,
    n_bins: int = 15,
    strategy: BinStrategy = "uniform",
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    max_chunk_elements: int = 2_000_000,
    keep_samples: bool = False,
) -> BootstrapResult:
    """Bootstrap every metric of model A (and B, and B - A) on the same resampled examples.

    Args:
        y_true: (n,) true class ids; :data:`~tunegate.metrics.OUT_OF_SCOPE` (-1) marks an
            out-of-scope example (left out of every metric but ``oos_auto_rate``).
        proba_a, proba_b: (n, k) probabilities of two models on the same examples (B optional).
        subsets: name -> boolean (n,) mask of a slice (may overlap); ``overall`` is added.
        latency_a, latency_b: optional (n,) per-example latencies in milliseconds.
        clarify_threshold, escalate: the routing policy that defines selective accuracy and
            risk, coverage and ``oos_auto_rate`` (see
            :func:`~tunegate.metrics.auto_route_mask`).
        clarify_threshold_b: model B's own threshold (default: ``clarify_threshold``), so
            each model is routed with the threshold of its version.
        n_bins, strategy: calibration bins (see :func:`expected_calibration_error`).
        n_resamples: B, the number of bootstrap resamples.
        confidence: level of the bias-corrected intervals (see
            :func:`bias_corrected_interval`); each contains its point estimate.
        seed: seeds the resampling (SFC64); the same seed gives the same intervals.
        max_chunk_elements: resamples are drawn in chunks of at most this many indices.
        keep_samples: also return the raw per-resample values.
    """
    t, pa = check_proba(y_true, proba_a, allow_out_of_scope=True)
    n, k = pa.shape
    pb = None
    if proba_b is not None:
        _, pb = check_proba(t, proba_b, allow_out_of_scope=True)
        if pb.shape != pa.shape:
            raise InputError(
                f"proba_a has shape {pa.shape} but proba_b has {pb.shape}; "
                f"both models must score the same examples and classes"
            )
    if not 0.5 < confidence < 1.0:
        raise InputError(f"confidence must be in (0.5, 1), got {confidence}")
    if n_resamples < 1:
        raise InputError(f"n_resamples must be >= 1, got {n_resamples}")
    names = ["overall"]
    masks = [np.ones(n, dtype=np.bool_)]
    for name, mask in (subsets or {}).items():
        if name == "overall":
            raise InputError("subset name 'overall' is reserved")
        names.append(name)
        masks.append(check_mask(mask, n, name=f"subset {name!r}"))
    membership = np.stack(masks, axis=1)  # (n, s)
    uniq, group = np.unique(membership, axis=0, return_inverse=True)
    group = group.reshape(-1).astype(np.intp)
    member = uniq.astype(np.bool_)  # (g, s)
    n_keys = member.shape[0] * 2 * _true_rows(t, k) * k * n_bins

    common = {"n_bins": n_bins, "strategy": strategy, "escalate": escalate}
    models = {
        "a": _prepare(
            t,
            pa,
            group,
            latency=latency_a,
            clarify_threshold=clarify_threshold,
            **common,  # type: ignore[arg-type]
        )
    }
    if pb is not None:
        thr_b = clarify_threshold if clarify_threshold_b is None else clarify_threshold_b
        models["b"] = _prepare(
            t,
            pb,
            group,
            latency=latency_b,
            clarify_threshold=thr_b,
            **common,  # type: ignore[arg-type]
        )
    matched: dict[str, float] = {}

    g = member.shape[0]
    scatter = _Scatter.build(models, n_keys, g) if _RESAMPLE_PATH == "scatter" else None

    def evaluate(idx: IntArray | None) -> dict[str, dict[str, dict[str, FloatArray]]]:
        res = {}
        scattered = None if idx is None or scatter is None else scatter.tables(idx)
        for tag, model in models.items():
            if scattered is not None:
                counts, gaps, briers, curve, lat = scattered[tag]
                n_h = model.n_h_coarse
                if lat is None and model.lat_rank is not None:  # only this model has them
                    lat = _latency_counts(model, idx)
            else:  # the point estimates (every distinct entropy), or the reference path
                counts, gaps, briers = _tables(model, idx, n_keys)
                curve, n_h = _curve_table(model, idx, g)
                lat = None if model.lat_rank is None else _latency_counts(model, idx)
            stats = _stats(counts, gaps, briers, member, names, k, n_bins)
            for s, c in _curve_stats(curve, n_h, member, names, matched).items():
                stats[s].update(c)
            if lat is not None:
                stats["overall"].update(_latency(model, lat, n))
            res[tag] = stats
        return res

    point = evaluate(None)
    # the baseline's full-sample coverage per subset, held fixed across resamples
    matched.update({s: float(point["a"][s]["coverage"][0]) for s in names})
    point = evaluate(None)
    chunk = max(1, min(n_resamples, max_chunk_elements // max(n, n_keys)))
    chunk = max(1, min(chunk, _INT32_MAX // (2 * n)))  # int32 scatter indices
    rng = np.random.Generator(np.random.SFC64(seed))
    sizes = [min(chunk, n_resamples - done) for done in range(0, n_resamples, chunk)]
    workers = min(_SHARD_THREADS, len(sizes)) if scatter is not None else 1
    parts: list[dict[str, dict[str, dict[str, FloatArray]]]] = []
    if workers <= 1:
        for r in sizes:
            parts.append(evaluate(rng.integers(0, n, size=(r, n), dtype=np.intp)))
    else:
        # shards: one thread draws the chunks in stream order (so the numbers do not depend
        # on the threads); the others count them. At most 2 chunks per thread are in flight.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending: list[Future[dict[str, dict[str, dict[str, FloatArray]]]]] = []
            for r in sizes:
                if len(pending) - len(parts) >= 2 * workers:
                    parts.append(pending[len(parts)].result())
                idx = rng.integers(0, n, size=(r, n), dtype=np.intp)
                pending.append(pool.submit(evaluate, idx))
            parts.extend(f.result() for f in pending[len(parts) :])
    samples = {
        tag: {
            s: {m: np.concatenate([p[tag][s][m] for p in parts]) for m in point[tag][s]}
            for s in point[tag]
        }
        for tag in point
    }

    def table(tag: str) -> Table:
        return {
            s: {
                m: bias_corrected_interval(
                    samples[tag][s][m], float(point[tag][s][m][0]), confidence
                )
                for m in point[tag][s]
            }
            for s in point[tag]
        }

    diff: Table | None = None
    if "b" in models:
        diff = {}
        for s in point["a"]:
            diff[s] = {}
            for m in point["a"][s]:
                if m not in point["b"][s]:
                    continue
                est = float(point["b"][s][m][0] - point["a"][s][m][0])
                diff[s][m] = bias_corrected_interval(
                    samples["b"][s][m] - samples["a"][s][m], est, confidence
                )
    return BootstrapResult(
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
        a=table("a"),
        b=table("b") if "b" in models else None,
        diff=diff,
        samples=samples if keep_samples else {},
    )


def paired_mean_difference(
    x_a: Any,
    x_b: Any,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of ``mean(x_b) - mean(x_a)`` for paired per-example values (e.g. correctness
    of two encoders on the same probe examples), shape (n,) each."""
    a, b = _paired(x_a, x_b)
    d = b - a
    samples = _resampled(d, lambda m: m.mean(axis=1), n_resamples, seed)
    return bias_corrected_interval(samples, float(d.mean()), confidence)


def _paired(x_a: Any, x_b: Any) -> tuple[FloatArray, FloatArray]:
    """Two paired 1-D float arrays of one non-zero length (else :class:`InputError`)."""
    a = np.asarray(x_a, dtype=np.float64)
    b = np.asarray(x_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise InputError(
            f"x_a and x_b must be non-empty 1-D arrays of the same length, got "
            f"shapes {a.shape} and {b.shape}"
        )
    return a, b


def _resampled(values: FloatArray, stat: Any, n_resamples: int, seed: int) -> FloatArray:
    """``stat`` over ``n_resamples`` bootstrap resamples of the examples of ``values``, drawn
    in chunks of bounded memory. ``values`` is (n,) -> ``stat`` gets a (k, n) matrix of
    resampled rows; or (m, n), m per-example columns resampled together (paired) -> ``stat``
    gets (m, k, n). ``stat`` returns (k,)."""
    rng = np.random.Generator(np.random.SFC64(seed))
    n = values.shape[-1]
    chunk = max(1, 2_000_000 // values.size)
    parts = []
    done = 0
    while done < n_resamples:
        k = min(chunk, n_resamples - done)
        parts.append(stat(np.take(values, rng.integers(0, n, size=(k, n)), axis=-1)))
        done += k
    return np.concatenate(parts)


def paired_median_ratio(
    x_a: Any,
    x_b: Any,
    *,
    n_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Interval of the median of the per-pair ratios ``x_b[i] / x_a[i]`` for paired positive
    values, shape (n,) each (e.g. the time per example of two models on the same batch, timed
    back to back), by resampling the pairs.

    A slowdown that hits both sides of a pair (a load that came and went) cancels in its
    ratio. The median of the ratios, not the ratio of the medians: on a busy machine each
    side's times are bimodal (slowed or not), and a median that sits between the modes jumps
    from one to the other when resampled (two identical models timed under two busy-loop
    processes: ratio of medians 0.70-1.49, median of ratios 0.97-1.01). Pairs with a zero
    baseline are dropped.
    """
    a, b = _paired(x_a, x_b)
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a < 0).any() or (b < 0).any():
        raise InputError("x_a and x_b must be finite and non-negative (times, costs)")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    keep = a > 0
    if not keep.any():
        return Interval(float("nan"), float("nan"), float("nan"))
    r = b[keep] / a[keep]
    samples = _resampled(r, lambda m: np.median(m, axis=1), n_resamples, seed)
    return percentile_interval(samples, float(np.median(r)), confidence)
