"""The training-dataset builder: reviewed data in, a content-hashed, leak-free dataset out.

:func:`build_dataset` gathers reviewed override-derived examples (the *new* data) and reviewed
historical examples (the *replay* pool), refuses unreviewed data, removes exact and near
duplicates, excludes everything that overlaps a frozen evaluation suite, mixes in a share of
older, correctly handled examples (rehearsal against forgetting) and checks the per-class
targets of ``workflow.data_targets``. The result is a :class:`Dataset` whose hash is taken over
the sorted ``(normalize_text(text), label)`` pairs, so the same data always has the same hash.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import numpy as np

from tunegate.config import Workflow
from tunegate.documents import DatasetManifest
from tunegate.errors import InputError, LeakageError, NotFoundError
from tunegate.records import (
    EvalSuite,
    Example,
    ExampleSource,
    Override,
    ReviewStatus,
    Ticket,
    content_hash,
    normalize_text,
)

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "Dataset",
    "Embedder",
    "build_dataset",
    "check_targets",
    "dataset_hash",
    "load_dataset",
    "override_to_example",
]

_EXCERPT = 80


class Embedder(Protocol):
    """Anything with ``embed(texts) -> (n, d)`` float32 rows, L2-normalized (an encoder)."""

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def _excerpt(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _EXCERPT else text[: _EXCERPT - 1] + "…"


def dataset_hash(examples: Iterable[Example]) -> str:
    """SHA-256 over the sorted ``(normalize_text(text), label)`` pairs of ``examples``."""
    return content_hash(sorted((normalize_text(e.text), e.label) for e in examples))


def override_to_example(
    override: Override, ticket: Ticket, workflow: Workflow | None = None
) -> Example:
    """An analyst override joined to its ticket's text, as a training :class:`Example`.

    The example keeps the override's review status, its analyst as reviewer (when reviewed),
    the ticket's metadata and the slice tags the workflow gives the ticket.
    """
    if override.ticket_id != ticket.id:
        raise InputError(
            f"override {override.id} belongs to ticket {override.ticket_id!r}, "
            f"not to ticket {ticket.id!r}; join each override to its own ticket"
        )
    tags = workflow.slice_tags(ticket.text, ticket.metadata) if workflow is not None else []
    reviewed = override.review_status == ReviewStatus.REVIEWED
    return Example(
        id=f"ex_{override.id}",
        text=ticket.text,
        label=override.final_label,
        source=ExampleSource.OVERRIDE,
        reviewer=override.analyst if reviewed else None,
        review_status=override.review_status,
        slice_tags=tags,
        metadata={
            **ticket.metadata,
            "override_id": override.id,
            "reason_code": override.reason_code.value,
            "model_label": override.model_label,
        },
        ticket_id=ticket.id,
        created_at=override.created_at,
    )


@dataclass(frozen=True)
class Dataset:
    """A built training dataset and the reports that explain how it was built.

    ``examples`` are in a deterministic order (new examples first, then replayed ones, each
    sorted by id). ``hash`` is :func:`dataset_hash` of them.
    """

    examples: list[Example]
    hash: str
    manifest: dict[str, Any]
    """Counts per class, per slice and per source; parameters used."""
    target_report: list[dict[str, Any]] = field(default_factory=list)
    """One row per ``workflow.data_targets`` entry: name, have, need, missing, ok, message."""
    leakage_report: dict[str, Any] = field(default_factory=dict)
    """Examples excluded because they overlap a frozen suite (exact or near), per suite."""
    dedup_report: dict[str, Any] = field(default_factory=dict)
    """Exact and near duplicates removed, and label conflicts among them."""

    @property
    def texts(self) -> list[str]:
        return [e.text for e in self.examples]

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.examples]

    def to_document(self) -> DatasetManifest:
        """The store document of this dataset (kind ``dataset``, key: its hash)."""
        return DatasetManifest(
            hash=self.hash,
            manifest=self.manifest,
            target_report=self.target_report,
            leakage_report=self.leakage_report,
            dedup_report=self.dedup_report,
            example_ids=[e.id for e in self.examples],
            examples=self.examples,
        )

    @classmethod
    def from_document(cls, doc: DatasetManifest) -> Dataset:
        """The dataset of a stored document; :class:`InputError` when its hash does not match."""
        examples = list(doc.examples)
        found = dataset_hash(examples)
        if found != doc.hash:
            raise InputError(
                f"stored dataset {doc.hash[:12]} does not match its content "
                f"(hash {found[:12]}); rebuild it with `tunegate dataset build`"
            )
        return cls(
            examples=examples,
            hash=doc.hash,
            manifest=doc.manifest,
            target_report=doc.target_report,
            leakage_report=doc.leakage_report,
            dedup_report=doc.dedup_report,
        )

    def save(self, store: Store) -> str:
        """Store the dataset (manifest, reports, example ids and examples); returns its hash."""
        store.documents(DatasetManifest).put(self.hash, self.to_document())
        return self.hash

    def without(self, ids: Iterable[str], *, reason: str) -> Dataset:
        """A new dataset without the examples ``ids`` (e.g. flagged label issues)."""
        drop = set(ids)
        kept = [e for e in self.examples if e.id not in drop]
        manifest = {
            **self.manifest,
            "dropped": {**self.manifest.get("dropped", {}), reason: len(self.examples) - len(kept)},
            "n_examples": len(kept),
            "per_class": dict(sorted(Counter(e.label for e in kept).items())),
        }
        return Dataset(
            examples=kept,
            hash=dataset_hash(kept),
            manifest=manifest,
            target_report=self.target_report,
            leakage_report=self.leakage_report,
            dedup_report=self.dedup_report,
        )


def load_dataset(store: Store, dataset_hash_or_prefix: str) -> Dataset:
    """Load a stored dataset by its hash (a unique prefix of at least 6 characters works)."""
    key = dataset_hash_or_prefix
    docs = store.documents(DatasetManifest)
    doc = docs.get(key)
    stored = docs.keys() if doc is None else []
    if doc is None and len(key) >= 6:
        matches = [k for k in stored if k.startswith(key)]
        if len(matches) == 1:
            doc = docs.get(matches[0])
        elif len(matches) > 1:
            raise InputError(f"dataset prefix {key!r} is ambiguous: {[k[:12] for k in matches]}")
    if doc is None:
        known = [k[:12] for k in stored]
        raise NotFoundError(
            f"no dataset {key!r} in the store (known: {known or 'none'}); "
            f"run `tunegate dataset build` first"
        )
    return Dataset.from_document(doc)


# -- building ---------------------------------------------------------------------------------


def _gather_from_store(store: Store, workflow: Workflow) -> list[Example]:
    overrides = store.overrides()
    examples: list[Example] = []
    if overrides:
        tickets = {t.id: t for t in store.tickets(ids=sorted({o.ticket_id for o in overrides}))}
        missing = sorted({o.ticket_id for o in overrides if o.ticket_id not in tickets})
        if missing:
            raise InputError(
                f"{len(missing)} overrides point at tickets that are not in the store "
                f"(e.g. {missing[:3]}); ingest the tickets first with `tunegate ingest tickets`"
            )
        # One example per ticket: the latest override wins (an analyst may revise a label).
        latest: dict[str, Override] = {}
        for o in sorted(overrides, key=lambda o: (o.created_at, o.id)):
            latest[o.ticket_id] = o
        examples.extend(
            override_to_example(o, tickets[o.ticket_id], workflow) for o in latest.values()
        )
    examples.extend(store.examples())
    return examples


def _resolve_suites(store: Store | None, suites: Sequence[EvalSuite | str]) -> list[EvalSuite]:
    resolved: list[EvalSuite] = []
    for suite in suites:
        if isinstance(suite, EvalSuite):
            resolved.append(suite)
        elif store is None:
            raise InputError(
                f"suite {suite!r} given by name but no store to look it up in; "
                f"pass EvalSuite objects or a Store"
            )
        else:
            resolved.append(store.get_suite(suite))
    return resolved


def _tags(example: Example, workflow: Workflow) -> list[str]:
    return sorted(
        set(example.slice_tags) | set(workflow.slice_tags(example.text, example.metadata))
    )


def _near_pairs(
    vectors: np.ndarray, threshold: float, *, block: int = 1024
) -> list[tuple[int, int, float]]:
    """Pairs (i, j, cos) with i < j and cosine >= threshold, rows of ``vectors`` L2-normalized."""
    pairs: list[tuple[int, int, float]] = []
    n = vectors.shape[0]
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        rows, cols = np.nonzero(sims >= threshold)
        for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
            i = start + r
            if c > i:
                pairs.append((i, c, float(sims[r, c])))
    return pairs


def _default_encoder(workflow: Workflow) -> Embedder:
    from tunegate.models import get_encoder

    encoder: Embedder = get_encoder(workflow.model)
    return encoder


def build_dataset(
    store_or_examples: Store | Iterable[Example],
    workflow: Workflow,
    *,
    suites: Sequence[EvalSuite | str] = (),
    include_unreviewed: bool = False,
    replay_ratio: float | None = None,
    seed: int = 0,
    allow_shortfall: bool = False,
    on_leak: str = "exclude",
    encoder: Embedder | None = None,
) -> Dataset:
    """Build the training dataset for ``workflow``.

    Args:
        store_or_examples: a ``Store`` (reviewed overrides joined to their tickets, plus the
            stored examples; every stored suite is treated as frozen unless ``suites`` is
            given) or an iterable of :class:`Example`.
        suites: frozen evaluation suites (objects, or names/hashes looked up in the store)
            whose examples must never be trained on.
        include_unreviewed: train on pending examples too (refused by default).
        replay_ratio: replayed historical examples per new example (default
            ``workflow.training.replay_ratio``). With no new examples, all reviewed historical
            examples are used.
        seed: seed of the replay sample.
        allow_shortfall: report unmet ``data_targets`` instead of raising.
        on_leak: ``"exclude"`` (drop overlapping examples and report them) or ``"raise"``
            (raise :class:`LeakageError`).
        encoder: embeds texts for near-duplicate checks (default ``get_encoder(workflow.model)``).

    Raises:
        InputError: unreviewed examples without ``include_unreviewed``; unknown labels;
            unmet targets without ``allow_shortfall``; nothing left to train on.
        LeakageError: overlap with a suite when ``on_leak="raise"``.
    """
    if on_leak not in ("exclude", "raise"):
        raise InputError(f"on_leak must be 'exclude' or 'raise', got {on_leak!r}")
    if hasattr(store_or_examples, "overrides") and hasattr(store_or_examples, "examples"):
        store = cast("Store", store_or_examples)
        raw = _gather_from_store(store, workflow)
        suite_objs = _resolve_suites(store, suites) if suites else list(store.suites())
    else:
        raw = list(store_or_examples)
        suite_objs = _resolve_suites(None, suites)
    ratio = workflow.training.replay_ratio if replay_ratio is None else float(replay_ratio)
    if ratio < 0:
        raise InputError(f"replay_ratio must be >= 0, got {ratio}")

    unknown = sorted({e.label for e in raw} - set(workflow.labels))
    if unknown:
        raise InputError(
            f"{sum(e.label in unknown for e in raw)} examples carry labels not in the workflow: "
            f"{unknown}; add them to tunegate.yaml or relabel the examples"
        )

    # -- review status ------------------------------------------------------------------------
    rejected = [e for e in raw if e.review_status == ReviewStatus.REJECTED]
    pending = [e for e in raw if e.review_status == ReviewStatus.PENDING]
    if pending and not include_unreviewed:
        by_source = Counter(e.source.value for e in pending)
        raise InputError(
            f"{len(pending)} examples are not reviewed ({dict(sorted(by_source.items()))}); "
            f"tunegate trains only on reviewed data. List them with `tunegate review list` and "
            f"mark them with `tunegate review mark ID... --reviewer NAME` (or `--all --yes`), or "
            f"on the /review page of `tunegate serve`; "
            f"pending overrides with store.set_review_status('override', ids, 'reviewed', "
            f"reviewer=...); "
            f"or pass --include-unreviewed to train on them anyway"
        )
    usable = [e for e in raw if e.review_status != ReviewStatus.REJECTED]
    usable = [e.model_copy(update={"slice_tags": _tags(e, workflow)}) for e in usable]

    # Newest label first: when the same text carries two labels, the newer one (an override,
    # perhaps after a taxonomy change) wins.
    usable.sort(key=lambda e: (-e.created_at.timestamp(), e.source != ExampleSource.OVERRIDE, e.id))

    # -- leakage: exact -----------------------------------------------------------------------
    leak_rows: list[dict[str, Any]] = []
    suite_text: dict[str, tuple[str, str]] = {}
    for suite in suite_objs:
        for se in suite.examples:
            suite_text.setdefault(normalize_text(se.text), (suite.name, se.id))
    kept: list[Example] = []
    for e in usable:
        hit = suite_text.get(normalize_text(e.text))
        if hit is not None:
            leak_rows.append(
                {
                    "example_id": e.id,
                    "suite": hit[0],
                    "suite_example_id": hit[1],
                    "kind": "exact",
                    "similarity": 1.0,
                    "text": _excerpt(e.text),
                }
            )
        else:
            kept.append(e)

    # -- exact duplicates ---------------------------------------------------------------------
    seen: dict[str, Example] = {}
    exact_dups: list[dict[str, Any]] = []
    for e in kept:
        key = normalize_text(e.text)
        first = seen.get(key)
        if first is None:
            seen[key] = e
        else:
            exact_dups.append(
                {
                    "removed": e.id,
                    "kept": first.id,
                    "label": e.label,
                    "kept_label": first.label,
                    "conflict": e.label != first.label,
                    "text": _excerpt(e.text),
                }
            )
    kept = list(seen.values())

    # -- near duplicates and near leakage (one embedding pass) --------------------------------
    threshold = workflow.training.near_duplicate_threshold
    near_dups: list[dict[str, Any]] = []
    suite_list = [(s.name, se) for s in suite_objs for se in s.examples]
    if kept and threshold < 1.0:
        enc = encoder if encoder is not None else _default_encoder(workflow)
        vecs = np.asarray(enc.embed([e.text for e in kept]), dtype=np.float32)
        if suite_list:
            svecs = np.asarray(enc.embed([se.text for _, se in suite_list]), dtype=np.float32)
            sims = vecs @ svecs.T
            best = sims.argmax(axis=1)
            drop_leak: set[int] = set()
            for i in range(len(kept)):
                j = int(best[i])
                if sims[i, j] >= threshold:
                    drop_leak.add(i)
                    name, se = suite_list[j]
                    leak_rows.append(
                        {
                            "example_id": kept[i].id,
                            "suite": name,
                            "suite_example_id": se.id,
                            "kind": "near",
                            "similarity": round(float(sims[i, j]), 4),
                            "text": _excerpt(kept[i].text),
                        }
                    )
            keep_idx = [i for i in range(len(kept)) if i not in drop_leak]
            kept = [kept[i] for i in keep_idx]
            vecs = vecs[keep_idx]
        removed: set[int] = set()
        for i, j, sim in _near_pairs(vecs, threshold):
            if i in removed or j in removed:
                continue
            removed.add(j)  # j comes later in priority order (older / lower priority)
            near_dups.append(
                {
                    "removed": kept[j].id,
                    "kept": kept[i].id,
                    "label": kept[j].label,
                    "kept_label": kept[i].label,
                    "similarity": round(sim, 4),
                    "conflict": kept[j].label != kept[i].label,
                    "text": _excerpt(kept[j].text),
                }
            )
        kept = [e for k, e in enumerate(kept) if k not in removed]

    if leak_rows and on_leak == "raise":
        raise LeakageError(
            f"{len(leak_rows)} training examples overlap frozen evaluation suites "
            f"({Counter(r['kind'] for r in leak_rows)}); e.g. {leak_rows[0]['example_id']} "
            f"~ {leak_rows[0]['suite']}/{leak_rows[0]['suite_example_id']}. Remove them or "
            f"build with on_leak='exclude'"
        )

    # -- new data vs replay pool --------------------------------------------------------------
    overridden_tickets = {
        e.ticket_id for e in kept if e.source == ExampleSource.OVERRIDE and e.ticket_id
    }

    def correctly_handled(e: Example) -> bool:
        if e.ticket_id is not None and e.ticket_id in overridden_tickets:
            return False
        model_label = e.metadata.get("model_label")
        return model_label is None or model_label == e.label

    new = [e for e in kept if e.source != ExampleSource.HISTORICAL or not correctly_handled(e)]
    pool = [e for e in kept if e.source == ExampleSource.HISTORICAL and correctly_handled(e)]
    new.sort(key=lambda e: e.id)
    pool.sort(key=lambda e: e.id)
    if new:
        n_replay = min(len(pool), round(ratio * len(new)))
        replay = _stratified_sample(pool, n_replay, seed)
    else:
        replay = pool
    examples = new + sorted(replay, key=lambda e: e.id)
    if not examples:
        raise InputError(
            f"no training examples left (gathered {len(raw)}, rejected {len(rejected)}, "
            f"leaked {len(leak_rows)}, duplicates {len(exact_dups) + len(near_dups)}); "
            f"review overrides or ingest examples first"
        )

    # -- targets ------------------------------------------------------------------------------
    target_report = check_targets(examples, workflow)
    short = [row for row in target_report if not row["ok"]]
    if short and not allow_shortfall:
        raise InputError(
            "training-data targets not met:\n  "
            + "\n  ".join(row["message"] for row in short)
            + "\nreview more overrides or examples for these classes, lower the targets in "
            "tunegate.yaml (data_targets), or pass --allow-shortfall"
        )

    manifest: dict[str, Any] = {
        "workflow": workflow.name,
        "n_examples": len(examples),
        "n_new": len(new),
        "n_replay": len(replay),
        "replay_pool": len(pool),
        "replay_ratio": ratio,
        "seed": seed,
        "include_unreviewed": include_unreviewed,
        "per_class": dict(sorted(Counter(e.label for e in examples).items())),
        "per_slice": dict(sorted(Counter(t for e in examples for t in e.slice_tags).items())),
        "per_source": dict(sorted(Counter(e.source.value for e in examples).items())),
        "gathered": len(raw),
        "rejected": len(rejected),
        "pending_included": len(pending) if include_unreviewed else 0,
        "suites": [{"name": s.name, "hash": s.hash} for s in suite_objs],
        "near_duplicate_threshold": threshold,
    }
    leakage_report = {
        "excluded": len(leak_rows),
        "exact": sum(r["kind"] == "exact" for r in leak_rows),
        "near": sum(r["kind"] == "near" for r in leak_rows),
        "per_suite": dict(sorted(Counter(r["suite"] for r in leak_rows).items())),
        "examples": leak_rows,
    }
    dedup_report = {
        "exact_removed": len(exact_dups),
        "near_removed": len(near_dups),
        "label_conflicts": sum(r["conflict"] for r in exact_dups + near_dups),
        "exact": exact_dups,
        "near": near_dups,
    }
    return Dataset(
        examples=examples,
        hash=dataset_hash(examples),
        manifest=manifest,
        target_report=target_report,
        leakage_report=leakage_report,
        dedup_report=dedup_report,
    )


def _stratified_sample(pool: list[Example], n: int, seed: int) -> list[Example]:
    """``n`` examples of ``pool``, class proportions kept (largest remainders), seeded."""
    if n >= len(pool):
        return list(pool)
    if n <= 0:
        return []
    rng = random.Random(seed)
    by_label: dict[str, list[Example]] = {}
    for e in pool:
        by_label.setdefault(e.label, []).append(e)
    quotas = {k: n * len(v) / len(pool) for k, v in by_label.items()}
    take = {k: int(q) for k, q in quotas.items()}
    rest = n - sum(take.values())
    for k in sorted(quotas, key=lambda k: (-(quotas[k] - take[k]), k))[:rest]:
        take[k] += 1
    out: list[Example] = []
    for k in sorted(by_label):
        items = list(by_label[k])
        rng.shuffle(items)
        out.extend(items[: take[k]])
    return out


def check_targets(examples: Sequence[Example], workflow: Workflow) -> list[dict[str, Any]]:
    """Count examples against each ``workflow.data_targets`` entry.

    Returns one row per target: ``name, label, slice, not_slice, have, need, missing, ok,
    message``; the message names the target, how many there are and how many more are needed.
    """
    rows: list[dict[str, Any]] = []
    for t in workflow.data_targets:
        have = sum(
            1
            for e in examples
            if e.label == t.label
            and (t.slice is None or t.slice in e.slice_tags)
            and (t.not_slice is None or t.not_slice not in e.slice_tags)
        )
        where = ""
        if t.slice:
            where += f" in slice {t.slice!r}"
        if t.not_slice:
            where += f" outside slice {t.not_slice!r}"
        missing = max(0, t.min - have)
        message = f"{t.name}: {have} reviewed {t.label!r} examples{where}, need {t.min}" + (
            f" ({missing} more needed)" if missing else " (ok)"
        )
        rows.append(
            {
                "name": t.name,
                "label": t.label,
                "slice": t.slice,
                "not_slice": t.not_slice,
                "have": have,
                "need": t.min,
                "missing": missing,
                "ok": missing == 0,
                "message": message,
            }
        )
    return rows
