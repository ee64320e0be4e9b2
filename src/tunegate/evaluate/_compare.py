"""Compare a candidate EvalRun with a baseline EvalRun on the same suite -> a Verdict.

Every rule reads paired bootstrap intervals (same resampled examples for both models). With
``d`` the point estimate of a *harm* (an accuracy drop, an FNR rise), ``[lo, hi]`` its
interval and ``tol`` the rule's tolerance, a CI-aware rule is (a non-inferiority test):

* **pass** when ``hi <= tol``: the harm is shown to be within tolerance;
* **fail** when ``d > tol`` and ``lo > 0``: the harm exceeds tolerance and is real (its
  interval excludes 0);
* **inconclusive** otherwise: the data cannot tell.

Rules: ``preservation`` (accuracy drop on the preservation slice, tolerance
``regression.preservation_tolerance``; also an external probe when given), ``protected_fnr:<label>``
(FNR rise of every protected class over the whole suite, ``protected_fnr_tolerance``),
``ece`` (a point rise of ECE within ``max_ece_increase`` passes; above it, fail when the
interval excludes 0, else inconclusive), ``latency_p50`` (relative rise of
median latency > ``max_latency_increase`` fails), and ``core_improvement`` (core accuracy
difference: pass when its interval is above 0, fail when below 0, inconclusive - "within
noise" - when it contains 0). The verdict is ``fail`` if any rule fails (a core gain never
buys a preservation loss), else ``inconclusive`` if any rule is, else ``pass``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.evaluate._run import escalate_ids, subset_masks
from tunegate.metrics import (
    BootstrapResult,
    Interval,
    McNemarResult,
    mcnemar_exact,
    paired_bootstrap,
)
from tunegate.records import EvalRun, EvalSuite, RuleResult, Verdict, VerdictOutcome

__all__ = ["Comparison", "compare", "compare_runs", "harm_rule", "verdict_outcome"]


@dataclass(frozen=True)
class Comparison:
    """A verdict with the evidence behind it (for reports)."""

    verdict: Verdict
    bootstrap: BootstrapResult
    """``a`` = baseline, ``b`` = candidate, ``diff`` = candidate - baseline."""
    mcnemar: dict[str, McNemarResult]
    """McNemar's exact test per subset (``overall``, ``slice:core``, ...)."""
    subset_sizes: dict[str, int]
    labels: list[str]


def harm_rule(
    rule: str, harm: Interval, tolerance: float, *, baseline: float, candidate: float, what: str
) -> RuleResult:
    """Apply the CI-aware non-inferiority rule to a harm (drop or rise) and its interval."""
    d, lo, hi = harm.estimate, harm.low, harm.high
    figures = f"{what} {d:+.4f} (95% CI {lo:+.4f} to {hi:+.4f}), tolerance {tolerance:.4f}"
    if math.isnan(d):
        outcome, why = VerdictOutcome.INCONCLUSIVE, f"{what}: not measurable on this suite"
    elif hi <= tolerance:
        outcome, why = VerdictOutcome.PASS, f"{figures}: within tolerance"
    elif d > tolerance and lo > 0:
        outcome, why = VerdictOutcome.FAIL, f"{figures}: exceeds tolerance and is not noise"
    else:
        outcome, why = (
            VerdictOutcome.INCONCLUSIVE,
            (f"{figures}: cannot rule out a harm beyond tolerance (interval too wide)"),
        )
    return RuleResult(
        rule=rule,
        outcome=outcome,
        baseline=_f(baseline),
        candidate=_f(candidate),
        difference=_f(d),
        ci_low=_f(lo),
        ci_high=_f(hi),
        threshold=tolerance,
        message=why,
    )


def _f(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def verdict_outcome(rules: list[RuleResult]) -> VerdictOutcome:
    """fail if any rule fails, else inconclusive if any is, else pass."""
    outcomes = {r.outcome for r in rules}
    if VerdictOutcome.FAIL in outcomes:
        return VerdictOutcome.FAIL
    if VerdictOutcome.INCONCLUSIVE in outcomes:
        return VerdictOutcome.INCONCLUSIVE
    return VerdictOutcome.PASS


def _aligned(
    run: EvalRun, ids: list[str], labels: list[str]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.float64] | None]:
    if run.labels != labels:
        raise InputError(
            f"run {run.id} has labels {run.labels}, expected {labels}; "
            f"both runs must use the workflow's label order"
        )
    pos = {i: n for n, i in enumerate(run.example_ids)}
    missing = [i for i in ids if i not in pos]
    if missing:
        raise InputError(
            f"run {run.id} lacks {len(missing)} suite examples (first "
            f"{missing[:5]}); re-run `tunegate eval` on this suite"
        )
    order = np.array([pos[i] for i in ids], dtype=np.intp)
    y = np.asarray(run.y_true, dtype=np.intp)[order]
    proba = np.asarray(run.proba, dtype=np.float64)[order]
    lat = None
    if len(run.latency_ms) == len(run.example_ids):
        lat = np.asarray(run.latency_ms, dtype=np.float64)[order]
    return y, proba, lat


