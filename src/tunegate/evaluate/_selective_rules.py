"""Selective-prediction verdict rules: a candidate must not buy accuracy with worse abstention.

Registered after the rules of :mod:`._verdict_rules` (``evaluate/__init__`` imports this module
after it), so they run last. Both models are routed with their own thresholds (each run's
recorded ``clarify_threshold``: its version's fitted one, or the workflow's).

* ``selective_risk:aurc``: the rise of the area under the risk-coverage curve (AURC, sorted by
  normalized entropy; threshold-free) over the in-scope suite examples;
* ``selective_risk:at_coverage``: the rise of the candidate's selective risk (error rate among
  its most confident decisions) at the baseline's coverage, so a candidate that is wrong more
  often on what it would automate fails even when it covers more.

  Both have the tolerance ``regression.max_selective_risk_increase`` and the shape of the
  ``ece`` rule (:func:`~tunegate.evaluate.rise_rule`): a point rise within tolerance passes;
  above it, fail exactly when the paired interval excludes 0
  (:func:`~tunegate.evaluate.harm_beyond_tolerance`, the failure condition of every
  regression rule), else inconclusive. (A strict non-inferiority test, ``hi <= tol``, would
  hold back nearly every candidate: on a few hundred examples these intervals are a few
  points wide even for two equally good models.) The messages also give each model's coverage
  and selective risk at its own threshold, with paired intervals.

* ``oos_auto_rate``, only for a suite with an ``out_of_scope`` slice: the share of
  out-of-scope examples routed ``auto`` (each such decision is wrong) must not rise by more
  than ``max_oos_auto_increase`` (same shape as above) and, when ``max_oos_auto_rate`` is set,
  must not be above it (fail when the candidate's interval lies above it, pass when its point
  estimate is at most it, else inconclusive).
"""

from __future__ import annotations

import math

from tunegate.evaluate._verdict_rules import (
    VerdictEvidence,
    confidence_label,
    rise_rule,
    verdict_rule,
)
from tunegate.records import RuleResult, SuiteSlice, VerdictOutcome

__all__ = ["oos_auto_rate", "selective_risk"]

OOS_SUBSET = f"slice:{SuiteSlice.OUT_OF_SCOPE.value}"


def _f(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def _own_thresholds(ev: VerdictEvidence) -> str:
    """Coverage and selective risk of each model at its own threshold, with paired CIs."""
    a, b, d = ev.table("a", "overall"), ev.table("b", "overall"), ev.table("diff", "overall")
    level = confidence_label(ev.confidence)
    parts = []
    for key, name in (("coverage", "coverage"), ("selective_risk", "selective risk")):
        parts.append(
            f"{name} {a[key].estimate:.4f} -> {b[key].estimate:.4f} "
            f"({d[key].estimate:+.4f}, {level} CI {d[key].low:+.4f} to {d[key].high:+.4f})"
        )
    return "; at each model's own threshold: " + ", ".join(parts)


@verdict_rule("selective_risk")
def selective_risk(ev: VerdictEvidence) -> list[RuleResult]:
    """``selective_risk:aurc`` and ``selective_risk:at_coverage``: AURC and the selective risk
    at the baseline's coverage must not rise beyond ``max_selective_risk_increase``; the
    messages report both models' coverage and selective risk with paired intervals."""
    a, b, d = ev.table("a", "overall"), ev.table("b", "overall"), ev.table("diff", "overall")
    tol = ev.policy.max_selective_risk_increase
    context = _own_thresholds(ev)
    coverage = a["coverage"].estimate
    return [
        rise_rule(
            "selective_risk:aurc",
            d["aurc"],
            tol,
            baseline=a["aurc"].estimate,
            candidate=b["aurc"].estimate,
            what="AURC (area under the risk-coverage curve)",
            confidence=ev.confidence,
            context=context,
        ),
        rise_rule(
            "selective_risk:at_coverage",
            d["selective_risk_matched"],
            tol,
            baseline=a["selective_risk_matched"].estimate,
            candidate=b["selective_risk_matched"].estimate,
            what=f"selective risk at the baseline's coverage {coverage:.4f}",
            confidence=ev.confidence,
        ),
    ]


@verdict_rule("oos_auto_rate")
def oos_auto_rate(ev: VerdictEvidence) -> list[RuleResult]:
    """For suites with an ``out_of_scope`` slice: the share of out-of-scope examples routed
    ``auto`` must not rise beyond ``max_oos_auto_increase`` nor (when set) exceed
    ``max_oos_auto_rate``. No finding without such a slice."""
    n_oos = ev.subset_sizes.get(OOS_SUBSET, 0)
    if not n_oos:
        return []
    key = "oos_auto_rate"
    a, b = ev.table("a", "overall")[key], ev.table("b", "overall")[key]
    out = [
        rise_rule(
            key,
            ev.table("diff", "overall")[key],
            ev.policy.max_oos_auto_increase,
            baseline=a.estimate,
            candidate=b.estimate,
            what=f"share of the {n_oos} out-of-scope examples routed auto",
            confidence=ev.confidence,
        )
    ]
    limit = ev.policy.max_oos_auto_rate
    if limit is not None:
        figures = (
            f"candidate routes {b.estimate:.4f} of the {n_oos} out-of-scope examples auto "
            f"({confidence_label(ev.confidence)} CI {b.low:.4f} to {b.high:.4f}), "
            f"maximum {limit:.4f}"
        )
        if b.estimate <= limit:
            outcome, why = VerdictOutcome.PASS, f"{figures}: within the maximum"
        elif b.low > limit:
            outcome, why = VerdictOutcome.FAIL, f"{figures}: above the maximum beyond noise"
        else:
            outcome, why = VerdictOutcome.INCONCLUSIVE, f"{figures}: above it but within noise"
        out.append(
            RuleResult(
                rule=f"{key}:max",
                outcome=outcome,
                baseline=_f(a.estimate),
                candidate=_f(b.estimate),
                ci_low=_f(b.low),
                ci_high=_f(b.high),
                threshold=limit,
                message=why,
            )
        )
    return out
