"""External capability preservation: a kNN probe of the encoder on BANKING77.

A fine-tune merged into a shared encoder can damage every other use of it. The probe embeds a
stratified subsample of BANKING77 (77 banking intents) with the encoder and classifies the
test texts by a similarity-weighted vote of their ``k`` nearest training texts (cosine).
Comparing the probe before and after a fine-tune, on the same examples, gives the accuracy
drop with a paired bootstrap interval and McNemar's exact test.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.errors import InputError
from tunegate.metrics import Interval, McNemarResult, mcnemar_exact, paired_mean_difference

__all__ = [
    "ProbeComparison",
    "ProbeResult",
    "compare_probes",
    "load_banking77",
    "preservation_probe",
    "probe_encoder_folder",
]


def probe_encoder_folder(path: str | Path) -> str:
    """The encoder folder the probe embeds with, for ``path`` given as ``--encoder``: a Hugging
    Face encoder folder (``config.json``) as it is, or a LoRA artifact (``manifest.json`` and
    ``adapter/``) as its merged encoder (:func:`tunegate.lora.export_merged_encoder`, written
    once to ``<artifact>/merged``), so the probe measures the fine-tuned encoder.

    Raises :class:`~tunegate.errors.InputError` for anything else, naming what was expected.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise InputError(
            f"--encoder {str(path)!r} is not a folder; give a Hugging Face encoder folder "
            f"(config.json) or a LoRA artifact (manifest.json, adapter/)"
        )
    if (folder / "config.json").is_file():
        return str(folder)
    if (folder / "manifest.json").is_file():
        from tunegate.lora import export_merged_encoder

        return str(export_merged_encoder(folder))
    raise InputError(
        f"--encoder {str(path)!r} is neither an encoder folder (no config.json) nor a LoRA "
        f"artifact (no manifest.json); give the folder `tunegate finetune` wrote (e.g. "
        f"artifacts/lora-...) or a Hugging Face model folder"
    )


def load_banking77(data_dir: str | Path, split: str) -> list[tuple[str, str]]:
    """``(text, category)`` rows of ``<data_dir>/<split>.csv`` (``data_dir`` may be the
    shared data folder or its ``banking77`` subfolder)."""
    base = Path(data_dir)
    if (base / "banking77").is_dir():
        base = base / "banking77"
    path = base / f"{split}.csv"
    if not path.exists():
        where = "" if path.is_absolute() else f" (relative paths are read from {Path.cwd()})"
        raise InputError(
            f"{path.resolve()}: not found{where}; pass --data-dir with the folder that holds "
            f"BANKING77's train.csv and test.csv"
        )
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"text", "category"} <= set(reader.fieldnames):
            raise InputError(f"{path}: expected columns text,category, got {reader.fieldnames}")
        return [(row["text"], row["category"]) for row in reader if row["text"].strip()]


def _stratified(
    rows: list[tuple[str, str]], per_class: int | None, rng: np.random.Generator
) -> list[tuple[str, str]]:
    if per_class is None:
        return rows
    by_class: dict[str, list[int]] = defaultdict(list)
    for i, (_, cat) in enumerate(rows):
        by_class[cat].append(i)
    keep: list[int] = []
    for cat in sorted(by_class):
        idx = by_class[cat]
        take = min(per_class, len(idx))
        keep.extend(sorted(rng.choice(idx, size=take, replace=False).tolist()))
    return [rows[i] for i in sorted(keep)]


@dataclass(frozen=True)
class ProbeResult:
    """Probe accuracy of one encoder, with the per-example correctness behind it."""

    dataset: str
    accuracy: float
    interval: Interval
    correct: list[bool] = field(repr=False)
    test_texts: list[str] = field(repr=False)
    n_train: int
    n_test: int
    k: int
    seed: int
    encoder: str = ""


@dataclass(frozen=True)
class ProbeComparison:
    """Probe before vs after on the same examples: ``drop = before - after`` accuracy."""

    dataset: str
    before: ProbeResult
    after: ProbeResult
    drop: Interval
    mcnemar: McNemarResult
    confidence: float = 0.95
    """Confidence level of the ``drop`` interval."""

    @property
    def within_noise(self) -> bool:
        return self.drop.within_noise


def _embed_fn(encoder: Any) -> Callable[[Sequence[str]], Any]:
    if hasattr(encoder, "embed"):
        return encoder.embed  # type: ignore[no-any-return]
    if callable(encoder):
        return encoder  # type: ignore[no-any-return]
    raise InputError(f"encoder must have .embed(texts) or be callable, got {type(encoder)}")


def _unit(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float32)
    out: np.ndarray = arr / np.maximum(np.linalg.norm(arr, axis=1, keepdims=True), 1e-12)
    return out


def preservation_probe(
    encoder: Any,
    data_dir: str | Path,
    *,
    train_per_class: int | None = 20,
    test_per_class: int | None = 10,
    k: int = 10,
    seed: int = 0,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> ProbeResult:
    """kNN accuracy of ``encoder``'s embeddings on BANKING77 (a general intent task).

    ``encoder``: an object with ``embed(texts) -> (n, d)`` or such a callable.
    ``train_per_class`` / ``test_per_class``: a stratified subsample (``None`` = all rows) so
    the probe stays cheap: the defaults embed 77 x 30 = 2,310 texts.
    """
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    rng = np.random.default_rng(seed)
    train = _stratified(load_banking77(data_dir, "train"), train_per_class, rng)
    test = _stratified(load_banking77(data_dir, "test"), test_per_class, rng)
    classes = sorted({c for _, c in train})
    cid = {c: i for i, c in enumerate(classes)}
    embed = _embed_fn(encoder)
    e_train = _unit(embed([t for t, _ in train]))
    e_test = _unit(embed([t for t, _ in test]))
    y_train = np.array([cid[c] for _, c in train], dtype=np.intp)
    y_test = np.array([cid.get(c, -1) for _, c in test], dtype=np.intp)
    sims = e_test @ e_train.T
    kk = min(k, len(train))
    nn = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
    votes = np.zeros((len(test), len(classes)))
    rows = np.repeat(np.arange(len(test)), kk)
    np.add.at(votes, (rows, y_train[nn].ravel()), np.take_along_axis(sims, nn, axis=1).ravel())
    correct = votes.argmax(axis=1) == y_test
    interval = paired_mean_difference(
        np.zeros(correct.size),
        correct.astype(np.float64),
        n_resamples=n_resamples,
        confidence=confidence,
        seed=seed,
    )
    return ProbeResult(
        dataset="banking77",
        accuracy=float(correct.mean()),
        interval=interval,
        correct=correct.tolist(),
        test_texts=[t for t, _ in test],
        n_train=len(train),
        n_test=len(test),
        k=kk,
        seed=seed,
        encoder=str(getattr(encoder, "path", "")),
    )


def compare_probes(
    before: ProbeResult,
    after: ProbeResult,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ProbeComparison:
    """Paired comparison of two probe runs on the same examples (same data, seed, sizes)."""
    if before.test_texts != after.test_texts:
        raise InputError(
            "the two probe runs used different test examples; run both with the "
            "same data_dir, seed and per-class sizes"
        )
    a = np.asarray(before.correct, dtype=np.float64)
    b = np.asarray(after.correct, dtype=np.float64)
    gain = paired_mean_difference(a, b, n_resamples=n_resamples, confidence=confidence, seed=seed)
    drop = Interval(-gain.estimate, -gain.high, -gain.low)
    return ProbeComparison(
        before.dataset,
        before,
        after,
        drop,
        mcnemar_exact(a.astype(bool), b.astype(bool)),
        confidence=confidence,
    )