def compare_runs(
    baseline: EvalRun,
    candidate: EvalRun,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    probe: Any = None,
) -> Comparison:
    """:func:`compare`, also returning the bootstrap evidence (see the module docstring).

    ``probe``: an optional :class:`~tunegate.evaluate.ProbeComparison` of the encoder on an
    external task; its accuracy drop is one more preservation rule.
    """
    suite_hash = suite.hash or suite.compute_hash()
    for run in (baseline, candidate):
        if run.suite_hash != suite_hash:
            raise InputError(
                f"run {run.id} was made on suite {run.suite_hash[:12]}, not on "
                f"{suite.name!r} ({suite_hash[:12]}); compare runs on one suite"
            )
    labels = workflow.label_names
    ids = [e.id for e in suite.examples]
    y_a, p_a, lat_a = _aligned(baseline, ids, labels)
    y_b, p_b, lat_b = _aligned(candidate, ids, labels)
    if not np.array_equal(y_a, y_b):
        raise InputError("the two runs disagree on the true labels of the suite examples")
    policy = workflow.regression
    masks = subset_masks(suite, ids)
    with_latency = lat_a is not None and lat_b is not None
    boot = paired_bootstrap(
        y_a,
        p_a,
        p_b,
        subsets=masks,
        latency_a=lat_a if with_latency else None,
        latency_b=lat_b if with_latency else None,
        clarify_threshold=workflow.routing.clarify_threshold,
        escalate=escalate_ids(workflow, labels),
        n_resamples=policy.n_bootstrap,
        confidence=policy.confidence,
        seed=policy.seed,
    )
    assert boot.b is not None and boot.diff is not None
    correct_a = p_a.argmax(axis=1) == y_a
    correct_b = p_b.argmax(axis=1) == y_b
    all_masks = {"overall": np.ones(len(ids), dtype=np.bool_), **masks}
    mcnemar = {
        name: mcnemar_exact(correct_a[m], correct_b[m]) for name, m in all_masks.items() if m.any()
    }
    sizes = {name: int(m.sum()) for name, m in all_masks.items()}
    rules: list[RuleResult] = []

    # 1. the main improvement: core accuracy (overall when the suite has no core slice)
    main = "slice:core" if sizes["slice:core"] else "overall"
    gain = boot.diff[main]["accuracy"]
    base_acc, cand_acc = boot.a[main]["accuracy"].estimate, boot.b[main]["accuracy"].estimate
    p_value = mcnemar[main].p_value if main in mcnemar else float("nan")
    figures = (
        f"{main.removeprefix('slice:')} accuracy {base_acc:.4f} -> {cand_acc:.4f} "
        f"({gain.estimate:+.4f}, 95% CI {gain.low:+.4f} to {gain.high:+.4f}; "
        f"McNemar exact p={p_value:.3g})"
    )
    if gain.low > 0:
        outcome, why = VerdictOutcome.PASS, f"{figures}: an improvement beyond noise"
    elif gain.high < 0:
        outcome, why = VerdictOutcome.FAIL, f"{figures}: a regression beyond noise"
    else:
        outcome, why = VerdictOutcome.INCONCLUSIVE, f"{figures}: within noise"
    rules.append(
        RuleResult(
            rule="core_improvement",
            outcome=outcome,
            baseline=base_acc,
            candidate=cand_acc,
            difference=gain.estimate,
            ci_low=gain.low,
            ci_high=gain.high,
            threshold=0.0,
            message=why,
        )
    )

    # 2. capability preservation: a drop beyond tolerance fails, whatever core gained
    if sizes["slice:preservation"]:
        d = boot.diff["slice:preservation"]["accuracy"]
        rules.append(
            harm_rule(
                "preservation",
                Interval(-d.estimate, -d.high, -d.low),
                policy.preservation_tolerance,
                baseline=boot.a["slice:preservation"]["accuracy"].estimate,
                candidate=boot.b["slice:preservation"]["accuracy"].estimate,
                what="preservation accuracy drop",
            )
        )
    else:
        rules.append(
            RuleResult(
                rule="preservation",
                outcome=VerdictOutcome.INCONCLUSIVE,
                message="the suite has no preservation slice; add 50-100 "
                "examples of behaviour that must not regress",
            )
        )
    if probe is not None:
        rules.append(
            harm_rule(
                f"preservation:{probe.dataset}",
                probe.drop,
                policy.preservation_tolerance,
                baseline=probe.before.accuracy,
                candidate=probe.after.accuracy,
                what=f"{probe.dataset} probe accuracy drop",
            )
        )

    # 3. protected classes: FNR must not rise
    for label in workflow.protected_labels:
        c = labels.index(label)
        rise = boot.diff["overall"][f"fnr:{c}"]
        rules.append(
            harm_rule(
                f"protected_fnr:{label}",
                rise,
                policy.protected_fnr_tolerance,
                baseline=boot.a["overall"][f"fnr:{c}"].estimate,
                candidate=boot.b["overall"][f"fnr:{c}"].estimate,
                what=f"{label} false-negative-rate rise",
            )
        )

    # 4. calibration. The point rise decides a pass; a rise beyond tolerance fails only when
    # its interval excludes 0 (else inconclusive). ECE's bootstrap interval on a few hundred
    # examples is a few points wide even for two perfectly calibrated models, so requiring
    # hi <= tol (as for the accuracy harms) would block almost every candidate.
    ece = boot.diff["overall"]["expected_calibration_error"]
    limit = policy.max_ece_increase
    ece_figures = (
        f"ECE {ece.estimate:+.4f} (95% CI {ece.low:+.4f} to {ece.high:+.4f}), "
        f"tolerance +{limit:.4f}"
    )
    if ece.estimate <= limit:
        ece_outcome, ece_why = VerdictOutcome.PASS, f"{ece_figures}: within tolerance"
    elif ece.low > 0:
        ece_outcome, ece_why = VerdictOutcome.FAIL, f"{ece_figures}: a rise beyond noise"
    else:
        ece_outcome, ece_why = (
            VerdictOutcome.INCONCLUSIVE,
            f"{ece_figures}: above tolerance but within noise",
        )
    rules.append(
        RuleResult(
            rule="ece",
            outcome=ece_outcome,
            baseline=boot.a["overall"]["expected_calibration_error"].estimate,
            candidate=boot.b["overall"]["expected_calibration_error"].estimate,
            difference=ece.estimate,
            ci_low=ece.low,
            ci_high=ece.high,
            threshold=limit,
            message=ece_why,
        )
    )

    # 5. latency
    if with_latency:
        base = boot.a["overall"]["latency_p50_ms"].estimate
        cand = boot.b["overall"]["latency_p50_ms"].estimate
        rel = (cand / base - 1.0) if base > 0 else (0.0 if cand == 0 else math.inf)
        limit = policy.max_latency_increase
        rules.append(
            RuleResult(
                rule="latency_p50",
                outcome=VerdictOutcome.FAIL if rel > limit else VerdictOutcome.PASS,
                baseline=base,
                candidate=cand,
                difference=rel if math.isfinite(rel) else None,
                threshold=limit,
                message=f"median latency {base:.2f} -> {cand:.2f} ms ({rel:+.1%}); fails above "
                f"+{limit:.0%}",
            )
        )
    else:
        rules.append(
            RuleResult(
                rule="latency_p50",
                outcome=VerdictOutcome.INCONCLUSIVE,
                message="latency was not recorded for both runs",
            )
        )

    verdict = Verdict(
        outcome=verdict_outcome(rules),
        baseline_run=baseline.id,
        candidate_run=candidate.id,
        rules=rules,
    )
    return Comparison(
        verdict=verdict, bootstrap=boot, mcnemar=mcnemar, subset_sizes=sizes, labels=labels
    )


def compare(
    baseline: EvalRun,
    candidate: EvalRun,
    suite: EvalSuite,
    workflow: Workflow,
    *,
    probe: Any = None,
) -> Verdict:
    """Apply the workflow's regression policy to two runs on one suite -> :class:`Verdict`.

    Exit codes (``Verdict.exit_code``): 0 pass, 1 fail, 2 inconclusive.
    """
    return compare_runs(baseline, candidate, suite, workflow, probe=probe).verdict
