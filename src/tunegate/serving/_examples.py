"""Review imported examples in the service: the pending ones, and accept / relabel / reject.

Fine-tuning trains only on reviewed data (:func:`tunegate.train.build_dataset` refuses pending
examples). ``tunegate review list|mark`` works from the command line; these functions are the
same review for the ``/review`` page, one example at a time, with an audit row per decision.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tunegate.config import Workflow
from tunegate.errors import InputError, NotFoundError
from tunegate.records import Example, ReviewStatus

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "ExampleReview",
    "ExampleVerdict",
    "ReviewedExample",
    "open_example_review",
    "review_example",
]


class ExampleVerdict(StrEnum):
    """What a reviewer decided about one imported example."""

    ACCEPT = "accept"
    """The label is right: the example becomes ``reviewed``."""
    RELABEL = "relabel"
    """The text is fine, the label is not: a reviewed copy with the new label replaces it
    (the original is kept, ``rejected``, for the audit trail)."""
    REJECT = "reject"
    """Keep the example out of training (``rejected``)."""


@dataclass(frozen=True)
class ExampleReview:
    """The pending examples shown (oldest first) and how many are pending in all."""

    examples: list[Example]
    total: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "examples": [e.model_dump(mode="json") for e in self.examples],
        }


@dataclass(frozen=True)
class ReviewedExample:
    """The outcome of one review: the example as it now stands for training (the relabelled
    copy for ``relabel``), and the original's id."""

    example: Example
    original_id: str
    verdict: ExampleVerdict


def open_example_review(store: Store, *, limit: int | None = None) -> ExampleReview:
    """The examples waiting for review, oldest first (at most ``limit``), and their count."""
    if limit is not None and limit < 0:
        raise InputError(f"limit must be >= 0, got {limit}")
    pending = store.examples(review_status=ReviewStatus.PENDING.value)
    shown = pending if limit is None else pending[:limit]
    return ExampleReview(shown, len(pending))


def relabelled_id(example_id: str, label: str) -> str:
    """The id of ``example_id``'s copy relabelled to ``label``: the same for a resubmitted
    form, so a relabel is recorded once."""
    digest = hashlib.sha256(f"{example_id}\x00{label}".encode()).hexdigest()
    return f"ex_r{digest[:24]}"


def review_example(
    workflow: Workflow,
    store: Store,
    example_id: str,
    verdict: ExampleVerdict | str,
    *,
    reviewer: str,
    label: str | None = None,
) -> ReviewedExample:
    """Accept, relabel (to ``label``) or reject one pending example, with an
    ``example_review`` audit row.

    Raises :class:`~tunegate.errors.NotFoundError` for an unknown example and
    :class:`~tunegate.errors.InputError` for a blank reviewer, an unknown verdict, a relabel
    without a workflow label, or an example that is no longer pending (reviewed meanwhile; a
    resubmitted form of the same decision returns the stored outcome instead).
    """
    try:
        verdict = ExampleVerdict(verdict)
    except ValueError:
        allowed = [v.value for v in ExampleVerdict]
        raise InputError(f"review verdict {verdict!r} is not one of {allowed}") from None
    if not reviewer.strip():
        raise InputError("a review needs a reviewer: give the name of whoever reviewed it")
    if verdict is ExampleVerdict.RELABEL and (label is None or label not in workflow.labels):
        raise InputError(
            f"relabel needs one of the workflow's labels; got {label!r}, allowed: "
            f"{workflow.label_names}"
        )
    found = store.examples(ids=[example_id])
    if not found:
        raise NotFoundError(f"no example with id {example_id!r}; the /review page lists them")
    original = found[0]
    if verdict is ExampleVerdict.RELABEL and label == original.label:
        verdict = ExampleVerdict.ACCEPT  # "relabelled" to its own label: the label was right
    copy_id = relabelled_id(original.id, label or "")
    if original.review_status != ReviewStatus.PENDING:
        return _replayed(store, original, verdict, copy_id)
    who = reviewer.strip()
    result = original
    if verdict is ExampleVerdict.RELABEL:
        assert label is not None
        result = original.model_copy(
            update={
                "id": copy_id,
                "label": label,
                "review_status": ReviewStatus.REVIEWED,
                "reviewer": who,
            }
        )
        store.add_examples([result])  # first the copy: a crash leaves the original pending
        store.set_review_status("example", [original.id], ReviewStatus.REJECTED, reviewer=who)
    else:
        status = (
            ReviewStatus.REVIEWED if verdict is ExampleVerdict.ACCEPT else (ReviewStatus.REJECTED)
        )
        store.set_review_status("example", [original.id], status, reviewer=who)
        result = original.model_copy(update={"review_status": status, "reviewer": who})
    store.audit(
        "example_review",
        who,
        {
            "example_id": original.id,
            "verdict": verdict.value,
            "label": original.label,
            "new_label": result.label,
            "result_id": result.id,
        },
    )
    return ReviewedExample(result, original.id, verdict)


def _replayed(
    store: Store, original: Example, verdict: ExampleVerdict, copy_id: str
) -> ReviewedExample:
    """The stored outcome when ``original`` was reviewed already: the same decision again
    (a resubmitted form) returns it; a different one is refused."""
    expected = {
        ExampleVerdict.ACCEPT: ReviewStatus.REVIEWED,
        ExampleVerdict.REJECT: ReviewStatus.REJECTED,
        ExampleVerdict.RELABEL: ReviewStatus.REJECTED,
    }[verdict]
    if original.review_status == expected:
        if verdict is not ExampleVerdict.RELABEL:
            return ReviewedExample(original, original.id, verdict)
        copy = store.examples(ids=[copy_id])
        if copy:
            return ReviewedExample(copy[0], original.id, verdict)
    raise InputError(
        f"example {original.id!r} is already {original.review_status.value}; "
        f"`tunegate review mark {original.id} --status pending --reviewer NAME` reopens it"
    )
