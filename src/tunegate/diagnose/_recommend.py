"""Turn confirmed triage categories into one recommendation (thresholds in ``workflow.triage``)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from tunegate.config import TriagePolicy, Workflow
from tunegate.diagnose._failures import failures_from_store
from tunegate.diagnose._triage import TriageCategory
from tunegate.diagnose._triage_review import confirmed_triage

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["Recommendation", "recommend", "recommend_from_store"]


@dataclass(frozen=True)
class Recommendation:
    """What to do about the triaged failures, and why."""

    action: str
    """``retrieval`` | ``rules`` | ``constrained_output`` | ``fine_tune`` | ``instructions`` |
    ``insufficient_data``."""
    reasons: list[str]
    """One line per threshold that was crossed (or why none was)."""
    shares: dict[str, float]
    """Category -> share of the triaged failures."""
    counts: dict[str, int]
    total: int
    needed: int = 0
    """Further triaged failures needed before a recommendation (insufficient_data only)."""
    also: list[str] = field(default_factory=list)
    """Other actions whose thresholds were crossed too."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def recommend(
    categories: Iterable[str | TriageCategory],
    policy: TriagePolicy,
    *,
    recurring_share: float | None = None,
    trend_stable: bool | None = None,
    min_recurring_share: float = 0.5,
) -> Recommendation:
    """Turn confirmed categories into one recommendation (thresholds in ``policy``).

    In order: fewer than ``policy.min_failures`` -> ``insufficient_data`` (with how many more);
    facts share (missing + stale) > ``facts_share`` -> ``retrieval``; policy share >
    ``policy_share`` -> ``rules``; formatting share > ``formatting_share`` ->
    ``constrained_output``. When several cross, the largest share leads and the others are in
    ``also``. With none crossed, ``fine_tune`` only for stable, repetitive behaviour:
    reasoning failures are the largest category, at least ``min_recurring_share`` of them fall
    in recurring missed-signal patterns (``recurring_share``), and the override trend is stable
    or increasing (``trend_stable``). Otherwise ``instructions``.
    """
    counts = Counter(TriageCategory(c).value for c in categories)
    total = sum(counts.values())
    all_counts = {c.value: counts.get(c.value, 0) for c in TriageCategory}
    shares = {k: (v / total if total else 0.0) for k, v in all_counts.items()}
    if total < policy.min_failures:
        need = policy.min_failures - total
        return Recommendation(
            "insufficient_data",
            [
                f"{total} confirmed triaged failures; a recommendation needs "
                f"{policy.min_failures}: "
                f"triage {need} more (`tunegate triage export` / `triage confirm`)"
            ],
            shares,
            all_counts,
            total,
            needed=need,
        )
    facts = shares["missing_facts"] + shares["stale_facts"]
    crossed: list[tuple[float, str, str]] = []
    if facts > policy.facts_share:
        crossed.append(
            (
                facts,
                "retrieval",
                f"missing/stale facts are {facts:.0%} of failures "
                f"(> {policy.facts_share:.0%}): give the model the facts at inference time "
                "(retrieval over reviewed "
                "examples or documents) instead of baking them into weights",
            )
        )
    if shares["policy_violation"] > policy.policy_share:
        crossed.append(
            (
                shares["policy_violation"],
                "rules",
                f"policy violations are {shares['policy_violation']:.0%} of failures "
                f"(> {policy.policy_share:.0%}): move the policy into deterministic rules",
            )
        )
    if shares["formatting_failure"] > policy.formatting_share:
        crossed.append(
            (
                shares["formatting_failure"],
                "constrained_output",
                f"formatting failures are {shares['formatting_failure']:.0%} of failures "
                f"(> {policy.formatting_share:.0%}): constrain the output to the "
                "label set",
            )
        )
    if crossed:
        crossed.sort(key=lambda t: -t[0])
        return Recommendation(
            crossed[0][1],
            [t[2] for t in crossed],
            shares,
            all_counts,
            total,
            also=[t[1] for t in crossed[1:]],
        )
    reasoning = shares["reasoning_failure"]
    largest = max(shares, key=lambda k: shares[k])
    reasons = [
        f"no cheap-fix threshold crossed (facts {facts:.0%}, policy "
        f"{shares['policy_violation']:.0%}, formatting {shares['formatting_failure']:.0%})"
    ]
    repetitive = recurring_share is not None and recurring_share >= min_recurring_share
    if largest == "reasoning_failure" and repetitive and trend_stable:
        reasons.append(
            f"reasoning failures lead ({reasoning:.0%}), {recurring_share:.0%} of them fall in "
            f"recurring missed-signal patterns and the trend is stable or increasing: stable, "
            f"repetitive behaviour that fine-tuning can learn (subject to the gate)"
        )
        return Recommendation("fine_tune", reasons, shares, all_counts, total)
    if largest != "reasoning_failure":
        reasons.append(f"the largest category is {largest} ({shares[largest]:.0%}), not reasoning")
    if not repetitive:
        shown = "unknown" if recurring_share is None else f"{recurring_share:.0%}"
        reasons.append(
            f"reasoning failures are not concentrated in recurring patterns "
            f"({shown} < {min_recurring_share:.0%})"
        )
    if not trend_stable:
        reasons.append("the override trend is not shown to be stable or increasing")
    reasons.append(
        "improve the instructions / label descriptions first (`tunegate try instructions`)"
    )
    return Recommendation("instructions", reasons, shares, all_counts, total)


def recommend_from_store(store: Store, workflow: Workflow) -> Recommendation:
    """:func:`recommend` over the store's confirmed triage, with the trend and the share of
    reasoning failures whose text contains a recurring missed-signal pattern."""
    from tunegate.diagnose._overrides import override_trend_from_store, patterns_from_store
    from tunegate.text import ngrams

    confirmed = confirmed_triage(store)
    if len(confirmed) < workflow.triage.min_failures:
        return recommend(confirmed.values(), workflow.triage)
    trend = override_trend_from_store(store, workflow)
    patterns = {p.ngram for p in patterns_from_store(store, workflow)}
    reasoning_ids = [k for k, v in confirmed.items() if v == TriageCategory.REASONING_FAILURE]
    cases = {c.id: c for c in failures_from_store(store)}
    texts = [cases[i].text for i in reasoning_ids if i in cases]
    share = (sum(1 for t in texts if ngrams(t) & patterns) / len(texts)) if texts else None
    return recommend(
        confirmed.values(),
        workflow.triage,
        recurring_share=share,
        trend_stable=trend.decision.passed,
    )
