"""The training set of a generative fine-tune: reviewed ``answer`` / ``tool_call`` examples,
de-duplicated, never overlapping a frozen generative suite (exact or near), content-hashed.

The same rules as :func:`tunegate.train.build_dataset` for labels: nothing unreviewed is
trained on unless asked, rejected examples never are, and an example whose input is in (or
near) a frozen suite is excluded and reported, or refused with ``on_leak="raise"``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError, LeakageError
from tunegate.records import (
    GenerativeExample,
    GenerativeSuite,
    ReviewStatus,
    content_hash,
    normalize_text,
)
from tunegate.train._dataset import Embedder, _default_encoder, _excerpt

__all__ = ["GenerativeDataset", "build_generative_dataset", "generative_dataset_hash"]


def generative_dataset_hash(examples: Sequence[GenerativeExample]) -> str:
    """SHA-256 over the examples' ids and targets, in order."""
    return content_hash("generative-dataset", [(e.id, e.target_key()) for e in examples])


@dataclass(frozen=True)
class GenerativeDataset:
    """Reviewed generative examples ready for supervised fine-tuning, and how they were
    chosen."""

    examples: list[GenerativeExample]
    hash: str
    manifest: dict[str, Any]
    """Counts (per kind of target, per source), parameters used."""
    leakage_report: dict[str, Any] = field(default_factory=dict)
    """Examples excluded because their input is in, or near, a frozen suite, per suite."""
    dedup_report: dict[str, Any] = field(default_factory=dict)
    """Exact duplicate inputs removed (the first by id is kept)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "hash": self.hash,
            "n_examples": len(self.examples),
            "manifest": self.manifest,
            "leakage": self.leakage_report,
            "duplicates": self.dedup_report,
            "example_ids": [e.id for e in self.examples],
        }


def _target(example: GenerativeExample) -> str:
    if example.kind == "tool_call":
        return "no_tool" if example.expected_tool is None else f"tool:{example.expected_tool.name}"
    return "answer" if example.answerable else "abstain"


def build_generative_dataset(
    examples: Sequence[GenerativeExample],
    workflow: Workflow,
    *,
    suites: Sequence[GenerativeSuite] = (),
    include_unreviewed: bool = False,
    on_leak: str = "exclude",
    near_threshold: float | None = 0.95,
    encoder: Embedder | None = None,
) -> GenerativeDataset:
    """The supervised training set of an ``answer`` or ``tool_call`` workflow.

    Args:
        examples: candidate examples (e.g. ``tunegate.io.stored_generative_examples``).
        suites: every frozen generative suite whose inputs must never be trained on.
        include_unreviewed: train on pending examples too (refused by default).
        on_leak: ``"exclude"`` (drop and report) or ``"raise"`` (:class:`LeakageError`).
        near_threshold: cosine similarity of input embeddings at or above which an example
            counts as the same question as a suite example; ``None`` checks exact (normalized)
            inputs only.
        encoder: embeds inputs for the near check (default: the workflow's encoder).

    Raises:
        InputError: the workflow is ``classify``; pending examples without
            ``include_unreviewed``; an answerable example without a reference answer (there
            is nothing to train it to say); nothing left to train on.
        LeakageError: overlap with a suite when ``on_leak="raise"``.
    """
    workflow.require_kind("a generative training set", "answer", "tool_call")
    if on_leak not in ("exclude", "raise"):
        raise InputError(f"on_leak must be 'exclude' or 'raise', got {on_leak!r}")
    pool = sorted((e for e in examples if e.kind == workflow.kind), key=lambda e: e.id)
    other = len(examples) - len(pool)
    rejected = [e for e in pool if e.review_status is ReviewStatus.REJECTED]
    pending = [e for e in pool if e.review_status is ReviewStatus.PENDING]
    if pending and not include_unreviewed:
        ids = ", ".join(e.id for e in pending[:5])
        raise InputError(
            f"{len(pending)} generative examples are not reviewed (e.g. {ids}); review them "
            "(ingest them with review_status: reviewed and a reviewer) or pass "
            "include_unreviewed=True (`--include-unreviewed`)"
        )
    pool = [e for e in pool if e.review_status is not ReviewStatus.REJECTED]
    pool = [e for e in pool if e.review_status is not ReviewStatus.SUPERSEDED]
    untrainable = [
        e for e in pool if e.kind == "answer" and e.answerable and not (e.reference or "").strip()
    ]
    if untrainable:
        raise InputError(
            f"{len(untrainable)} answerable examples have no reference answer (e.g. "
            f"{untrainable[0].id}); a fine-tune needs the answer to train toward: add "
            "`reference`, or mark the question answerable: false"
        )

    # -- exact duplicates -------------------------------------------------------------------
    seen: dict[str, str] = {}
    kept: list[GenerativeExample] = []
    dropped_dups: list[dict[str, str]] = []
    for e in pool:
        key = e.text_hash
        if key in seen:
            dropped_dups.append({"id": e.id, "same_as": seen[key], "input": _excerpt(e.input)})
            continue
        seen[key] = e.id
        kept.append(e)

    # -- leakage: exact, then near ------------------------------------------------------------
    suite_inputs: list[tuple[str, str, str]] = [  # (suite name, example id, input)
        (s.name, x.id, x.input) for s in suites for x in s.examples
    ]
    exact = {content_hash(normalize_text(text)): (name, sid) for name, sid, text in suite_inputs}
    leaks: list[dict[str, Any]] = []
    clean: list[GenerativeExample] = []
    for e in kept:
        hit = exact.get(e.text_hash)
        if hit is not None:
            leaks.append({"id": e.id, "suite": hit[0], "suite_example": hit[1], "how": "exact"})
        else:
            clean.append(e)
    if near_threshold is not None and clean and suite_inputs:
        enc = encoder if encoder is not None else _default_encoder(workflow)
        a = np.asarray(enc.embed([e.input for e in clean]), dtype=np.float32)
        b = np.asarray(enc.embed([t for _, _, t in suite_inputs]), dtype=np.float32)
        a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        sims = a @ b.T
        best = sims.argmax(axis=1)
        near: list[GenerativeExample] = []
        for i, e in enumerate(clean):
            j = int(best[i])
            cos = float(sims[i, j])
            if cos >= near_threshold:
                name, sid, _ = suite_inputs[j]
                leaks.append(
                    {"id": e.id, "suite": name, "suite_example": sid, "how": f"near {cos:.3f}"}
                )
            else:
                near.append(e)
        clean = near
    if leaks and on_leak == "raise":
        first = leaks[0]
        raise LeakageError(
            f"{len(leaks)} training examples overlap frozen suites (e.g. {first['id']} is "
            f"{first['how']} to {first['suite_example']} of suite {first['suite']!r}); drop them "
            "or build with on_leak='exclude'"
        )
    if not clean:
        raise InputError(
            f"no generative examples left to train on ({len(pool)} reviewed, "
            f"{len(dropped_dups)} duplicates, {len(leaks)} in frozen suites); ingest reviewed "
            "examples with `tunegate ingest examples`"
        )
    per_suite = Counter(str(leak["suite"]) for leak in leaks)
    return GenerativeDataset(
        examples=clean,
        hash=generative_dataset_hash(clean),
        manifest={
            "kind": workflow.kind,
            "n_examples": len(clean),
            "per_target": dict(sorted(Counter(_target(e) for e in clean).items())),
            "per_source": dict(sorted(Counter(e.source.value for e in clean).items())),
            "unreviewed_included": sum(e.review_status is ReviewStatus.PENDING for e in clean),
            "rejected_dropped": len(rejected),
            "other_kind_ignored": other,
            "near_threshold": near_threshold,
        },
        leakage_report={"excluded": leaks, "per_suite": dict(sorted(per_suite.items()))},
        dedup_report={"exact": dropped_dups},
    )
