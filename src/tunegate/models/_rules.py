"""The deterministic rules layer declared in ``tunegate.yaml`` (matching: :class:`RuleMatcher`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tunegate._matching import RuleMatcher
from tunegate.config import RuleSpec, Workflow
from tunegate.errors import InputError
from tunegate.models._base import Metadata, register_backend
from tunegate.models._encoder import validate_texts
from tunegate.records import ModelKind, RuleHit, content_hash

__all__ = ["RULE_EPSILON", "RuleMatcher", "RulesClassifier"]

RULE_EPSILON = 1e-6
"""Probability left on each other class by a rule hit (so rows have no exact zeros)."""


class RulesClassifier:
    """First matching rule (in declaration order) decides; every hit carries provenance.

    ``predict_proba`` puts ``1 - (K-1)·1e-6`` on a hit's label and a uniform row (the
    "no opinion" row, H_norm = 1) on texts no rule matches.
    """

    kind = ModelKind.RULES

    def __init__(self, rules: Sequence[RuleSpec], labels: Sequence[str]) -> None:
        self.labels = list(labels)
        if len(self.labels) < 2:
            raise InputError(f"a classifier needs at least two labels, got {self.labels}")
        for spec in rules:
            if spec.label not in self.labels:
                raise InputError(
                    f"rule {spec.name!r} assigns {spec.label!r}, which is not a "
                    f"label ({self.labels})"
                )
        names = [spec.name for spec in rules]
        if len(set(names)) != len(names):
            raise InputError(f"rule names must be unique, got {names}")
        self.rules = list(rules)
        self._compiled = [RuleMatcher(spec) for spec in self.rules]

    @property
    def version(self) -> str:
        digest = content_hash("rules", [r.model_dump(mode="json") for r in self.rules])
        return f"rules-{digest[:12]}"

    def hit(self, text: str) -> RuleHit | None:
        """The first rule that fires on ``text``, with the fragments that matched."""
        for rule in self._compiled:
            matched = rule.match(text)
            if matched is not None:
                return RuleHit(rule=rule.spec.name, label=rule.spec.label, matched=matched)
        return None

    def hits(self, texts: Sequence[str]) -> list[RuleHit | None]:
        """:meth:`hit` per text."""
        return [self.hit(t) for t in validate_texts(texts)]

    def proba_for_hits(self, hits: Sequence[RuleHit | None]) -> np.ndarray:
        """(n, K): near one-hot rows for hits, uniform rows for misses."""
        k = len(self.labels)
        out = np.full((len(hits), k), 1.0 / k)
        for i, h in enumerate(hits):
            if h is not None:
                out[i] = RULE_EPSILON
                out[i, self.labels.index(h.label)] = 1.0 - RULE_EPSILON * (k - 1)
        return out

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, K) probabilities in ``labels`` order; ``metadata`` is not used."""
        return self.proba_for_hits(self.hits(texts))


@register_backend("rules")
def _build(workflow: Workflow, **kwargs: Any) -> RulesClassifier:
    rules = kwargs.pop("rules", workflow.rules)
    if kwargs:
        raise InputError(f"the rules backend takes only rules=, got {sorted(kwargs)}")
    return RulesClassifier(rules, workflow.label_names)
