"""What to promote after a fine-tune: the fine-tune, the best cheap fix, or nothing.

:func:`versus_best_cheap_fix` holds a fine-tune to the best cheap fix (an Attempt of
:data:`~tunegate.diagnose.CHEAP_FIX_KINDS` whose verdict passed or was inconclusive), not only
to the champion: when the fine-tune is neither significantly more accurate on core nor misses
significantly fewer examples of a protected class, "the cheap fix is enough", and
:func:`choose_promotion` promotes the cheap fix instead (:func:`register_cheap_fix` makes it a
model version).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from tunegate.config import Workflow
from tunegate.diagnose._attempts import CHEAP_FIX_KINDS
from tunegate.errors import InputError, NotFoundError
from tunegate.metrics import accuracy_score
from tunegate.records import Attempt, AttemptKind, EvalRun, EvalSuite, ModelKind, ModelVersion

if TYPE_CHECKING:
    from tunegate.evaluate import Comparison
    from tunegate.store import Store

__all__ = [
    "CheapFixComparison",
    "PromotionChoice",
    "best_cheap_fix",
    "choose_promotion",
    "register_cheap_fix",
    "versus_best_cheap_fix",
]


@dataclass(frozen=True)
class CheapFixComparison:
    """A fine-tune's EvalRun against the best cheap fix's EvalRun on the same suite."""

    attempt: Attempt
    """The best passing-or-inconclusive cheap fix (highest core accuracy on the suite)."""
    comparison: Comparison
    """Baseline = the cheap fix's run, candidate = the fine-tune's (paired bootstrap)."""
    cheap_fix_enough: bool
    """The fine-tune is neither significantly more accurate on core than the cheap fix nor
    significantly better on a protected class's false-negative rate."""
    message: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for the demo's result and reports)."""
        core = next(r for r in self.comparison.verdict.rules if r.rule == "core_improvement")
        return {
            "attempt": self.attempt.id,
            "kind": self.attempt.kind.value,
            "description": self.attempt.description,
            "cheap_fix_run": self.comparison.verdict.baseline_run,
            "candidate_run": self.comparison.verdict.candidate_run,
            "core_difference": core.difference,
            "ci_low": core.ci_low,
            "ci_high": core.ci_high,
            "cheap_fix_enough": self.cheap_fix_enough,
            "message": self.message,
        }


def _core_accuracy(run: EvalRun, suite: EvalSuite) -> float:
    """The run's accuracy on the suite's core slice (the whole suite when it has none)."""
    core = {e.id for e in suite.examples if e.slice.value == "core"}
    keep = [i for i, ex in enumerate(run.example_ids) if not core or ex in core]
    if not keep:
        return float("nan")
    pred = np.asarray(run.proba, dtype=np.float64)[keep].argmax(axis=1)
    return accuracy_score(np.asarray(run.y_true)[keep], pred)


def best_cheap_fix(
    attempts: Sequence[Attempt], suite: EvalSuite, runs: Callable[[str], EvalRun]
) -> tuple[Attempt, EvalRun] | None:
    """The cheap fix (instructions, rules, retrieval, prompt) whose verdict passed or was
    inconclusive, made on ``suite``, with the highest core accuracy, and its candidate EvalRun
    (``runs(id)`` looks a run up, e.g. ``store.get_eval_run``); ``None`` when there is none."""
    suite_hash = suite.hash or suite.compute_hash()
    best: tuple[float, int, Attempt, EvalRun] | None = None
    for n, a in enumerate(attempts):
        if a.kind not in CHEAP_FIX_KINDS or a.verdict is None:
            continue
        if a.verdict.outcome.value == "fail" or a.details.get("suite_hash") != suite_hash:
            continue
        run_id = a.details.get("candidate_run")
        if not run_id:
            continue
        run = runs(str(run_id))
        key = (_core_accuracy(run, suite), n)
        if best is None or key > best[:2]:
            best = (*key, a, run)
    return None if best is None else (best[2], best[3])


def versus_best_cheap_fix(
    candidate_run: EvalRun,
    suite: EvalSuite,
    workflow: Workflow,
    attempts: Sequence[Attempt],
    runs: Callable[[str], EvalRun],
) -> CheapFixComparison | None:
    """Compare a fine-tune's run with the best cheap fix's run (:func:`best_cheap_fix`) by the
    paired bootstrap of :func:`tunegate.evaluate.compare_runs`. The fine-tune beats it when it
    is significantly more accurate on core (interval above 0) **or** misses significantly
    fewer examples of a protected class (the false-negative rate's interval below 0: what
    the workflow declared it cannot afford to miss); otherwise "the cheap fix is enough".
    ``None`` when no cheap fix passed or was inconclusive on ``suite``."""
    from tunegate.evaluate import compare_runs, confidence_label

    found = best_cheap_fix(attempts, suite, runs)
    if found is None:
        return None
    attempt, fix_run = found
    comparison = compare_runs(fix_run, candidate_run, suite, workflow)
    rules = comparison.verdict.rules
    core = next(r for r in rules if r.rule == "core_improvement")
    level = confidence_label(comparison.confidence)
    # Where the fine-tune must be better: core accuracy, or a protected class's misses (what
    # the workflow declared it cannot afford; the failure a fine-tune is usually for).
    fewer_misses = [
        r
        for r in rules
        if r.rule.startswith("protected_fnr:") and r.ci_high is not None and r.ci_high < 0
    ]
    better_core = core.ci_low is not None and core.ci_low > 0
    enough = not better_core and not fewer_misses
    figures = (
        f"core accuracy {core.baseline:.4f} ({attempt.kind.value}) -> {core.candidate:.4f} "
        f"(fine-tune): {core.difference:+.4f}, {level} CI {core.ci_low:+.4f} to "
        f"{core.ci_high:+.4f}"
    )
    for r in fewer_misses:
        figures += (
            f"; {r.rule.partition(':')[2]} false-negative rate {r.baseline:.4f} -> "
            f"{r.candidate:.4f}: {r.difference:+.4f}, {level} CI {r.ci_low:+.4f} to "
            f"{r.ci_high:+.4f}"
        )
    message = (
        f"the cheap fix is enough: the fine-tune is not significantly better than "
        f"{attempt.kind.value} on core accuracy or on a protected class's misses ({figures})"
        if enough
        else f"the fine-tune beats the best cheap fix, {attempt.kind.value} ({figures})"
    )
    return CheapFixComparison(attempt, comparison, enough, message)


