"""Label quality: confident learning on out-of-fold probabilities.

Out-of-fold probabilities come from K-fold cross-validation of a logistic regression on frozen
encoder embeddings (fast on CPU: one embedding pass, then K small convex fits). cleanlab's
``find_label_issues`` then flags examples whose given label disagrees with what the rest of the
data implies, ranked by self-confidence (the out-of-fold probability of the given label).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.errors import InputError
from tunegate.records import Example
from tunegate.train._dataset import Embedder

__all__ = ["LabelIssue", "LabelIssueReport", "label_issues", "out_of_fold_proba"]


@dataclass(frozen=True)
class LabelIssue:
    """One example whose label is likely wrong."""

    id: str
    text: str
    given_label: str
    suggested_label: str
    self_confidence: float
    """Out-of-fold probability of the given label (low = likely mislabelled)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "text": self.text,
            "given_label": self.given_label,
            "suggested_label": self.suggested_label,
            "self_confidence": round(self.self_confidence, 4),
        }


@dataclass(frozen=True)
class LabelIssueReport:
    """Flagged examples (most suspicious first) and the evidence they were flagged on."""

    issues: list[LabelIssue]
    n_examples: int
    labels: list[str]
    """Column order of ``pred_probs``."""
    pred_probs: np.ndarray = field(repr=False)
    """(n, k) out-of-fold probabilities, rows in input order."""
    oof_accuracy: float
    """Accuracy of the out-of-fold predictions against the given labels."""
    n_folds: int

    @property
    def flagged_ids(self) -> list[str]:
        return [i.id for i in self.issues]

    def summary(self) -> dict[str, Any]:
        return {
            "n_examples": self.n_examples,
            "n_flagged": len(self.issues),
            "flagged_share": round(len(self.issues) / max(1, self.n_examples), 4),
            "oof_accuracy": round(self.oof_accuracy, 4),
            "n_folds": self.n_folds,
            "flagged_per_given_label": dict(
                sorted(Counter(i.given_label for i in self.issues).items())
            ),
            "issues": [i.to_dict() for i in self.issues],
        }


def out_of_fold_proba(
    features: np.ndarray,
    y: np.ndarray,
    *,
    n_classes: int,
    n_folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
) -> tuple[np.ndarray, int]:
    """(n, n_classes) out-of-fold probabilities of a logistic regression, and folds used.

    ``y`` holds class indices in ``[0, n_classes)``; classes absent from a training fold get
    probability 0 in that fold. Folds are stratified; their number is capped by the smallest
    class count (at least 2).
    """
    sklearn_lm = require("sklearn.linear_model", purpose="label-quality checks")
    sklearn_ms = require("sklearn.model_selection", purpose="label-quality checks")
    counts = np.bincount(y, minlength=n_classes)
    present = counts[counts > 0]
    folds = int(min(n_folds, max(2, present.min() if present.size else 2)))
    if len(y) < 2 * folds:
        raise InputError(
            f"need at least {2 * folds} examples for {folds}-fold label checks, got {len(y)}"
        )
    splitter: Any
    if present.min() >= folds:
        splitter = sklearn_ms.StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = sklearn_ms.KFold(n_splits=folds, shuffle=True, random_state=seed)
    proba = np.zeros((len(y), n_classes), dtype=np.float64)
    for train_idx, test_idx in splitter.split(features, y):
        classes = np.unique(y[train_idx])
        if classes.size == 1:
            proba[np.ix_(test_idx, classes)] = 1.0
            continue
        model = sklearn_lm.LogisticRegression(C=C, max_iter=1000)
        model.fit(features[train_idx], y[train_idx])
        proba[np.ix_(test_idx, model.classes_)] = model.predict_proba(features[test_idx])
    return proba, folds


def label_issues(
    examples: Sequence[Example],
    labels: Sequence[str],
    *,
    encoder: Embedder,
    n_folds: int = 5,
    seed: int = 0,
    features: np.ndarray | None = None,
) -> LabelIssueReport:
    """Flag likely mislabelled ``examples`` with confident learning.

    Args:
        examples: the training examples (their labels must be in ``labels``).
        labels: class names (column order of the returned probabilities).
        encoder: frozen encoder whose embeddings feed the cross-validated classifier.
        n_folds: cross-validation folds (reduced when a class is smaller).
        seed: fold assignment seed.
        features: precomputed (n, d) embeddings of ``examples`` (skips the encoder).
    """
    filt = require("cleanlab.filter", purpose="label-quality checks")
    names = list(labels)
    index = {name: i for i, name in enumerate(names)}
    unknown = sorted({e.label for e in examples} - set(index))
    if unknown:
        raise InputError(f"examples carry labels {unknown} not in {names}")
    y_all = np.array([index[e.label] for e in examples], dtype=np.int64)
    X = features if features is not None else np.asarray(encoder.embed([e.text for e in examples]))
    # cleanlab wants every column to be a class that occurs: work on the present classes only.
    present = np.unique(y_all)
    remap = {int(c): i for i, c in enumerate(present)}
    y = np.array([remap[int(c)] for c in y_all], dtype=np.int64)
    proba_present, folds = out_of_fold_proba(
        X, y, n_classes=len(present), n_folds=n_folds, seed=seed
    )
    proba = np.zeros((len(y), len(names)))
    proba[:, present] = proba_present
    ranked = filt.find_label_issues(
        labels=y, pred_probs=proba_present, return_indices_ranked_by="self_confidence"
    )
    issues = [
        LabelIssue(
            id=examples[i].id,
            text=examples[i].text,
            given_label=examples[i].label,
            suggested_label=names[int(present[int(proba_present[i].argmax())])],
            self_confidence=float(proba_present[i, y[i]]),
        )
        for i in (int(j) for j in ranked)
    ]
    oof_acc = float((proba_present.argmax(axis=1) == y).mean())
    return LabelIssueReport(
        issues=issues,
        n_examples=len(examples),
        labels=names,
        pred_probs=proba,
        oof_accuracy=oof_acc,
        n_folds=folds,
    )
