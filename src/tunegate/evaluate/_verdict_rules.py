"""The regression policy as registered verdict rules: one pure function per rule.

:func:`tunegate.evaluate.compare_runs` gathers the evidence once (:class:`VerdictEvidence`:
the paired bootstrap, McNemar's tests, subset sizes, the policy); every rule registered with
:func:`verdict_rule` turns it into findings (:class:`~tunegate.records.RuleResult`, each pass,
fail or inconclusive with a message), in registration order; :func:`verdict_outcome` combines
them. A rule returns a list because some rules give one finding per protected class, and an
optional one (the external probe) gives none when its evidence is absent.

With ``d`` the point estimate of a *harm* (an accuracy drop, an FNR rise, an ECE rise),
``[lo, hi]`` its paired interval (bias-corrected: it contains ``d``) and ``tol`` the rule's
tolerance, every regression rule **fails** exactly when ``d > tol`` and ``lo > 0``: the harm
exceeds tolerance and is real (its interval excludes 0). Rules differ only in what passes:

* :func:`harm_rule` (a non-inferiority test; ``preservation``, ``protected_fnr``,
  ``latency_p50``): **pass** when ``hi <= tol``, the harm is shown to be within tolerance;
* :func:`rise_rule` (``ece``, the robustness rules ``robustness:flip_rate`` and
  ``robustness:attack_success:<perturbation>``, and the selective-prediction rules
  ``selective_risk:aurc``, ``selective_risk:at_coverage``, ``oos_auto_rate``): **pass**
  when ``d <= tol``. Their intervals are a few points wide on a few hundred examples even for
  two equally good models, so requiring ``hi <= tol`` would hold back nearly every candidate;
* **inconclusive** otherwise (and when ``d`` is not measurable): the data cannot tell.

Messages say what happened by its sign ("preservation accuracy rose 10.78 points", "fell 3.10
points"), while the numeric fields of the finding keep the harm (``difference`` = the drop or
the rise). Every message names the configured confidence level (``regression.confidence``).

``latency_p50`` reads only a paired measurement (:class:`~tunegate.evaluate.PairedLatency`:
both models timed side by side in one sitting) and applies the same CI-aware rule to the
relative rise of the CPU time per example (the median of the paired ratios; wall time is shown
beside it); without one it gives no finding (latency of two runs recorded at different times
measures the machine's load, not the models).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunegate._registries import NamedRegistry
from tunegate.config import RegressionPolicy
from tunegate.metrics import BootstrapResult, Interval, McNemarResult
from tunegate.records import RuleResult, VerdictOutcome

if TYPE_CHECKING:
    from tunegate.evaluate._latency import PairedLatency
    from tunegate.evaluate._probe import ProbeComparison
    from tunegate.evaluate._robustness import RobustnessComparison

__all__ = [
    "VerdictEvidence",
    "VerdictRule",
    "confidence_label",
    "harm_beyond_tolerance",
    "harm_rule",
    "rise_rule",
    "verdict_outcome",
    "verdict_rule",
    "verdict_rules",
]


def confidence_label(level: float) -> str:
    """A confidence level as a percentage: ``0.95`` -> ``"95%"``, ``0.975`` -> ``"97.5%"``."""
    return f"{round(level * 100.0, 6):g}%"


@dataclass(frozen=True)
class VerdictEvidence:
    """Everything the verdict rules read, gathered once by :func:`compare_runs`."""

    bootstrap: BootstrapResult
    """``a`` = baseline, ``b`` = candidate, ``diff`` = candidate - baseline (paired)."""
    mcnemar: Mapping[str, McNemarResult]
    """McNemar's exact test per non-empty subset (``overall``, ``slice:core``, ...)."""
    subset_sizes: Mapping[str, int]
    """Examples per subset, including empty ones."""
    labels: Sequence[str]
    """The workflow's labels, in class-id order."""
    protected_labels: Sequence[str]
    """Classes whose false-negative rate must not rise."""
    policy: RegressionPolicy
    """Tolerances and the bootstrap's confidence level."""
    with_latency: bool
    """Both runs recorded a latency per example (shown in reports, not judged: they were
    recorded at different times)."""
    probe: ProbeComparison | None = None
    """An optional external-probe comparison of the encoder (one more preservation rule)."""
    latency: PairedLatency | None = None
    """Both models timed side by side in one sitting: what ``latency_p50`` judges."""
    robustness: RobustnessComparison | None = None
    """Both runs scored on the suite's robustness slice (what ``robustness`` judges)."""

    @property
    def confidence(self) -> float:
        """The confidence level of the bootstrap intervals."""
        return self.bootstrap.confidence

    def table(self, which: str, subset: str) -> Mapping[str, Interval]:
        """``a`` (baseline), ``b`` (candidate) or ``diff`` intervals of one subset."""
        found = {"a": self.bootstrap.a, "b": self.bootstrap.b, "diff": self.bootstrap.diff}[which]
        assert found is not None, "the verdict needs a paired bootstrap"
        return found[subset]


