"""Frozen evaluation suites: three slices, named slices, size warnings, leakage refusal.

How an example is assigned to a slice, in this order:

1. an explicit slice wins: ``SuiteExample.slice``, a ``slice`` field in the input file, or
   ``Example.metadata["slice"]``;
2. ``edge`` when it belongs to any named slice of the workflow (``Workflow.slice_tags`` plus
   tags given with the example) or its metadata marks it ``ambiguous`` or ``multi_topic``;
3. ``preservation`` when its label is a preservation label: by default every label that no
   ``data_targets`` entry of the workflow names (the classes a fine-tune is not aimed at,
   whose behaviour must not regress); pass ``preservation_labels`` to choose them;
4. ``core`` otherwise.

**Out-of-scope examples** are queries no workflow label fits (the ``out_of_scope`` slice).
Give them the reserved label ``out_of_scope`` (:data:`~tunegate.records.OUT_OF_SCOPE_LABEL`),
or no label (``null``), or the slice ``out_of_scope``: the three mark the same thing. Metrics
leave them out of accuracy, calibration and coverage and count only where they are routed:
the share sent ``auto`` is the verdict rule ``oos_auto_rate``.

A frozen suite is content-hashed (:meth:`EvalSuite.frozen`) and never overlaps training data:
an example whose normalized text equals a training text, or whose embedding has cosine
similarity >= ``training.near_duplicate_threshold`` with one, is refused with a
:class:`~tunegate.errors.LeakageError` listing the ids.
"""

from __future__ import annotations

import csv
import json
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tunegate.config import Workflow
from tunegate.errors import InputError, LeakageError, MissingExtraError, ModelError
from tunegate.generative import preservation_examples
from tunegate.records import (
    OUT_OF_SCOPE_LABEL,
    EvalSuite,
    Example,
    GenerativeExample,
    GenerativeSuite,
    GenerativeSuiteExample,
    SuiteExample,
    SuiteSlice,
    content_hash,
    normalize_text,
)

__all__ = [
    "LeakageCheckWarning",
    "LeakageReport",
    "SuiteSizeWarning",
    "assign_slice",
    "check_leakage",
    "default_preservation_labels",
    "freeze_generative_suite",
    "freeze_suite",
    "generative_suites",
    "get_generative_suite",
    "read_suite_examples",
    "save_generative_suite",
    "suite_from_examples",
    "suite_size_warnings",
]

EmbedFn = Callable[[Sequence[str]], Any]
_EDGE_FLAGS = ("ambiguous", "multi_topic")


class SuiteSizeWarning(UserWarning):
    """A slice of a suite is outside the workflow's recommended size range."""


class LeakageCheckWarning(UserWarning):
    """Only exact-duplicate leakage checks ran (no encoder for near-duplicates)."""


def default_preservation_labels(workflow: Workflow) -> list[str]:
    """Labels no ``data_targets`` entry names: the classes a fine-tune is not aimed at."""
    targeted = {t.label for t in workflow.data_targets}
    if not targeted:
        return []
    return [name for name in workflow.label_names if name not in targeted]


def assign_slice(
    label: str,
    tags: Sequence[str],
    metadata: Mapping[str, Any],
    preservation_labels: Iterable[str],
) -> SuiteSlice:
    """The slice rule (see the module docstring) for an example without an explicit slice."""
    if tags or any(bool(metadata.get(flag)) for flag in _EDGE_FLAGS):
        return SuiteSlice.EDGE
    if label in set(preservation_labels):
        return SuiteSlice.PRESERVATION
    return SuiteSlice.CORE


@dataclass(frozen=True)
class LeakageReport:
    """What a leakage check found."""

    exact: list[str] = field(default_factory=list)
    """Ids of suite examples whose normalized text equals a training text."""
    near: list[tuple[str, float]] = field(default_factory=list)
    """(id, cosine) of suite examples that are near-duplicates of a training text."""
    near_checked: bool = False
    """False when no encoder was available and only exact checks ran."""
    note: str = ""

    @property
    def leaked_ids(self) -> list[str]:
        return sorted({*self.exact, *(i for i, _ in self.near)})


