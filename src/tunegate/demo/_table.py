"""The demo's key table: before / after / difference with its interval at the configured
confidence level (``regression.confidence``), from one paired bootstrap."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tunegate.config import Workflow
from tunegate.evaluate import Comparison, RobustnessComparison, confidence_label

__all__ = [
    "KeyRow",
    "key_table",
    "key_table_confidence",
    "render_key_table",
    "robustness_key_rows",
]


@dataclass(frozen=True)
class KeyRow:
    """One row of the key table. ``ci_low``/``ci_high`` bound ``after - before`` (paired
    bootstrap); they are ``None`` where no interval exists (the seed spread)."""

    metric: str
    before: float | None
    after: float | None
    difference: float | None
    ci_low: float | None
    ci_high: float | None
    better: str
    """``higher`` or ``lower``: which direction is an improvement."""
    note: str = ""
    confidence: float = 0.95
    """The confidence level of ``ci_low``/``ci_high`` (the comparison's)."""

    @property
    def within_noise(self) -> bool:
        if self.ci_low is None or self.ci_high is None:
            return False
        return self.ci_low <= 0.0 <= self.ci_high

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "within_noise": self.within_noise}


def _row(
    comparison: Comparison, metric: str, subset: str, key: str, better: str, note: str = ""
) -> KeyRow:
    boot = comparison.bootstrap
    assert boot.b is not None and boot.diff is not None
    if subset not in boot.a or key not in boot.a[subset]:
        return KeyRow(
            metric,
            None,
            None,
            None,
            None,
            None,
            better,
            note or "subset not in suite",
            confidence=comparison.confidence,
        )
    a, b, d = boot.a[subset][key], boot.b[subset][key], boot.diff[subset][key]

    def f(x: float) -> float | None:
        return None if x is None or math.isnan(x) else float(x)

    n = comparison.subset_sizes.get(subset)
    extra = f"n={n}" if n is not None and subset != "overall" else ""
    return KeyRow(
        metric,
        f(a.estimate),
        f(b.estimate),
        f(d.estimate),
        f(d.low),
        f(d.high),
        better,
        "; ".join(x for x in (note, extra) if x),
        confidence=comparison.confidence,
    )


_ROBUSTNESS_ROWS = (
    ("flip_rate:invariance", "flip rate under label-preserving perturbations", "lower"),
    ("robust_accuracy:invariance", "robust accuracy (perturbed core tickets)", "higher"),
    ("attack_success:keyword_stuffing", "keyword-stuffing attack success rate", "lower"),
    ("attack_success:injection", "injected-instruction attack success rate", "lower"),
)


def robustness_key_rows(robustness: RobustnessComparison) -> list[KeyRow]:
    """The robustness slice's rows (champion = before): flip rate and robust accuracy over
    the label-preserving perturbations, and each targeted perturbation's attack success rate,
    with the paired interval (bootstrap by source ticket); figures the slice lacks are left
    out."""

    def f(x: float | None) -> float | None:
        return None if x is None or math.isnan(x) else float(x)

    rows = []
    for key, metric, better in _ROBUSTNESS_ROWS:
        res = robustness.figures.get(key)
        if res is None or res.b is None or res.diff is None:
            continue
        rows.append(
            KeyRow(
                metric,
                f(res.a.estimate),
                f(res.b.estimate),
                f(res.diff.estimate),
                f(res.diff.low),
                f(res.diff.high),
                better,
                f"robustness slice {robustness.slice_hash[:12]}; "
                f"{robustness.sizes[key]} core tickets perturbed",
                confidence=robustness.confidence,
            )
        )
    return rows


