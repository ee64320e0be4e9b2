"""Label quality: confident learning flags deliberately flipped labels."""

from __future__ import annotations

import numpy as np
import pytest

from tunegate.errors import InputError
from tunegate.records import Example, ReviewStatus
from tunegate.train import label_issues


class NoEncoder:
    def embed(self, texts: object) -> np.ndarray:
        raise AssertionError("features were given; the encoder must not be called")


def _data(
    n_per_class: int, flips: int, seed: int = 0
) -> tuple[list[Example], np.ndarray, set[str]]:
    rng = np.random.default_rng(seed)
    labels = ["a", "b", "c"]
    centers = np.eye(3) * 4.0
    examples, rows, flipped = [], [], set()
    for k, label in enumerate(labels):
        for i in range(n_per_class):
            rows.append(centers[k] + rng.normal(0, 0.5, size=3))
            given = label
            if i < flips:
                given = labels[(k + 1) % 3]
                flipped.add(f"{label}{i}")
            examples.append(
                Example(
                    id=f"{label}{i}",
                    text=f"{label} ticket {i}",
                    label=given,
                    review_status=ReviewStatus.REVIEWED,
                )
            )
    return examples, np.array(rows), flipped


def test_flipped_labels_are_flagged_with_the_true_class_suggested() -> None:
    examples, X, flipped = _data(60, flips=4)
    report = label_issues(examples, ["a", "b", "c", "unused"], encoder=NoEncoder(), features=X)
    flagged = set(report.flagged_ids)
    assert flipped <= flagged
    assert len(flagged - flipped) <= 3  # few false alarms on well-separated data
    for issue in report.issues:
        if issue.id in flipped:
            assert issue.suggested_label == issue.id[0] and issue.self_confidence < 0.5
    assert report.pred_probs.shape == (180, 4) and np.allclose(report.pred_probs[:, 3], 0)
    assert np.allclose(report.pred_probs.sum(axis=1), 1)
    summary = report.summary()
    assert summary["n_flagged"] == len(flagged) and summary["issues"][0]["id"] in flagged
    # ranked most suspicious first
    conf = [i.self_confidence for i in report.issues]
    assert conf == sorted(conf)


def test_clean_data_flags_little_and_unknown_labels_are_refused() -> None:
    examples, X, _ = _data(40, flips=0)
    report = label_issues(examples, ["a", "b", "c"], encoder=NoEncoder(), features=X)
    assert len(report.issues) <= 2 and report.oof_accuracy > 0.95
    with pytest.raises(InputError, match="not in"):
        label_issues(examples, ["a", "b"], encoder=NoEncoder(), features=X)