def _embed_fn(encoder: Any) -> EmbedFn:
    if hasattr(encoder, "embed"):
        return encoder.embed  # type: ignore[no-any-return]
    if callable(encoder):
        return encoder  # type: ignore[no-any-return]
    raise InputError(
        f"encoder must have an .embed(texts) method or be a callable, got {type(encoder).__name__}"
    )


def _unit_rows(matrix: Any) -> np.ndarray:
    arr = np.asarray(matrix, dtype=np.float32)
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    out: np.ndarray = arr / np.maximum(norms, 1e-12)
    return out


def check_leakage(
    ids: Sequence[str],
    texts: Sequence[str],
    training_texts: Sequence[str],
    *,
    threshold: float,
    encoder: Any = None,
) -> LeakageReport:
    """Find suite examples that overlap training texts, exactly or as near-duplicates.

    ``encoder``: an object with ``embed(texts) -> (n, d)`` or such a callable; ``None``
    runs exact checks only (the report says so).
    """
    train_norm = {normalize_text(t) for t in training_texts}
    exact = [i for i, t in zip(ids, texts, strict=True) if normalize_text(t) in train_norm]
    if not training_texts:
        return LeakageReport(exact, [], True, "no training texts given")
    if encoder is None:
        return LeakageReport(
            exact,
            [],
            False,
            "near-duplicate check skipped: no encoder; "
            "only exact (normalized-text) overlap was checked",
        )
    embed = _embed_fn(encoder)
    suite_vec = _unit_rows(embed(list(texts)))
    best = np.full(len(texts), -1.0, dtype=np.float32)
    train = list(training_texts)
    step = 2048
    for start in range(0, len(train), step):
        block = _unit_rows(embed(train[start : start + step]))
        best = np.maximum(best, (suite_vec @ block.T).max(axis=1))
    exact_set = set(exact)
    near = [
        (i, float(s))
        for i, s in zip(ids, best, strict=True)
        if s >= threshold and i not in exact_set
    ]
    return LeakageReport(exact, near, True, f"near-duplicate threshold {threshold}")


def suite_size_warnings(suite: EvalSuite, workflow: Workflow) -> list[str]:
    """One message per slice whose size is outside ``workflow.suites``."""
    messages = []
    for which in SuiteSlice:
        if which is SuiteSlice.OUT_OF_SCOPE:  # optional, no recommended size
            continue
        low, high = getattr(workflow.suites, which.value)
        n = len(suite.slice_examples(which))
        if not low <= n <= high:
            messages.append(
                f"suite {suite.name!r}: slice {which.value!r} has {n} examples; "
                f"recommended {low}-{high} (suites.{which.value} in tunegate.yaml)"
            )
    return messages


def _resolve_encoder(workflow: Workflow, encoder: Any) -> tuple[Any, str]:
    if encoder is not None:
        return encoder, ""
    try:
        from tunegate.models import get_encoder

        return get_encoder(workflow.model), ""
    except (ImportError, MissingExtraError, ModelError) as exc:
        return None, f"no encoder available ({exc})"


