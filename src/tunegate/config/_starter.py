"""Starter ``tunegate.yaml`` files for a new workflow: from a labelled file, from label names,
or blank."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tunegate.config._loading import parse_workflow
from tunegate.errors import ConfigError

# -- starters for a new workflow -----------------------------------------------------------

STARTER_TARGET_CAP = 50
"""``tunegate init --from`` asks for at most this many reviewed examples per class."""


def describe_label(name: str) -> str:
    """A first description derived from a label's name: ``card_arrival`` -> ``card arrival``,
    ``CardArrival`` -> ``card arrival``, ``top-up.failed`` -> ``top up failed``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    text = " ".join(re.sub(r"[_\-./:]+", " ", text).split()).lower()
    return text or name


def starter_target(count: int) -> int:
    """The reviewed-example target ``tunegate init --from`` writes for a class with ``count``
    rows in the file: ``min(count, 50)`` (at least 1). A class is never asked for more
    examples than the file has; 50 reviewed examples per class is enough for a first
    fine-tune of the shipped encoder (docs/workflow.md#data-targets)."""
    return max(1, min(int(count), STARTER_TARGET_CAP))


def _q(value: str) -> str:
    """A YAML scalar for any string (JSON strings are YAML double-quoted scalars)."""
    import json

    return json.dumps(value)


def _render_starter(
    *,
    header: list[str],
    name: str,
    instructions: str,
    labels: list[tuple[str, str, str]],
    targets: list[tuple[str, int]],
    encoder: str | None,
    labels_note: list[str],
) -> str:
    lines = [*(f"# {h}" if h else "#" for h in header), ""]
    lines += [
        f"name: {_q(name)}            # REQUIRED: the workflow's name",
        "",
        "# Prepended to every label description: this is the zero-shot model's prompt. Editing",
        '# it is the "instructions" fix that `tunegate try instructions` evaluates.',
        f"instructions: {_q(instructions)}",
        "",
        "# Prefix of the ids given to inputs that arrive without one (item_3f2a...).",
        "id_prefix: item",
        "",
        *(f"# {n}" for n in labels_note),
        "labels:",
    ]
    for label, description, comment in labels:
        tail = f"  # {comment}" if comment else ""
        lines.append(f"  {_q(label)}: {{description: {_q(description)}}}{tail}")
    lines += [
        "",
        "# Named slices, reported by every evaluation and monitor: none yet. A slice matches",
        "# when its text_regex (case-insensitive) matches AND every metadata condition holds.",
        "slices: {}",
        "",
        "# Routing by normalized entropy H(p)/log(k): clarify above the threshold, else auto.",
        "# escalate_classes: {label: probability} escalates a class at that probability.",
        "# Without target_clarify_rate / target_risk every model version routes with",
        "# clarify_threshold; with one of them each new version fits its own threshold.",
        "routing:",
        "  clarify_threshold: 0.5",
        "  escalate_classes: {}",
        "",
        "# Deterministic policy rules, applied before any model (`tunegate try rules`).",
        "rules: []",
        "",
    ]
    if targets:
        lines += [
            "# Reviewed training examples needed before a fine-tune (tunegate dataset build):",
            f"# one target per label, min(rows of the label in the file, {STARTER_TARGET_CAP}).",
            "data_targets:",
            *(f"  - {{name: {_q(lab)}, label: {_q(lab)}, min: {n}}}" for lab, n in targets),
        ]
    else:
        lines += [
            "# Reviewed training examples needed before a fine-tune (tunegate dataset build),",
            "# e.g. - {name: enough_first, label: first_label, min: 50}",
            "data_targets: []",
        ]
    lines += [
        "",
        "store:",
        '  url: "sqlite:///tunegate.db"   # relative to this file; or postgresql+psycopg://...',
        "",
        "model:",
        f"  encoder: {_q(encoder) if encoder else 'null'}"
        "   # a local Hugging Face encoder folder; null = shipped all-MiniLM-L6-v2",
        "",
        "# gate, triage, regression, rollback, training and suites keep their defaults:",
        "# every key is listed in docs/concepts.md and the service-desk starter (`tunegate init`).",
        "",
    ]
    return "\n".join(lines)


def starter_from_labels(
    counts: Mapping[str, int],
    *,
    name: str,
    task: str = "A request",
    encoder: str | None = None,
    source: str | None = None,
) -> str:
    """A starter ``tunegate.yaml`` for a new workflow with these labels (label -> rows in the
    data file): descriptions derived from the names (:func:`describe_label`), generic
    instructions (``"<task> about"``), no slices, no escalate-classes, no rules, and one data
    target per label (:func:`starter_target`). The text always passes :func:`parse_workflow`.
    """
    if len(counts) < 2:
        raise ConfigError(
            f"a workflow needs at least two labels; the data has {len(counts)} "
            f"({sorted(counts)}); check the label column"
        )
    total = sum(counts.values())
    where = f"`tunegate init --from {source}`" if source else "`tunegate init --from`"
    text = _render_starter(
        header=[
            f"tunegate.yaml for {name!r}, written by {where}:",
            f"{len(counts)} labels from {total} labelled rows. Every key is optional unless marked",
            "REQUIRED; unknown keys are errors. Next steps: docs/workflow.md.",
        ],
        name=name,
        instructions=f"{task.strip()} about",
        labels=[(label, describe_label(label), f"{n} rows") for label, n in counts.items()],
        targets=[(label, starter_target(n)) for label, n in counts.items()],
        encoder=encoder,
        labels_note=[
            "REQUIRED: at least two labels. The descriptions were derived from the label names:",
            "rewrite them in plain words (the zero-shot model embeds instructions + description).",
            "protected: true -> a rise in the class's false-negative rate fails verdicts.",
        ],
    )
    parse_workflow(text, source="the generated starter")  # always valid
    return text


def blank_yaml(*, name: str = "my_workflow", encoder: str | None = None) -> str:
    """A blank ``tunegate.yaml`` template: two placeholder labels to replace, no slices,
    no escalate-classes, no rules, no data targets. Valid as it stands."""
    text = _render_starter(
        header=[
            "tunegate.yaml: a blank template (`tunegate init --blank`). Replace the two",
            "placeholder labels with yours, or start from data: `tunegate init --from FILE`.",
            "Every key is optional unless marked REQUIRED; unknown keys are errors.",
            "Next steps: docs/workflow.md.",
        ],
        name=name,
        instructions="A request about",
        labels=[
            ("first_label", "what the first class means, in plain words", "replace me"),
            ("second_label", "what the second class means, in plain words", "replace me"),
        ],
        targets=[],
        encoder=encoder,
        labels_note=[
            "REQUIRED: at least two labels. The zero-shot model embeds instructions + description.",
            "protected: true -> a rise in the class's false-negative rate fails verdicts.",
        ],
    )
    parse_workflow(text, source="the blank template")
    return text


def starter_from_file(
    path: str | Path,
    *,
    name: str | None = None,
    task: str = "A request",
    encoder: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    fmt: str | None = None,
) -> tuple[str, Any]:
    """``tunegate init --from``: read the labels of a data file (CSV, JSONL or Parquet;
    :func:`tunegate.io.read_label_counts`) and write a starter for them
    (:func:`starter_from_labels`). Returns ``(yaml text, LabelSummary)``; ``name`` defaults to
    the file's stem."""
    from tunegate.io import read_label_counts

    summary = read_label_counts(path, label_column=label_column, text_column=text_column, fmt=fmt)
    text = starter_from_labels(
        summary.counts,
        name=name or Path(path).stem,
        task=task,
        encoder=encoder,
        source=Path(path).name,
    )
    return text, summary
