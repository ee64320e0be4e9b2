"""Failures to triage: correcting overrides and evaluation errors, as :class:`FailureCase`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunegate.records import EvalRun, EvalSuite, Override, Ticket

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "FailureCase",
    "failures_from_eval_run",
    "failures_from_overrides",
    "failures_from_store",
]


@dataclass(frozen=True)
class FailureCase:
    """One failure to triage."""

    id: str
    """The override id, or ``<run id>:<example id>`` for an evaluation error."""
    text: str
    model_label: str | None
    """What the model said (None or a string outside the labels = unparseable output)."""
    final_label: str
    """The correct label (the analyst's, or the suite's)."""
    source: str = "override"
    """``override`` or ``eval``."""
    reason_code: str | None = None
    """The override's reason code (R1..R4), None for evaluation errors."""
    ticket_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Ticket metadata; ``tool_error`` (any truthy value) marks a failed tool call."""


def failures_from_overrides(
    overrides: Iterable[Override], tickets: Iterable[Ticket]
) -> list[FailureCase]:
    """Correcting overrides (final != model label) with their ticket text."""
    by_id = {t.id: t for t in tickets}
    out = []
    for o in overrides:
        t = by_id.get(o.ticket_id)
        if t is None or not o.is_correction:
            continue
        out.append(
            FailureCase(
                id=o.id,
                text=t.text,
                model_label=o.model_label,
                final_label=o.final_label,
                source="override",
                reason_code=str(o.reason_code.value),
                ticket_id=o.ticket_id,
                metadata=dict(t.metadata),
            )
        )
    return out


def failures_from_eval_run(run: EvalRun, suite: EvalSuite) -> list[FailureCase]:
    """The examples an evaluation run got wrong (argmax != y_true)."""
    by_id = {e.id: e for e in suite.examples}
    out = []
    for ex_id, y, row in zip(run.example_ids, run.y_true, run.proba, strict=True):
        pred = max(range(len(row)), key=row.__getitem__) if row else None
        if pred == y or ex_id not in by_id:
            continue
        ex = by_id[ex_id]
        out.append(
            FailureCase(
                id=f"{run.id}:{ex_id}",
                text=ex.text,
                model_label=run.labels[pred] if pred is not None else None,
                final_label=run.labels[y],
                source="eval",
                metadata=dict(ex.metadata),
            )
        )
    return out


def failures_from_store(store: Store, *, since: datetime | None = None) -> list[FailureCase]:
    """Every correcting override in the store, as failure cases."""
    overrides = [o for o in store.overrides(since=since) if o.is_correction]
    ids = sorted({o.ticket_id for o in overrides})
    tickets = store.tickets(ids=ids) if ids else []
    return failures_from_overrides(overrides, tickets)