def _to_suite_example(
    item: SuiteExample | Example | Mapping[str, Any],
    workflow: Workflow,
    preservation_labels: Sequence[str],
) -> SuiteExample:
    if isinstance(item, SuiteExample):
        tags = sorted({*item.tags, *workflow.slice_tags(item.text, item.metadata)})
        return item.model_copy(update={"tags": tags})
    if isinstance(item, Example):
        data: dict[str, Any] = {
            "id": item.id,
            "text": item.text,
            "label": item.label,
            "tags": list(item.slice_tags),
            "metadata": dict(item.metadata),
        }
        data["slice"] = data["metadata"].pop("slice", None)
    else:
        data = dict(item)
    text = data.get("text")
    if not isinstance(text, str) or not text.strip():
        raise InputError(f"suite example {data.get('id', '?')!r} has no text")
    label = data.get("label")
    explicit = data.get("slice")
    if label is None and str(explicit or "").strip().lower() == SuiteSlice.OUT_OF_SCOPE.value:
        label = OUT_OF_SCOPE_LABEL
    if label is None and "label" in data:  # an explicit null: out of scope
        label = OUT_OF_SCOPE_LABEL
    if not isinstance(label, str):
        raise InputError(f"suite example {data.get('id', '?')!r} has no label")
    metadata = dict(data.get("metadata") or {})
    raw_tags = data.get("tags") or []
    if isinstance(raw_tags, str):
        raw_tags = [t for t in raw_tags.replace(";", ",").split(",") if t.strip()]
    tags = sorted({*(t.strip() for t in raw_tags), *workflow.slice_tags(text, metadata)})
    if label == OUT_OF_SCOPE_LABEL:
        which = SuiteSlice.OUT_OF_SCOPE
    elif explicit:
        try:
            which = SuiteSlice(str(explicit).strip().lower())
        except ValueError:
            raise InputError(
                f"suite example {data.get('id', '?')!r}: slice {explicit!r} is not "
                f"one of {[s.value for s in SuiteSlice]}"
            ) from None
    else:
        which = assign_slice(label, tags, metadata, preservation_labels)
    if which is SuiteSlice.OUT_OF_SCOPE and label != OUT_OF_SCOPE_LABEL:
        raise InputError(
            f"suite example {data.get('id', '?')!r} is in the out_of_scope slice but has the "
            f"label {label!r}; out-of-scope examples have no label (null or "
            f"{OUT_OF_SCOPE_LABEL!r})"
        )
    ex_id = str(data.get("id") or "sx_" + content_hash(normalize_text(text), label)[:16])
    return SuiteExample(id=ex_id, text=text, label=label, slice=which, tags=tags, metadata=metadata)


def freeze_suite(
    name: str,
    examples: Sequence[SuiteExample | Example | Mapping[str, Any]],
    workflow: Workflow,
    *,
    training_texts: Sequence[str] = (),
    encoder: Any = None,
    preservation_labels: Sequence[str] | None = None,
    near_duplicates: bool = True,
    drop_leaked: bool = False,
) -> EvalSuite:
    """Build a frozen, content-hashed :class:`EvalSuite`.

    Examples keep an explicit slice; the others are assigned by the slice rule (module
    docstring). Named-slice tags are added from the workflow. Labels must be workflow labels.
    Slices outside ``workflow.suites`` give a :class:`SuiteSizeWarning`. Overlap with
    ``training_texts`` raises :class:`LeakageError`; when ``encoder`` is None and
    ``tunegate.models`` cannot provide one, only exact checks run and a
    :class:`LeakageCheckWarning` says so (as it does with ``near_duplicates=False``).
    With ``drop_leaked`` the overlapping examples are left out of the suite instead, and a
    :class:`LeakageCheckWarning` lists them.
    """
    workflow.require_kind("a classification suite (freeze_suite)")
    if not examples:
        raise InputError(f"suite {name!r} has no examples")
    pres = (
        list(preservation_labels)
        if preservation_labels is not None
        else (default_preservation_labels(workflow))
    )
    unknown_pres = sorted(set(pres) - set(workflow.label_names))
    if unknown_pres:
        raise InputError(
            f"preservation_labels {unknown_pres} are not workflow labels; "
            f"allowed: {workflow.label_names}"
        )
    if OUT_OF_SCOPE_LABEL in workflow.label_names:
        raise InputError(
            f"the workflow has a label named {OUT_OF_SCOPE_LABEL!r}, which suites reserve for "
            f"out-of-scope examples; rename that label"
        )
    items = [_to_suite_example(e, workflow, pres) for e in examples]
    unknown = sorted({e.label for e in items} - {*workflow.label_names, OUT_OF_SCOPE_LABEL})
    if unknown:
        raise InputError(
            f"suite {name!r}: labels {unknown} are not in the workflow; add them "
            f"to tunegate.yaml or fix the file (allowed: {workflow.label_names})"
        )
    gone = _checked_ids(
        name,
        [e.id for e in items],
        [e.text for e in items],
        training_texts,
        workflow,
        encoder=encoder,
        near_duplicates=near_duplicates,
        drop_leaked=drop_leaked,
    )
    items = [e for e in items if e.id not in gone]
    suite = EvalSuite(name=name, examples=items).frozen()
    for message in suite_size_warnings(suite, workflow):
        warnings.warn(message, SuiteSizeWarning, stacklevel=2)
    in_scope = [e for e in suite.examples if e.slice is not SuiteSlice.OUT_OF_SCOPE]
    if in_scope and all(e.slice is SuiteSlice.CORE for e in in_scope):
        why = (
            "data_targets is empty, so no label is a preservation label"
            if not workflow.data_targets
            else "no example has a label without a data target (a preservation label)"
        )
        warnings.warn(
            f"suite {name!r}: all {len(in_scope)} in-scope examples are core: none has a "
            f"slice, none matched a named slice, and {why}; the verdict's edge and "
            f"preservation checks have nothing to test. Give the file a 'slice' column "
            f"(core, edge, preservation); see docs/evaluation.md#suites",
            SuiteSizeWarning,
            stacklevel=2,
        )
    return suite


