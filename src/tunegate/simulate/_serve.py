"""Serving the simulated stream: the champion's decisions with entropy routing.

The champion is any object with ``labels`` and ``predict_proba(texts) -> (n, k)``; the default
is the workflow's zero-shot classifier (:class:`tunegate.models.ZeroShotClassifier`).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.records import Decision, Ticket
from tunegate.routing import route as route_row

__all__ = ["Champion", "default_champion", "make_decisions", "model_version_of"]

_PROBA_DECIMALS = 6


@runtime_checkable
class Champion(Protocol):
    """What the simulation needs from a model."""

    labels: list[str]

    def predict_proba(self, texts: list[str]) -> Any:  # (n, k) array, rows sum to 1
        ...


def default_champion(workflow: Workflow) -> Champion:
    """The pre-rollout champion: the zero-shot classifier over the workflow's label prompts."""
    from tunegate.models import ZeroShotClassifier

    clf: Champion = ZeroShotClassifier(workflow)
    return clf


def model_version_of(champion: object) -> str:
    """The champion's ``version`` attribute, or its class name."""
    version = getattr(champion, "version", None)
    return str(version) if version else type(champion).__name__


def _rounded(row: np.ndarray) -> np.ndarray:
    r = np.round(row.astype(np.float64), _PROBA_DECIMALS)
    # put the rounding residue on the top class so every row sums to 1 within 1e-6
    r[int(np.argmax(r))] += round(1.0 - float(r.sum()), _PROBA_DECIMALS)
    return np.clip(r, 0.0, 1.0)


def make_decisions(
    champion: Champion,
    tickets: Sequence[Ticket],
    workflow: Workflow,
    *,
    measure_latency: bool = False,
    batch_size: int = 64,
) -> list[Decision]:
    """Classify ``tickets`` with ``champion`` and route each by entropy.

    Probabilities are rounded to 6 decimals (so output files are byte-stable). Latency is
    *modelled* (2 ms + 0.05 ms per character) unless ``measure_latency``, in which case each
    ticket gets its batch's wall time divided by the batch size (not reproducible).
    Decision ids are ``dec-<ticket id>-<8 hex of the model version>``.
    """
    labels = list(champion.labels)
    unknown = [name for name in labels if name not in workflow.labels]
    if unknown:
        raise InputError(
            f"the champion predicts labels {unknown} that are not in workflow "
            f"{workflow.name!r} ({workflow.label_names}); use a model built for it"
        )
    version = model_version_of(champion)
    tag = hashlib.sha256(version.encode()).hexdigest()[:8]
    out: list[Decision] = []
    for start in range(0, len(tickets), batch_size):
        batch = list(tickets[start : start + batch_size])
        began = time.perf_counter()
        proba = np.asarray(champion.predict_proba([t.text for t in batch]), dtype=np.float64)
        elapsed_ms = (time.perf_counter() - began) * 1000.0
        if proba.shape != (len(batch), len(labels)):
            raise ModelError(
                f"{version}: predict_proba returned shape {proba.shape}, expected "
                f"({len(batch)}, {len(labels)})"
            )
        for ticket, raw in zip(batch, proba, strict=True):
            row = _rounded(raw)
            label, h, route = route_row(row, labels, workflow.routing)
            h = min(1.0, max(0.0, h))
            latency = elapsed_ms / len(batch) if measure_latency else 2.0 + 0.05 * len(ticket.text)
            latency = round(latency, 3)
            out.append(
                Decision(
                    id=f"dec-{ticket.id}-{tag}",
                    ticket_id=ticket.id,
                    model_version=version,
                    probabilities={name: float(p) for name, p in zip(labels, row, strict=True)},
                    label=label,
                    h_norm=round(h, _PROBA_DECIMALS),
                    route=route,
                    latency_ms=latency,
                    created_at=ticket.created_at + timedelta(milliseconds=math.ceil(latency)),
                )
            )
    return out