RuleFn = Callable[[VerdictEvidence], list[RuleResult]]


@dataclass(frozen=True)
class VerdictRule:
    """A registered verdict rule."""

    name: str
    fn: RuleFn
    description: str


_RULES: NamedRegistry[VerdictRule] = NamedRegistry("verdict rule")


def verdict_rule(name: str) -> Callable[[RuleFn], RuleFn]:
    """Register a verdict rule under ``name`` (unique); rules run in registration order."""

    def deco(fn: RuleFn) -> RuleFn:
        _RULES.add(name, VerdictRule(name, fn, (fn.__doc__ or "").strip()))
        return fn

    return deco


def verdict_rules() -> list[VerdictRule]:
    """The registered verdict rules, in the order they are applied."""
    return list(_RULES)


def verdict_outcome(rules: list[RuleResult]) -> VerdictOutcome:
    """fail if any rule fails, else inconclusive if any is, else pass."""
    outcomes = {r.outcome for r in rules}
    if VerdictOutcome.FAIL in outcomes:
        return VerdictOutcome.FAIL
    if VerdictOutcome.INCONCLUSIVE in outcomes:
        return VerdictOutcome.INCONCLUSIVE
    return VerdictOutcome.PASS


def _f(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def harm_beyond_tolerance(harm: Interval, tolerance: float) -> bool:
    """The one failure condition of every regression rule: the harm's point estimate exceeds
    ``tolerance`` and its interval excludes 0 (``lo > 0``)."""
    return bool(harm.estimate > tolerance and harm.low > 0)


def _harm_outcome(d: float, lo: float, hi: float, tolerance: float) -> tuple[VerdictOutcome, str]:
    """The CI-aware non-inferiority rule of the module docstring, with its reason."""
    if math.isnan(d):
        return VerdictOutcome.INCONCLUSIVE, "not measurable on this suite"
    if hi <= tolerance:
        return VerdictOutcome.PASS, "within tolerance"
    if harm_beyond_tolerance(Interval(d, lo, hi), tolerance):
        return VerdictOutcome.FAIL, "exceeds tolerance and is not noise"
    return (
        VerdictOutcome.INCONCLUSIVE,
        "cannot rule out a harm beyond tolerance (interval too wide)",
    )


def _rise_outcome(rise: Interval, tolerance: float) -> tuple[VerdictOutcome, str]:
    """The point-estimate rule of the module docstring (:func:`rise_rule`), with its reason."""
    if math.isnan(rise.estimate):
        return VerdictOutcome.INCONCLUSIVE, "not measurable on this suite"
    if rise.estimate <= tolerance:
        return VerdictOutcome.PASS, "within tolerance"
    if harm_beyond_tolerance(rise, tolerance):
        return VerdictOutcome.FAIL, "a rise beyond tolerance and noise"
    return VerdictOutcome.INCONCLUSIVE, "above tolerance but within noise"


def rise_rule(
    rule: str,
    rise: Interval,
    tolerance: float,
    *,
    baseline: float,
    candidate: float,
    what: str,
    confidence: float = 0.95,
    context: str = "",
) -> RuleResult:
    """Judge the rise of a lower-is-better figure (``what``: ``"ECE"``, ``"AURC"``) whose
    interval is wide even between equal models: pass when the point rise is within
    ``tolerance``; fail when :func:`harm_beyond_tolerance`; else inconclusive. The message says
    the change by its sign ("ECE rose 0.0123 (0.0300 -> 0.0423; 95% CI ...)") and ends with
    ``context``."""
    outcome, reason = _rise_outcome(rise, tolerance)
    if math.isnan(rise.estimate):
        message = f"{what}: {reason}"
    else:
        amount = f" {abs(rise.estimate):.4f}" if rise.estimate != 0 else ""
        message = (
            f"{what} {_moved(rise.estimate)}{amount} ({baseline:.4f} -> {candidate:.4f}; "
            f"{confidence_label(confidence)} CI {rise.low:+.4f} to {rise.high:+.4f}), "
            f"tolerance +{tolerance:.4f}: {reason}"
        )
    return RuleResult(
        rule=rule,
        outcome=outcome,
        baseline=_f(baseline),
        candidate=_f(candidate),
        difference=_f(rise.estimate),
        ci_low=_f(rise.low),
        ci_high=_f(rise.high),
        threshold=tolerance,
        message=f"{message}{context}",
    )


def _moved(change: float) -> str:
    """``"rose"``, ``"fell"`` or ``"did not change"`` by the sign of ``change``."""
    return "rose" if change > 0 else "fell" if change < 0 else "did not change"


def _split_what(what: str, direction: str | None) -> tuple[str, str]:
    """(quantity, "drop" | "rise"): ``"preservation accuracy drop"`` -> the quantity and its
    harm direction (given, or read from the last word)."""
    if direction is None:
        head, _, last = what.rpartition(" ")
        if last in ("drop", "rise") and head:
            return head, last
        return what, "drop"
    if direction not in ("drop", "rise"):
        raise ValueError(f"direction must be 'drop' or 'rise', got {direction!r}")
    return what, direction


def harm_rule(
    rule: str,
    harm: Interval,
    tolerance: float,
    *,
    baseline: float,
    candidate: float,
    what: str,
    confidence: float = 0.95,
    direction: str | None = None,
) -> RuleResult:
    """Apply the CI-aware non-inferiority rule to a harm (drop or rise) and its interval
    (``confidence``: the interval's level, printed in the message).

    ``what`` names the quantity (``"preservation accuracy"``) and ``direction`` whether its
    harm is a ``"drop"`` or a ``"rise"``; a ``what`` ending in " drop" / " rise" says both. The
    message states the change by its sign in points ("rose 10.78 points", "fell 3.10
    points"); the finding's numbers are the harm's.
    """
    d, lo, hi = harm.estimate, harm.low, harm.high
    quantity, kind = _split_what(what, direction)
    outcome, reason = _harm_outcome(d, lo, hi, tolerance)
    if math.isnan(d):
        message = f"{quantity}: {reason}"
    else:
        # the change in the quantity itself (a drop's harm is minus the change)
        sign = -1.0 if kind == "drop" else 1.0
        change, c_lo, c_hi = sign * d, min(sign * lo, sign * hi), max(sign * lo, sign * hi)
        moved = _moved(change)
        amount = f" {abs(change) * 100:.2f} points" if change != 0 else ""
        message = (
            f"{quantity} {moved}{amount} ({confidence_label(confidence)} CI "
            f"{c_lo * 100:+.2f} to {c_hi * 100:+.2f} points); a {kind} of at most "
            f"{tolerance * 100:.2f} points is tolerated: {reason}"
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
        message=message,
    )


@verdict_rule("core_improvement")
def core_improvement(ev: VerdictEvidence) -> list[RuleResult]:
    """Core accuracy (overall when the suite has no core slice): pass when its interval is
    above 0, fail when below 0, inconclusive ("within noise") when it contains 0."""
    main = "slice:core" if ev.subset_sizes["slice:core"] else "overall"
    gain = ev.table("diff", main)["accuracy"]
    base_acc = ev.table("a", main)["accuracy"].estimate
    cand_acc = ev.table("b", main)["accuracy"].estimate
    p_value = ev.mcnemar[main].p_value if main in ev.mcnemar else float("nan")
    figures = (
        f"{main.removeprefix('slice:')} accuracy {base_acc:.4f} -> {cand_acc:.4f} "
        f"({gain.estimate:+.4f}, {confidence_label(ev.confidence)} CI {gain.low:+.4f} to "
        f"{gain.high:+.4f}; McNemar exact p={p_value:.3g})"
    )
    if gain.low > 0:
        outcome, why = VerdictOutcome.PASS, f"{figures}: an improvement beyond noise"
    elif gain.high < 0:
        outcome, why = VerdictOutcome.FAIL, f"{figures}: a regression beyond noise"
    else:
        outcome, why = VerdictOutcome.INCONCLUSIVE, f"{figures}: within noise"
    return [
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
    ]


@verdict_rule("preservation")
def preservation(ev: VerdictEvidence) -> list[RuleResult]:
    """Accuracy drop on the preservation slice within ``preservation_tolerance`` (CI-aware); a
    drop beyond it fails whatever core gained. Inconclusive when the suite has no such slice."""
    if not ev.subset_sizes["slice:preservation"]:
        return [
            RuleResult(
                rule="preservation",
                outcome=VerdictOutcome.INCONCLUSIVE,
                message="the suite has no preservation slice; add 50-100 "
                "examples of behaviour that must not regress",
            )
        ]
    d = ev.table("diff", "slice:preservation")["accuracy"]
    return [
        harm_rule(
            "preservation",
            Interval(-d.estimate, -d.high, -d.low),
            ev.policy.preservation_tolerance,
            baseline=ev.table("a", "slice:preservation")["accuracy"].estimate,
            candidate=ev.table("b", "slice:preservation")["accuracy"].estimate,
            what="preservation accuracy",
            direction="drop",
            confidence=ev.confidence,
        )
    ]


@verdict_rule("preservation_probe")
def preservation_probe_rule(ev: VerdictEvidence) -> list[RuleResult]:
    """The external probe's accuracy drop within ``preservation_tolerance`` (CI-aware), as
    ``preservation:<dataset>``; no finding when no probe was given."""
    probe = ev.probe
    if probe is None:
        return []
    return [
        harm_rule(
            f"preservation:{probe.dataset}",
            probe.drop,
            ev.policy.preservation_tolerance,
            baseline=probe.before.accuracy,
            candidate=probe.after.accuracy,
            what=f"{probe.dataset} probe accuracy",
            direction="drop",
            confidence=probe.confidence,
        )
    ]


@verdict_rule("protected_fnr")
def protected_fnr(ev: VerdictEvidence) -> list[RuleResult]:
    """For every protected class, ``protected_fnr:<label>``: its false-negative-rate rise over
    the whole suite within ``protected_fnr_tolerance`` (CI-aware)."""
    out = []
    for label in ev.protected_labels:
        key = f"fnr:{list(ev.labels).index(label)}"
        out.append(
            harm_rule(
                f"protected_fnr:{label}",
                ev.table("diff", "overall")[key],
                ev.policy.protected_fnr_tolerance,
                baseline=ev.table("a", "overall")[key].estimate,
                candidate=ev.table("b", "overall")[key].estimate,
                what=f"{label} false-negative rate",
                direction="rise",
                confidence=ev.confidence,
            )
        )
    return out


@verdict_rule("ece")
def ece(ev: VerdictEvidence) -> list[RuleResult]:
    """A point rise of ECE within ``max_ece_increase`` passes; above it, fail when the interval
    excludes 0, else inconclusive (:func:`rise_rule`)."""
    key = "expected_calibration_error"
    return [
        rise_rule(
            "ece",
            ev.table("diff", "overall")[key],
            ev.policy.max_ece_increase,
            baseline=ev.table("a", "overall")[key].estimate,
            candidate=ev.table("b", "overall")[key].estimate,
            what="ECE",
            confidence=ev.confidence,
        )
    ]


@verdict_rule("latency_p50")
def latency_p50(ev: VerdictEvidence) -> list[RuleResult]:
    """The relative rise of the CPU time per example (median of the paired ratios), both
    models timed side by side in one sitting (``compare_runs(..., latency=)``), within
    ``max_latency_increase`` (CI-aware); no finding without that measurement."""
    lat = ev.latency
    if lat is None:
        return []
    rise = lat.rise
    limit = ev.policy.max_latency_increase
    outcome, reason = _harm_outcome(rise.estimate, rise.low, rise.high, limit)
    wall = lat.wall_ratio.estimate - 1.0
    message = (
        f"CPU time per example {lat.baseline_cpu_ms:.2f} -> {lat.candidate_cpu_ms:.2f} "
        f"ms, timed side by side ({lat.n_pairs} paired rounds): {rise.estimate:+.1%} "
        f"({confidence_label(lat.confidence)} CI {rise.low:+.1%} to {rise.high:+.1%}; wall "
        f"time {lat.baseline_wall_ms:.2f} -> {lat.candidate_wall_ms:.2f} ms, {wall:+.1%}); a "
        f"rise of at most {limit:.0%} is tolerated: {reason}"
    )
    return [
        RuleResult(
            rule="latency_p50",
            outcome=outcome,
            baseline=lat.baseline_cpu_ms,
            candidate=lat.candidate_cpu_ms,
            difference=_f(rise.estimate),
            ci_low=_f(rise.low),
            ci_high=_f(rise.high),
            threshold=limit,
            message=message,
        )
    ]


@verdict_rule("robustness")
def robustness(ev: VerdictEvidence) -> list[RuleResult]:
    """On the suite's robustness slice (both runs scored on it): ``robustness:flip_rate``,
    the rise of the share of label-preserving perturbations that change the prediction,
    within ``max_flip_rate_increase``; and per targeted perturbation,
    ``robustness:attack_success:<name>``, the rise of the share moved to the attack's target,
    within ``max_attack_success_increase`` (:func:`rise_rule`: fail only when the rise
    exceeds tolerance and its interval excludes 0). No finding without a slice."""
    rob = ev.robustness
    if rob is None:
        return []
    out = []
    for key, res in rob.figures.items():
        metric, _, subset = key.partition(":")
        if key == "flip_rate:invariance":
            rule, tol, what = (
                "robustness:flip_rate",
                ev.policy.max_flip_rate_increase,
                "flip rate under label-preserving perturbations",
            )
        elif metric == "attack_success":
            rule, tol, what = (
                f"robustness:attack_success:{subset}",
                ev.policy.max_attack_success_increase,
                f"{subset.replace('_', ' ')} attack success rate",
            )
        else:
            continue
        assert res.diff is not None and res.b is not None
        out.append(
            rise_rule(
                rule,
                res.diff,
                tol,
                baseline=res.a.estimate,
                candidate=res.b.estimate,
                what=what,
                confidence=rob.confidence,
                context=f" ({rob.sizes[key]} suite examples perturbed)",
            )
        )
    return out