def _checked_ids(
    name: str,
    ids: Sequence[str],
    texts: Sequence[str],
    training_texts: Sequence[str] | None,
    workflow: Workflow,
    **leak: Any,
) -> set[str]:
    """Refuse duplicate example ids; the ids to leave out for leakage (:func:`_leaked`, only
    with ``training_texts``). Shared by classification and generative suites."""
    seen: set[str] = set()
    dupes = [i for i in ids if i in seen or seen.add(i)]  # type: ignore[func-returns-value]
    if dupes:
        raise InputError(f"suite {name!r}: duplicate example ids {dupes[:10]}; ids must be unique")
    if not training_texts:
        return set()
    return _leaked(name, list(ids), list(texts), training_texts, workflow, **leak)


def _leaked(
    name: str,
    ids: Sequence[str],
    texts: Sequence[str],
    training_texts: Sequence[str],
    workflow: Workflow,
    *,
    encoder: Any,
    near_duplicates: bool,
    drop_leaked: bool,
) -> set[str]:
    """The leakage rule of every suite: the ids to leave out (``drop_leaked``; listed in a
    :class:`LeakageCheckWarning`), else a :class:`LeakageError` when any example overlaps
    training texts; a :class:`LeakageCheckWarning` when only exact checks ran."""
    enc, why = (
        _resolve_encoder(workflow, encoder)
        if near_duplicates
        else (None, "near-duplicate check turned off")
    )
    report = check_leakage(
        ids,
        texts,
        training_texts,
        threshold=workflow.training.near_duplicate_threshold,
        encoder=enc,
    )
    gone: set[str] = set()
    if report.leaked_ids and drop_leaked:
        gone = set(report.leaked_ids)
        if len(gone) == len(ids):
            raise LeakageError(f"suite {name!r}: every example overlaps training data")
        warnings.warn(
            f"suite {name!r}: left out {len(gone)} examples that overlap training data "
            f"({len(report.exact)} exact, {len(report.near)} near-duplicates): "
            f"{sorted(gone)[:20]}",
            LeakageCheckWarning,
            stacklevel=3,
        )
    elif report.leaked_ids:
        near = ", ".join(f"{i} (cos {s:.3f})" for i, s in report.near[:20])
        raise LeakageError(
            f"suite {name!r} overlaps training data: {len(report.exact)} exact "
            f"duplicates {report.exact[:20]}; {len(report.near)} near-duplicates "
            f"[{near}]; drop these examples from the suite or from the training data"
        )
    if not report.near_checked:
        warnings.warn(
            f"suite {name!r}: {why or report.note}; only exact duplicates were checked",
            LeakageCheckWarning,
            stacklevel=3,
        )
    return gone


