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

Intervals are bootstrap percentile intervals. For ``strategy="quantile"`` the calibration bin
edges are those of the full sample, held fixed across resamples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.errors import InputError
from tunegate.metrics._calibration import BinStrategy, assign_bins, bin_edges, per_example_brier
from tunegate.metrics._classification import f1_from_confusion
from tunegate.metrics._selective import auto_route_mask
from tunegate.metrics._validation import check_latency, check_mask, check_proba

__all__ = [
    "BootstrapResult",
    "Interval",
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
)
PER_CLASS_METRICS = ("precision", "recall", "fnr")
LATENCY_METRICS = ("latency_p50_ms", "latency_p95_ms")


@dataclass(frozen=True)
class Interval:
    """A point estimate with a bootstrap percentile interval ``[low, high]``."""

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
    """The bootstrap percentile interval of ``samples`` (``nan`` resamples are ignored)."""
    alpha = (1.0 - confidence) / 2.0
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return Interval(float(estimate), float("nan"), float("nan"))
    low, high = np.quantile(finite, [alpha, 1.0 - alpha])
    return Interval(float(estimate), float(low), float(high))


@dataclass(frozen=True)
class _Model:
    key: IntArray  # (n,) packed key
    gap: FloatArray  # (n,) confidence - correct
    brier: FloatArray  # (n,) per-example Brier term
    lat_rank: IntArray | None  # (n,) index into lat_values
    lat_values: FloatArray | None  # (u,) sorted distinct latencies


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
    pred = proba.argmax(axis=1)
    conf = proba.max(axis=1)
    auto = auto_route_mask(proba, clarify_threshold=clarify_threshold, escalate=escalate)
    bins = assign_bins(conf, bin_edges(conf, n_bins=n_bins, strategy=strategy))
    key = (((group * 2 + auto.astype(np.intp)) * k + y) * k + pred) * n_bins + bins
    gap = conf - (pred == y).astype(np.float64)
    lat_rank = lat_values = None
    if latency is not None:
        lat = check_latency(latency)
        if lat.size != y.size:
            raise InputError(f"latency has {lat.size} values but there are {y.size} examples")
        lat_values, lat_rank = np.unique(lat, return_inverse=True)
        lat_rank = lat_rank.astype(np.intp)
    return _Model(key.astype(np.intp), gap, per_example_brier(y, proba), lat_rank, lat_values)


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


