"""The router: rules first, then a chain of models, human routing (clarify) as the fallback."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from tunegate.config import RuleSpec, Workflow
from tunegate.errors import InputError
from tunegate.models._base import Classifier, Metadata, check_proba
from tunegate.models._rules import RulesClassifier
from tunegate.records import Decision, ModelKind, Route, RuleHit, Ticket, content_hash
from tunegate.routing import route

__all__ = ["Router"]


class Router:
    """Decides tickets: rules, then each model of ``chain`` in turn, then a human.

    1. A rule hit decides the ticket (probabilities near one-hot on the rule's label, routed
       by the policy, so an escalate-class rule escalates). The hit is the provenance.
    2. Otherwise each model in ``chain`` scores the tickets still open; a ticket is decided by
       the first model whose route is not ``clarify`` (``auto``, or ``escalate``: an
       escalation is never overruled by a later model, because it protects a class).
    3. Tickets no model is sure about keep the last model's probabilities with route
       ``clarify`` (human routing). With an empty chain that is a uniform row.

    Each model routes with its own threshold: its ``clarify_threshold`` attribute when it has
    one (a registered version's fitted threshold, set by
    :func:`tunegate.models.load_model_version`), else ``workflow.routing.clarify_threshold``;
    rule hits route with the workflow's policy.

    ``Decision.model_version`` is ``version`` (default: the single model's version when the
    chain has one model and there are no rules, else a hash of the components' versions).
    ``latency_ms`` is the wall time of every stage the ticket went through, divided by the
    number of tickets in each stage's batch.
    """

    kind = ModelKind.ROUTER

    def __init__(
        self,
        workflow: Workflow,
        chain: Sequence[Classifier] = (),
        *,
        rules: RulesClassifier | Sequence[RuleSpec] | None = None,
        version: str | None = None,
    ) -> None:
        self.workflow = workflow
        self.labels = workflow.label_names
        for clf in chain:
            if list(clf.labels) != self.labels:
                raise InputError(
                    f"model {clf.version} has labels {clf.labels}, the workflow "
                    f"has {self.labels}; every model in the chain must use the "
                    f"workflow's labels in its order"
                )
        self.chain = list(chain)
        self._workflows = [_own_routing(workflow, clf) for clf in self.chain]
        """Per chain model: the workflow with that model's routing threshold."""
        if rules is None:
            rules = workflow.rules
        self.rules = (
            rules
            if isinstance(rules, RulesClassifier)
            else RulesClassifier(list(rules), self.labels)
        )
        self._version = version

    @property
    def version(self) -> str:
        if self._version is not None:
            return self._version
        if len(self.chain) == 1 and not self.rules.rules:
            return self.chain[0].version
        parts = [self.rules.version if self.rules.rules else "", *(c.version for c in self.chain)]
        return f"router-{content_hash(parts)[:12]}"

    def _run(
        self, texts: list[str], metadata: Metadata
    ) -> tuple[np.ndarray, list[RuleHit | None], np.ndarray, list[Workflow]]:
        """Probabilities (n, k), rule hits, per-text latency (ms) of the routed decision, and
        per text the workflow (routing policy) of the component that decided it."""
        n = len(texts)
        k = len(self.labels)
        proba = np.full((n, k), 1.0 / k)
        latency = np.zeros(n)
        policy = [self.workflow] * n
        start = time.perf_counter()
        hits: list[RuleHit | None] = self.rules.hits(texts) if self.rules.rules else [None] * n
        if self.rules.rules and n:
            latency += (time.perf_counter() - start) * 1000.0 / n
        open_idx = [i for i, h in enumerate(hits) if h is None]
        for i, h in enumerate(hits):
            if h is not None:
                proba[i] = self.rules.proba_for_hits([h])[0]
        for clf, own in zip(self.chain, self._workflows, strict=True):
            if not open_idx:
                break
            start = time.perf_counter()
            meta = [metadata[i] for i in open_idx] if metadata is not None else None
            part = check_proba(
                clf.predict_proba([texts[i] for i in open_idx], meta), len(open_idx), self.labels
            )
            latency[open_idx] += (time.perf_counter() - start) * 1000.0 / len(open_idx)
            still_open = []
            for row, i in zip(part, open_idx, strict=True):
                proba[i] = row
                policy[i] = own
                if route(row, self.labels, own.routing)[2] is Route.CLARIFY:
                    still_open.append(i)
            open_idx = still_open
        return proba, hits, latency, policy

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, k) probabilities of the component that decided each text."""
        return self._run(list(texts), metadata)[0]

    def decide(self, tickets: Sequence[Ticket], *, shadow: bool = False) -> list[Decision]:
        """One :class:`Decision` per ticket, in order."""
        if not tickets:
            return []
        texts = [t.text for t in tickets]
        metadata = [t.metadata for t in tickets]
        proba, hits, latency, policy = self._run(texts, metadata)
        version = self.version
        decisions = []
        for ticket, row, hit, ms, wf in zip(tickets, proba, hits, latency, policy, strict=True):
            decisions.append(
                make_decision(
                    ticket.id,
                    row,
                    self.labels,
                    wf,
                    model_version=version,
                    latency_ms=float(ms),
                    rule_hits=[hit] if hit is not None else [],
                    shadow=shadow,
                )
            )
        return decisions


def _own_routing(workflow: Workflow, clf: Classifier) -> Workflow:
    """``workflow`` with ``clf``'s own ``clarify_threshold`` (when it has one) as the routing
    threshold."""
    threshold = getattr(clf, "clarify_threshold", None)
    if threshold is None or float(threshold) == workflow.routing.clarify_threshold:
        return workflow
    routing = workflow.routing.model_copy(update={"clarify_threshold": float(threshold)})
    return workflow.model_copy(update={"routing": routing})


def make_decision(
    ticket_id: str,
    row: np.ndarray,
    labels: Sequence[str],
    workflow: Workflow,
    *,
    model_version: str,
    latency_ms: float = 0.0,
    rule_hits: Sequence[RuleHit] = (),
    shadow: bool = False,
    **extra: Any,
) -> Decision:
    """A :class:`Decision` from one probability row (routed by ``workflow.routing``)."""
    p = np.asarray(row, dtype=np.float64)
    p = p / p.sum()
    label, h_norm, chosen = route(p, labels, workflow.routing)
    return Decision(
        ticket_id=ticket_id,
        model_version=model_version,
        probabilities={y: float(v) for y, v in zip(labels, p, strict=True)},
        label=label,
        h_norm=h_norm,
        route=chosen,
        latency_ms=max(0.0, latency_ms),
        rule_hits=list(rule_hits),
        shadow=shadow,
        **extra,
    )