def suite_from_examples(
    name: str,
    pool: Sequence[Example],
    workflow: Workflow,
    *,
    training_texts: Sequence[str] = (),
    encoder: Any = None,
    preservation_labels: Sequence[str] | None = None,
) -> EvalSuite:
    """Split a pool of reviewed :class:`Example` records into the three slices by the slice
    rule and freeze it (see :func:`freeze_suite`)."""
    return freeze_suite(
        name,
        list(pool),
        workflow,
        training_texts=training_texts,
        encoder=encoder,
        preservation_labels=preservation_labels,
    )


def read_suite_examples(path: str | Path) -> list[dict[str, Any]]:
    """Read suite examples from JSONL or CSV: fields ``text``, ``label`` and optionally ``id``,
    ``slice`` (core/edge/preservation), ``tags`` (comma-separated in CSV) and ``metadata``
    (an object in JSONL; in CSV every other column becomes metadata)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    rows: list[dict[str, Any]] = []
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{p}:{n}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise InputError(f"{p}:{n}: expected a JSON object per line")
            rows.append(row)
    elif p.suffix.lower() == ".csv":
        with p.open(encoding="utf-8", newline="") as fh:
            for row in csv.DictReader(fh):
                known = {
                    k: row.pop(k) for k in ("id", "text", "label", "slice", "tags") if k in row
                }
                known["metadata"] = {k: v for k, v in row.items() if k and v not in (None, "")}
                rows.append(known)
    else:
        raise InputError(f"{p}: unsupported suite file type {p.suffix!r}; use .jsonl or .csv")
    missing = [i for i, r in enumerate(rows, start=1) if "text" not in r or "label" not in r]
    if missing:
        raise InputError(f"{p}: rows {missing[:10]} lack a 'text' or 'label' field")
    return rows


# -- generative suites (kind: answer | tool_call) ------------------------------------------


def _to_generative_suite_example(
    item: GenerativeExample | GenerativeSuiteExample, workflow: Workflow
) -> GenerativeSuiteExample:
    if isinstance(item, GenerativeSuiteExample):
        tags = sorted({*item.tags, *workflow.slice_tags(item.input, item.metadata)})
        return item.model_copy(update={"tags": tags})
    metadata = dict(item.metadata)
    explicit = metadata.pop("slice", None)
    raw_tags = metadata.pop("tags", None) or []
    if isinstance(raw_tags, str):
        raw_tags = [t for t in raw_tags.replace(";", ",").split(",") if t.strip()]
    tags = sorted({*(str(t).strip() for t in raw_tags), *workflow.slice_tags(item.input, metadata)})
    if explicit:
        try:
            which = SuiteSlice(str(explicit).strip().lower())
        except ValueError:
            which = None
        if which is None or which is SuiteSlice.OUT_OF_SCOPE:
            allowed = [s.value for s in SuiteSlice if s is not SuiteSlice.OUT_OF_SCOPE]
            raise InputError(
                f"suite example {item.id!r}: slice {explicit!r} is not one of {allowed} (an "
                f"unanswerable question is answerable: false, not out_of_scope)"
            )
    elif tags or any(bool(metadata.get(flag)) for flag in _EDGE_FLAGS):
        which = SuiteSlice.EDGE
    else:
        which = SuiteSlice.CORE
    data = item.model_dump(
        exclude={"source", "reviewer", "review_status", "created_at", "metadata", "id"}
    )
    return GenerativeSuiteExample(**data, id=item.id, slice=which, tags=tags, metadata=metadata)


def freeze_generative_suite(
    name: str,
    examples: Sequence[GenerativeExample | GenerativeSuiteExample],
    workflow: Workflow,
    *,
    training_texts: Sequence[str] = (),
    encoder: Any = None,
    near_duplicates: bool = True,
    drop_leaked: bool = False,
    preservation: bool = False,
    preservation_per_slice: int = 10,
    preservation_seed: int = 0,
) -> GenerativeSuite:
    """Build a frozen, content-hashed :class:`GenerativeSuite` of an ``answer`` or
    ``tool_call`` workflow.

    An example's slice is ``metadata["slice"]`` (core, edge, preservation) when given, else
    ``edge`` when it is in a named slice of the workflow (matched on its input) or marked
    ``ambiguous`` / ``multi_topic``, else ``core``. Leakage is checked on the inputs against
    ``training_texts`` exactly as for classification suites (:func:`freeze_suite`). Slices
    outside ``workflow.suites`` give a :class:`SuiteSizeWarning`.

    With ``preservation`` the packaged capability-preservation set
    (:func:`tunegate.generative.preservation_examples` with ``preservation_seed`` and
    ``preservation_per_slice``: five capabilities, of both kinds) is appended as the
    ``preservation`` slice, leakage-checked and hashed like the other examples; they keep
    their one capability tag (no named-slice tags of the workflow).
    """
    workflow.require_kind("a generative suite", "answer", "tool_call")
    if not examples and not preservation:
        raise InputError(f"suite {name!r} has no examples")
    items = [_to_generative_suite_example(e, workflow) for e in examples]
    # the preservation slice may hold the other kind (tool requests in an answer suite)
    wrong = sorted(
        {e.kind for e in items if e.slice is not SuiteSlice.PRESERVATION} - {workflow.kind}
    )
    if wrong:
        raise InputError(
            f"suite {name!r}: {wrong} examples in a {workflow.kind} workflow; every example "
            f"outside the preservation slice must be of the workflow's kind"
        )
    if preservation:
        items += preservation_examples(seed=preservation_seed, per_slice=preservation_per_slice)
    gone = _checked_ids(
        name,
        [e.id for e in items],
        [e.input for e in items],
        training_texts,
        workflow,
        encoder=encoder,
        near_duplicates=near_duplicates,
        drop_leaked=drop_leaked,
    )
    items = [e for e in items if e.id not in gone]
    kind = "answer" if workflow.kind == "answer" else "tool_call"
    suite = GenerativeSuite(name=name, kind=kind, examples=items).frozen()
    for which in (SuiteSlice.CORE, SuiteSlice.EDGE, SuiteSlice.PRESERVATION):
        low, high = getattr(workflow.suites, which.value)
        n = len(suite.slice_examples(which))
        if not low <= n <= high:
            warnings.warn(
                f"suite {name!r}: slice {which.value!r} has {n} examples; recommended "
                f"{low}-{high} (suites.{which.value} in tunegate.yaml)",
                SuiteSizeWarning,
                stacklevel=2,
            )
    return suite


def save_generative_suite(store: Any, suite: GenerativeSuite) -> None:
    """Store a generative suite under its hash (frozen first if it is not); saving the same
    suite again is a no-op, and a stored suite is never replaced."""
    from tunegate.documents import GenerativeSuiteDocument

    frozen = suite if suite.hash else suite.frozen()
    docs = store.documents(GenerativeSuiteDocument)
    if docs.get(frozen.hash) is None:
        docs.put(frozen.hash, GenerativeSuiteDocument(suite=frozen))


def generative_suites(store: Any) -> list[GenerativeSuite]:
    """Every stored generative suite, oldest first."""
    from tunegate.documents import GenerativeSuiteDocument

    found = [doc.suite for _, doc in store.documents(GenerativeSuiteDocument).items()]
    return sorted(found, key=lambda s: s.created_at)


def get_generative_suite(store: Any, name_or_hash: str) -> GenerativeSuite:
    """A generative suite by full hash, by a unique hash prefix (>= 8 characters), or the
    newest by name; :class:`~tunegate.errors.NotFoundError` naming the stored ones."""
    from tunegate.errors import NotFoundError

    suites = generative_suites(store)
    exact = [s for s in suites if s.hash == name_or_hash]
    named = [s for s in suites if s.name == name_or_hash]
    prefixed = (
        [s for s in suites if s.hash.startswith(name_or_hash)] if len(name_or_hash) >= 8 else []
    )
    if exact:
        return exact[0]
    if named:
        return named[-1]
    if len(prefixed) == 1:
        return prefixed[0]
    raise NotFoundError(
        f"no generative suite named or hashed {name_or_hash!r}; stored suites: "
        f"{sorted({s.name for s in suites})}"
    )