def _latency(model: _Model, idx: IntArray | None, n: int) -> dict[str, FloatArray]:
    assert model.lat_rank is not None and model.lat_values is not None
    u = model.lat_values.size
    ranks = model.lat_rank[None, :].copy() if idx is None else np.take(model.lat_rank, idx)
    r = ranks.shape[0]
    ranks += (np.arange(r, dtype=np.intp) * u)[:, None]
    cum = np.bincount(ranks.ravel(), minlength=r * u).reshape(r, u).cumsum(axis=1)
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
    shape = (r, g, 2, k, k, n_bins)
    c6 = counts.reshape(shape)
    gap6 = gaps.reshape(shape)
    bri = briers.reshape(r, g, -1).sum(axis=2)  # (r, g)
    weights = member.astype(np.float64)  # (g, s)
    out: dict[str, dict[str, FloatArray]] = {}
    with np.errstate(invalid="ignore", divide="ignore"):
        c_auto = np.einsum("rgaijb,gs->sraij", c6, weights)  # (s, r, 2, k, k)
        gap_bin = np.einsum("rgaijb,gs->srb", gap6, weights)  # (s, r, n_bins)
        bri_s = bri @ weights  # (r, s)
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
            }
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
        y_true: (n,) true class ids.
        proba_a, proba_b: (n, k) probabilities of two models on the same examples (B optional).
        subsets: name -> boolean (n,) mask of a slice (may overlap); ``overall`` is added.
        latency_a, latency_b: optional (n,) per-example latencies in milliseconds.
        clarify_threshold, escalate: the routing policy that defines selective accuracy and
            coverage (see :func:`~tunegate.metrics.auto_route_mask`).
        n_bins, strategy: calibration bins (see :func:`expected_calibration_error`).
        n_resamples: B, the number of bootstrap resamples.
        confidence: level of the percentile intervals (0.95 -> 2.5th and 97.5th percentiles).
        seed: seeds the resampling (SFC64); the same seed gives the same intervals.
        max_chunk_elements: resamples are drawn in chunks of at most this many indices.
        keep_samples: also return the raw per-resample values.
    """
    t, pa = check_proba(y_true, proba_a)
    n, k = pa.shape
    pb = None
    if proba_b is not None:
        _, pb = check_proba(t, proba_b)
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
    n_keys = member.shape[0] * 2 * k * k * n_bins

    common = {
        "n_bins": n_bins,
        "strategy": strategy,
        "clarify_threshold": clarify_threshold,
        "escalate": escalate,
    }
    models = {"a": _prepare(t, pa, group, latency=latency_a, **common)}  # type: ignore[arg-type]
    if pb is not None:
        models["b"] = _prepare(t, pb, group, latency=latency_b, **common)  # type: ignore[arg-type]

    def evaluate(idx: IntArray | None) -> dict[str, dict[str, dict[str, FloatArray]]]:
        res = {}
        for tag, model in models.items():
            stats = _stats(*_tables(model, idx, n_keys), member, names, k, n_bins)
            if model.lat_rank is not None:
                stats["overall"].update(_latency(model, idx, n))
            res[tag] = stats
        return res

    point = evaluate(None)
    chunk = max(1, min(n_resamples, max_chunk_elements // max(n, n_keys)))
    rng = np.random.Generator(np.random.SFC64(seed))
    parts: list[dict[str, dict[str, dict[str, FloatArray]]]] = []
    done = 0
    while done < n_resamples:
        r = min(chunk, n_resamples - done)
        idx = rng.integers(0, n, size=(r, n), dtype=np.intp)
        parts.append(evaluate(idx))
        done += r
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
                m: percentile_interval(samples[tag][s][m], float(point[tag][s][m][0]), confidence)
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
                diff[s][m] = percentile_interval(
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
    a = np.asarray(x_a, dtype=np.float64)
    b = np.asarray(x_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise InputError(
            f"x_a and x_b must be non-empty 1-D arrays of the same length, got "
            f"shapes {a.shape} and {b.shape}"
        )
    d = b - a
    rng = np.random.Generator(np.random.SFC64(seed))
    chunk = max(1, 2_000_000 // d.size)
    parts = []
    done = 0
    while done < n_resamples:
        r = min(chunk, n_resamples - done)
        parts.append(np.take(d, rng.integers(0, d.size, size=(r, d.size))).mean(axis=1))
        done += r
    return percentile_interval(np.concatenate(parts), float(d.mean()), confidence)


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
    a = np.asarray(x_a, dtype=np.float64)
    b = np.asarray(x_b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape or a.size == 0:
        raise InputError(
            f"x_a and x_b must be non-empty 1-D arrays of the same length, got "
            f"shapes {a.shape} and {b.shape}"
        )
    if not (np.isfinite(a).all() and np.isfinite(b).all()) or (a < 0).any() or (b < 0).any():
        raise InputError("x_a and x_b must be finite and non-negative (times, costs)")
    if not 0.0 < confidence < 1.0:
        raise InputError(f"confidence must be in (0, 1), got {confidence}")
    keep = a > 0
    if not keep.any():
        return Interval(float("nan"), float("nan"), float("nan"))
    r = b[keep] / a[keep]
    rng = np.random.Generator(np.random.SFC64(seed))
    chunk = max(1, 2_000_000 // r.size)
    parts = []
    done = 0
    while done < n_resamples:
        k = min(chunk, n_resamples - done)
        parts.append(np.median(np.take(r, rng.integers(0, r.size, size=(k, r.size))), axis=1))
        done += k
    return percentile_interval(np.concatenate(parts), float(np.median(r)), confidence)
