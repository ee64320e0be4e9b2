"""Stored evaluation runs, summarised for people: what ``tunegate runs`` lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from tunegate.errors import NotFoundError

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = ["RunSummary", "run_summaries"]


@dataclass(frozen=True)
class RunSummary:
    """One stored EvalRun without its per-example arrays."""

    id: str
    model_version: str
    suite: str
    """The suite's name (or its hash prefix when the suite is no longer stored)."""
    suite_hash: str
    n_examples: int
    accuracy: float | None
    """Overall accuracy (point estimate)."""
    seed: int | None
    created_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "model_version": self.model_version,
            "suite": self.suite,
            "suite_hash": self.suite_hash,
            "n_examples": self.n_examples,
            "accuracy": self.accuracy,
            "seed": self.seed,
            "created_at": self.created_at.isoformat(),
        }


def run_summaries(
    store: Store, *, model_version: str | None = None, suite: str | None = None
) -> list[RunSummary]:
    """Stored evaluation runs, newest first, optionally of one model version or one suite
    (a suite name or hash); raises :class:`~tunegate.errors.NotFoundError` for an unknown
    suite."""
    names = {s.hash: s.name for s in store.suites()}
    suite_hash = None
    if suite is not None:
        suite_hash = next((h for h, n in names.items() if suite in (n, h)), None)
        if suite_hash is None:
            raise NotFoundError(
                f"no suite named {suite!r}; stored suites: {sorted(set(names.values())) or 'none'}"
            )
    runs = store.eval_runs(model_version=model_version, suite_hash=suite_hash)
    out = []
    for run in reversed(runs):
        overall = run.metrics.get("overall", {}).get("accuracy", {})
        estimate = overall.get("estimate") if isinstance(overall, dict) else None
        out.append(
            RunSummary(
                id=run.id,
                model_version=run.model_version,
                suite=names.get(run.suite_hash, run.suite_hash[:12]),
                suite_hash=run.suite_hash,
                n_examples=len(run.example_ids),
                accuracy=None if estimate is None else float(estimate),
                seed=run.seed,
                created_at=run.created_at,
            )
        )
    return out