@dataclass(frozen=True)
class PromotionChoice:
    """What to promote after a fine-tune: the fine-tune, the best cheap fix, or nothing.

    ``version`` is the version to promote (for a cheap fix: the Attempt's candidate, registered
    with :func:`register_cheap_fix` first); ``None`` keeps the champion."""

    choice: str
    """``"fine-tune"``, ``"cheap fix"`` or ``"keep champion"``."""
    version: str | None
    reason: str
    cheap_fix: Attempt | None = None
    """The cheap fix's Attempt when it is chosen."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        return {
            "choice": self.choice,
            "version": self.version,
            "reason": self.reason,
            "cheap_fix_attempt": self.cheap_fix.id if self.cheap_fix is not None else None,
        }


def choose_promotion(
    candidate_version: str, verdict: Any, versus: CheapFixComparison | None
) -> PromotionChoice:
    """The fine-tune must beat the champion **and** the best cheap fix.

    * its verdict against the champion is not a pass: keep the champion;
    * no cheap fix passed or was inconclusive (``versus`` is ``None``), or the fine-tune is
      significantly more accurate on core than the best one: promote the fine-tune;
    * otherwise "the cheap fix is enough": promote the cheap fix when its own verdict against
      the champion passed, else keep the champion (neither change is proven better).
    """
    outcome = getattr(getattr(verdict, "outcome", None), "value", None)
    if outcome != "pass":
        return PromotionChoice(
            "keep champion", None, f"the fine-tune's verdict against the champion is {outcome}"
        )
    if versus is None:
        return PromotionChoice(
            "fine-tune",
            candidate_version,
            "its verdict passed and no cheap fix passed or was inconclusive",
        )
    if not versus.cheap_fix_enough:
        return PromotionChoice("fine-tune", candidate_version, versus.message)
    fix = versus.attempt
    fix_outcome = fix.verdict.outcome.value if fix.verdict is not None else None
    if fix_outcome == "pass":
        return PromotionChoice("cheap fix", fix.candidate_version, versus.message, fix)
    return PromotionChoice(
        "keep champion",
        None,
        f"{versus.message}; the {fix.kind.value} fix's own verdict is {fix_outcome}, so neither "
        "change is proven better than the champion",
    )


def register_cheap_fix(
    store: Store, workflow: Workflow, attempt: Attempt, *, actor: str = "tunegate"
) -> ModelVersion:
    """Register a cheap fix's candidate as a :class:`~tunegate.records.ModelVersion` (id = the
    Attempt's ``candidate_version``, so its stored Verdict against the champion is the one
    :meth:`tunegate.registry.Registry.promote` reads). Idempotent.

    ``instructions``: a zero-shot version with the new instructions; ``retrieval``: a kNN
    version over exactly the reviewed examples the attempt used (their ids are pinned in the
    version's config). Rules are not versions: add them to ``tunegate.yaml`` ``rules:`` (the
    router applies them before any model); :class:`~tunegate.errors.InputError` says so.
    """
    from tunegate.models import load_model_version
    from tunegate.registry import Registry

    details = attempt.details
    if attempt.kind is AttemptKind.RETRIEVAL:
        ids = details.get("example_ids")
        if not ids:
            raise InputError(
                f"attempt {attempt.id} does not record its example ids (made by an older "
                "tunegate); run `tunegate try retrieval` again and promote the new attempt"
            )
        kind = ModelKind.RETRIEVAL
        config: dict[str, Any] = {"k": details.get("k", 10), "example_ids": list(ids)}
    elif attempt.kind is AttemptKind.INSTRUCTIONS:
        kind = ModelKind.ZERO_SHOT
        config = {key: details[key] for key in ("instructions", "temperature") if key in details}
        if "instructions" not in config:
            raise InputError(f"attempt {attempt.id} does not record its instructions")
    else:
        raise InputError(
            f"attempt {attempt.id} is a {attempt.kind.value} fix, which is not a model version: "
            "add its rules to tunegate.yaml `rules:` (the router applies them before any model)"
        )
    registry = Registry(store)
    try:
        return registry.get(attempt.candidate_version)
    except NotFoundError:
        pass
    try:  # lineage: the champion it was judged against, when that is registered
        parent: str | None = registry.get(attempt.baseline_version).id
    except NotFoundError:
        parent = None
    mv = ModelVersion(id=attempt.candidate_version, kind=kind, config=config, parent=parent)
    built = load_model_version(mv, workflow, store=store)
    if built.version != mv.id:
        raise InputError(
            f"attempt {attempt.id}'s {attempt.kind.value} fix no longer rebuilds the same model "
            f"({built.version} != {mv.id}): its examples or settings changed; try it again"
        )
    return registry.register(mv, actor=actor)
