"""Row shapes: turn the rows users already have into tunegate's native record fields.

* ``native`` — the record's own field names (``id``, ``text``, ``label``, ...).
* ``openai-evals`` — OpenAI Evals samples: ``input`` (a string, or a chat list whose last
  ``user`` message is the text) and ``ideal`` (a string, or a list whose first item is the label).
* ``inspect`` — Inspect samples: ``input`` (string or chat list), ``target`` (string or list,
  first item), ``id``, ``metadata``.
* ``hf`` — Hugging Face style: ``text`` and ``label``, where the label is a class name, or an
  integer index into the class names the caller gives (``label_names``, ``--label-names``).

Anything else: a ``column_map`` renames source columns first (``{"Document": "text"}``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Literal

from tunegate.config import Workflow
from tunegate.errors import InputError

__all__ = [
    "SHAPES",
    "RowError",
    "Shape",
    "apply_shape",
    "parse_column_map",
    "parse_label_names",
]

Shape = Literal["native", "openai-evals", "inspect", "hf"]
SHAPES: tuple[str, ...] = ("native", "openai-evals", "inspect", "hf")


class RowError(ValueError):
    """A row cannot become a record; the message is the quarantine reason."""


def parse_column_map(pairs: list[str] | Mapping[str, str] | None) -> dict[str, str]:
    """``["Document=text", ...]`` (CLI form) or a mapping -> ``{source: destination}``."""
    if pairs is None:
        return {}
    if isinstance(pairs, Mapping):
        return {str(k): str(v) for k, v in pairs.items()}
    out: dict[str, str] = {}
    for pair in pairs:
        src, sep, dst = pair.partition("=")
        if not sep or not src.strip() or not dst.strip():
            raise InputError(f"--map {pair!r}: expected SOURCE=DESTINATION, e.g. Document=text")
        out[src.strip()] = dst.strip()
    return out


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": "..."}, ...]
        texts = [p.get("text", "") for p in content if isinstance(p, dict)]
        texts = [t for t in texts if isinstance(t, str) and t]
        if texts:
            return "\n".join(texts)
    raise RowError(f"message content must be a string or text parts, got {_show(content)}")


def _chat_text(value: Any, field: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        if not all(isinstance(m, dict) for m in value):
            raise RowError(f"{field!r} must be a string or a list of chat messages")
        users = [m for m in value if m.get("role") == "user"]
        if not users:
            raise RowError(f"{field!r} is a chat list without a 'user' message")
        return _content_text(users[-1].get("content"))
    raise RowError(f"{field!r} must be a string or a non-empty chat list, got {_show(value)}")


def _first(value: Any, field: str) -> Any:
    if isinstance(value, list):
        if not value:
            raise RowError(f"{field!r} is an empty list")
        return value[0]
    return value


def _show(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _label_from_index(value: Any, workflow: Workflow, label_names: list[str] | None) -> Any:
    """An int (or a digit string that is not itself a label) indexes ``label_names``: the
    data set's class names in index order, which must be given — never guessed from the
    order of the labels in tunegate.yaml."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value not in workflow.labels and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int):
        return value
    if label_names is None:
        raise RowError(
            f"label {value} is a class index, and no label names were given to map it; pass "
            f"the data set's class names in index order (--label-names NAME,NAME,... or "
            f"label_names=[...]), or give labels by name"
        )
    if not 0 <= value < len(label_names):
        raise RowError(
            f"label index {value} is out of range for the {len(label_names)} label names "
            f"given (0..{len(label_names) - 1})"
        )
    return label_names[value]


def parse_label_names(names: list[str] | tuple[str, ...] | None) -> list[str] | None:
    """``["a,b", "c"]`` (the CLI's repeatable, comma-separated form) or a list -> class names
    in index order; :class:`InputError` for an empty or repeated name."""
    if names is None:
        return None
    out = [part.strip() for item in names for part in str(item).split(",")]
    if not out or any(not name for name in out):
        raise InputError(f"label names {list(names)!r}: an empty name; give NAME,NAME,...")
    repeated = sorted({name for name in out if out.count(name) > 1})
    if repeated:
        raise InputError(f"label names repeat {repeated}; each class index needs its own name")
    return out


def apply_shape(
    kind: str,
    shape: Shape,
    data: dict[str, Any],
    workflow: Workflow,
    column_map: dict[str, str],
    label_names: list[str] | None = None,
) -> dict[str, Any]:
    """Map a raw row (already parsed) to native field names for ``kind``; in the ``hf`` shape
    an integer label indexes ``label_names`` (a :class:`RowError` without them)."""
    row = {column_map.get(k, k): v for k, v in data.items()} if column_map else dict(data)
    if shape == "native":
        return row
    if kind != "examples":
        raise InputError(f"shape {shape!r} applies to examples only; {kind} use the native shape")
    meta = row.pop("metadata", None)
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except json.JSONDecodeError:
            raise RowError("field 'metadata' is not valid JSON") from None
    metadata: dict[str, Any] = dict(meta) if isinstance(meta, dict) else {}
    out: dict[str, Any] = {}
    if shape in ("openai-evals", "inspect"):
        target_field = "ideal" if shape == "openai-evals" else "target"
        if "input" not in row:
            raise RowError("missing field 'input'")
        if target_field not in row:
            raise RowError(f"missing field {target_field!r}")
        out["text"] = _chat_text(row.pop("input"), "input")
        out["label"] = _first(row.pop(target_field), target_field)
        if shape == "inspect" and row.get("id") is not None:
            out["id"] = str(row.pop("id"))
    else:  # hf
        for name in ("text", "label"):
            if name not in row:
                raise RowError(f"missing field {name!r}")
        out["text"] = row.pop("text")
        out["label"] = _label_from_index(row.pop("label"), workflow, label_names)
        if row.get("id") is not None:
            out["id"] = str(row.pop("id"))
    for name in ("source", "reviewer", "review_status", "ticket_id", "created_at"):
        if name in row:
            out[name] = row.pop(name)
    for key, value in row.items():  # everything else is kept as metadata
        metadata.setdefault(key, value)
    out["metadata"] = metadata
    return out