def key_table(
    comparison: Comparison,
    workflow: Workflow,
    *,
    protected: str = "security_incident",
    mfa_slice: str = "mfa_related",
    night_slice: str = "night_shift",
    champion_std: float | None = None,
    candidate_std: float | None = None,
    std_note: str = "",
    robustness: RobustnessComparison | None = None,
) -> list[KeyRow]:
    """The rows of the demo's table from a :class:`Comparison` (champion = before).

    FNR rows are the false-negative rate of the protected class ``protected`` overall, within
    the ``mfa_slice`` and within the ``night_slice`` named slices. The robustness rows
    (:func:`robustness_key_rows`) come from ``robustness``, else the comparison's own.
    """
    c = workflow.label_names.index(protected)
    rows = [
        _row(comparison, "overall accuracy", "overall", "accuracy", "higher"),
        _row(comparison, f"{protected} FNR", "overall", f"fnr:{c}", "lower"),
        _row(
            comparison,
            "MFA-related FNR",
            f"tag:{mfa_slice}",
            f"fnr:{c}",
            "lower",
            f"{protected} within {mfa_slice}",
        ),
        _row(
            comparison,
            "night-shift FNR",
            f"tag:{night_slice}",
            f"fnr:{c}",
            "lower",
            f"{protected} within {night_slice}",
        ),
        _row(
            comparison,
            "capability-preservation accuracy",
            "slice:preservation",
            "accuracy",
            "higher",
        ),
        _row(
            comparison,
            "ECE",
            "overall",
            "expected_calibration_error",
            "lower",
            "15 equal-width bins",
        ),
    ]
    rob = robustness if robustness is not None else comparison.robustness
    if rob is not None:
        rows += robustness_key_rows(rob)
    diff = None if champion_std is None or candidate_std is None else candidate_std - champion_std
    rows.append(
        KeyRow(
            "standard deviation across seeds",
            champion_std,
            candidate_std,
            diff,
            None,
            None,
            "lower",
            std_note,
        )
    )
    lat = comparison.latency
    if lat is None:
        rows.append(
            _row(
                comparison,
                "median latency (ms)",
                "overall",
                "latency_p50_ms",
                "lower",
                "per ticket, batched; the two runs were timed at different times (not judged)",
            )
        )
        return rows
    # the latency the verdict judged: both models timed side by side; the interval is the
    # paired CPU-time ratio's, scaled by the champion's median
    base, ratio = lat.baseline_cpu_ms, lat.cpu_ratio
    rows.append(
        KeyRow(
            "median latency (ms)",
            base,
            lat.candidate_cpu_ms,
            base * (ratio.estimate - 1.0),
            base * (ratio.low - 1.0),
            base * (ratio.high - 1.0),
            "lower",
            f"CPU time per ticket, both timed side by side ({lat.n_pairs} paired rounds); "
            f"difference = champion x (paired ratio - 1)",
            confidence=lat.confidence,
        )
    )
    return rows


def _fmt(x: float | None, *, pct: bool = False, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    if pct:
        return f"{x * 100:+.1f} pp" if signed else f"{x * 100:.1f}%"
    return f"{x:+.3f}" if signed else f"{x:.3f}"


def key_table_confidence(rows: Sequence[KeyRow]) -> float:
    """The confidence level of the table's intervals (0.95 when no row has one)."""
    return next((r.confidence for r in rows if r.ci_low is not None), 0.95)


def render_key_table(rows: list[KeyRow]) -> str:
    """The table as Markdown."""
    level = confidence_label(key_table_confidence(rows))
    out = [f"| metric | before | after | difference ({level} CI) |", "|---|---|---|---|"]
    for r in rows:
        pct = "accuracy" in r.metric
        if r.metric.startswith("median latency"):
            before = "n/a" if r.before is None else f"{r.before:.2f}"
            after = "n/a" if r.after is None else f"{r.after:.2f}"
            diff = "n/a" if r.difference is None else f"{r.difference:+.2f}"
            ci = (
                ""
                if r.ci_low is None or r.ci_high is None
                else f" ({r.ci_low:+.2f} to {r.ci_high:+.2f})"
            )
        else:
            before, after = _fmt(r.before, pct=pct), _fmt(r.after, pct=pct)
            diff = _fmt(r.difference, pct=pct, signed=True)
            ci = (
                ""
                if r.ci_low is None or r.ci_high is None
                else (
                    f" ({_fmt(r.ci_low, pct=pct, signed=True)} to "
                    f"{_fmt(r.ci_high, pct=pct, signed=True)})"
                )
            )
        noise = " within noise" if r.within_noise else ""
        out.append(f"| {r.metric} | {before} | {after} | {diff}{ci}{noise} |")
    return "\n".join(out)
