"""Generative examples (``answer`` and ``tool_call`` workflows) from the shapes users have.

Shapes (``shape=``, ``--shape``; ``auto``, the default, tells them apart by their fields):

* ``native`` — :class:`~tunegate.records.GenerativeExample`'s own fields (``input``,
  ``reference``, ``gold_documents``, ``answerable``, ``expected_tool``, ``checks``, ...).
* ``deepeval`` — DeepEval test cases / goldens (``input``, ``expected_output``, ``context``,
  ``expected_tools``; ``actual_output``, ``retrieval_context`` and ``tools_called`` are a past
  output and are kept in ``metadata["observed"]``).
* ``promptfoo`` — promptfoo test cases (``vars``, ``assert``, ``description``, ``metadata``;
  in CSV, the ``__expected`` columns). Deterministic asserts become checks; asserts that run
  code (``javascript``, ``python``, ``webhook``) or a grading model are refused with a reason.
* ``inspect`` — Inspect samples (``input``, ``target``, ``id``, ``metadata``).
* ``openai-evals`` — OpenAI Evals samples (``input`` chat messages, ``ideal``).

In every shape, ``metadata`` may carry ``answerable``, ``gold_documents`` and
``expected_tool``. Files: JSONL, CSV, Parquet, and (for promptfoo and DeepEval) a YAML file or
a JSON array of test cases, or a mapping with ``tests:``. Every bad row is quarantined with
file, line and field, as for classification examples (docs/store.md).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import ValidationError

from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.io._readers import RawRow, check_file, detect_format, iter_rows
from tunegate.io._shapes import RowError, _chat_text, _content_text, _show
from tunegate.records import GenerativeExample, check_json_value, validation_message

__all__ = [
    "GENERATIVE_SHAPES",
    "UNSUPPORTED_ASSERTS",
    "GenerativeShape",
    "build_generative",
    "check_generative_args",
    "detect_generative_shape",
    "generative_fields",
    "ingest_generative",
    "iter_generative_rows",
    "parse_generative",
    "read_generative",
    "stored_generative_examples",
]

GenerativeShape = Literal["auto", "native", "deepeval", "promptfoo", "inspect", "openai-evals"]
GENERATIVE_SHAPES: tuple[str, ...] = (
    "auto",
    "native",
    "deepeval",
    "promptfoo",
    "inspect",
    "openai-evals",
)

_NATIVE = (
    "input",
    "reference",
    "alternatives",
    "gold_documents",
    "context",
    "answerable",
    "expected_tool",
    "checks",
    "asked_at",
    "metadata",
    "id",
    "source",
    "reviewer",
    "review_status",
    "created_at",
)
_JSON_FIELDS = ("alternatives", "gold_documents", "context", "expected_tool", "checks", "metadata")
_DEEPEVAL_KEYS = (
    "actual_output",
    "expected_output",
    "retrieval_context",
    "tools_called",
    "expected_tools",
    "additional_metadata",
)
_INPUT_VARS = ("input", "question", "query", "prompt", "request", "message", "text")
"""promptfoo vars that hold the input, in this order of preference."""
_SIMPLE_ASSERTS = {
    "contains": "contains",
    "icontains": "icontains",
    "contains-any": "contains-any",
    "contains-all": "contains-all",
    "icontains-any": "icontains-any",
    "icontains-all": "icontains-all",
    "starts-with": "starts-with",
    "regex": "regex",
    "is-json": "is-json",
}
_IMPLIED_ASSERTS = ("is-valid-openai-tools-call", "is-valid-openai-function-call")
"""Checked for every tool_call example anyway (the call's arguments against its schema)."""
UNSUPPORTED_ASSERTS: dict[str, str] = {
    "javascript": "runs JavaScript, which tunegate does not execute",
    "python": "runs Python, which tunegate does not execute",
    "webhook": "calls a web service, which tunegate does not do at ingestion",
    "llm-rubric": "needs a grading model; tunegate's support checker judges answers instead",
    "model-graded-closedqa": "needs a grading model",
    "model-graded-factuality": "needs a grading model",
    "factuality": "needs a grading model",
    "g-eval": "needs a grading model",
    "answer-relevance": "needs a grading model",
    "context-faithfulness": "needs a grading model",
    "context-relevance": "needs a grading model",
    "context-recall": "needs a grading model",
    "select-best": "compares several outputs",
    "assert-set": "groups asserts",
}
"""promptfoo assert types a row is quarantined for, with why."""


# -- reading files -------------------------------------------------------------------------


def _test_list(data: Any) -> list[Any] | None:
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("tests", "test_cases", "goldens", "samples"):
            if isinstance(data.get(key), list):
                return list(data[key])
    return None


def _json_document(path: Path, text: str) -> Iterator[RawRow] | None:
    """The items of a JSON array (or of a mapping's ``tests`` list) with their lines, or
    ``None`` when the file is JSON Lines."""
    stripped = text.lstrip()
    if not stripped.startswith(("[", "{")):
        return None
    try:
        whole = json.loads(text)
    except ValueError:
        return None  # JSON Lines (or malformed: the JSONL reader says where)
    items = _test_list(whole)
    if items is None or (isinstance(whole, dict) and "\n" not in text.strip()):
        return None
    # find each item's line: decode the array's items one by one from their offsets
    decoder = json.JSONDecoder()
    start = text.find("[") if isinstance(whole, list) else text.find("[", text.find('"tests"'))
    lines: list[int] = []
    pos = start + 1
    while len(lines) < len(items) and pos > 0:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        try:
            _, end = decoder.raw_decode(text, pos)
        except ValueError:
            break
        lines.append(text.count("\n", 0, pos) + 1)
        pos = end
    if len(lines) != len(items):
        lines = [1] * len(items)
    return _document_rows(items, lines)


def _yaml_document(path: Path, text: str) -> Iterator[RawRow]:
    try:
        data = yaml.safe_load(text)
        node = yaml.compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML: {exc}") from None
    items = _test_list(data)
    if items is None:
        raise InputError(
            f"{path}: expected a list of test cases, or a mapping with tests: (promptfoo)"
        )
    seq: Any = node
    if isinstance(node, yaml.MappingNode):
        seq = next(
            (v for k, v in node.value if k.value in ("tests", "test_cases", "goldens", "samples")),
            None,
        )
    lines = (
        [item.start_mark.line + 1 for item in seq.value]
        if isinstance(seq, yaml.SequenceNode) and len(seq.value) == len(items)
        else [1] * len(items)
    )
    return _document_rows(items, lines)


def _document_rows(items: list[Any], lines: list[int]) -> Iterator[RawRow]:
    for item, line in zip(items, lines, strict=True):
        raw = json.dumps(item, ensure_ascii=False, default=str)
        if not isinstance(item, dict):
            yield RawRow(line, raw, error=f"expected a test case (a mapping), got {_show(item)}")
        else:
            yield RawRow(line, raw, data={str(k): v for k, v in item.items()})


def iter_generative_rows(path: Path, fmt: str | None = None) -> Iterator[RawRow]:
    """Every row of ``path``: JSONL, CSV, Parquet, a YAML list of test cases, or a JSON array
    (or ``{"tests": [...]}``) of them. Bad rows carry ``error``."""
    check_file(path)
    suffix = path.suffix.lower()
    if fmt is None and suffix in (".yaml", ".yml"):
        return _yaml_document(path, path.read_text(encoding="utf-8"))
    if fmt is None and suffix == ".json":
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            text = ""
        rows = _json_document(path, text)
        if rows is not None:
            return rows
    return iter_rows(path, detect_format(path, fmt))


# -- shapes -> native fields ---------------------------------------------------------------


def detect_generative_shape(row: Mapping[str, Any]) -> str:
    """The shape a row is in, by its fields; :class:`RowError` when none fits."""
    keys = set(row)
    if "vars" in keys or "assert" in keys or any(k.startswith("__expected") for k in keys):
        return "promptfoo"
    if keys & set(_DEEPEVAL_KEYS):
        return "deepeval"
    if "ideal" in keys:
        return "openai-evals"
    if "target" in keys:
        return "inspect"
    if "input" in keys:
        return "native"
    raise RowError(
        f"cannot tell the shape of this row from its fields {sorted(keys)[:12]}: expected "
        f"DeepEval (input, expected_output, ...), promptfoo (vars, assert), Inspect (input, "
        f"target), OpenAI Evals (input, ideal) or native (input, reference, ...); pass --shape"
    )


def _parse_json_string(value: Any, field: str) -> Any:
    if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            raise RowError(f"field {field!r} is not valid JSON: {_show(value)}") from None
    return value


def _tool_value(value: Any, field: str) -> tuple[bool, dict[str, Any] | None]:
    """``(True, call)`` for an expected tool call given as an object (``name`` with
    ``arguments``, DeepEval's ``input_parameters``, or OpenAI's ``function``), a JSON string of
    one, or a list of one; ``(True, None)`` for "no tool" (``null``, ``[]``, ``"none"``)."""
    value = _parse_json_string(value, field)
    if (
        value is None
        or value == []
        or (isinstance(value, str) and value.strip().lower() in ("", "none", "no_tool", "no tool"))
    ):
        return True, None
    if isinstance(value, list):
        if len(value) > 1:
            names = [v.get("name") if isinstance(v, dict) else v for v in value]
            raise RowError(
                f"{field!r} expects {len(value)} tool calls {names}; a tool_call workflow "
                f"maps a request to one tool or to none"
            )
        return _tool_value(value[0], field)
    if not isinstance(value, dict):
        raise RowError(
            f"{field!r} must be a tool call {{name, arguments}} or null for no tool, got "
            f"{_show(value)}"
        )
    inner = value.get("function")
    call: dict[str, Any] = inner if isinstance(inner, dict) else value
    name = call.get("name")
    if not isinstance(name, str) or not name:
        raise RowError(f"{field!r} has no tool name (a 'name' field)")
    args: Any = {}
    for key in ("arguments", "input_parameters", "parameters", "args"):
        if call.get(key) is not None:
            args = call[key]
            break
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            raise RowError(f"{field!r}: the arguments of {name!r} are not valid JSON") from None
    if not isinstance(args, dict):
        raise RowError(f"{field!r}: the arguments of {name!r} must be an object, got {_show(args)}")
    return True, {"name": name, "arguments": args}


def _targets(value: Any, field: str) -> list[str]:
    value = [value] if not isinstance(value, list) else value
    out = []
    for item in value:
        if not isinstance(item, str):
            raise RowError(f"{field!r} must be a string or a list of strings, got {_show(item)}")
        out.append(item)
    return out


def _chat_input(value: Any, metadata: dict[str, Any]) -> str:
    if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
        system = [m for m in value if m.get("role") == "system"]
        if system:
            metadata.setdefault("system", _content_text(system[-1].get("content")))
    return _chat_text(value, "input")


def _answer_targets(out: dict[str, Any], targets: list[str]) -> None:
    if targets:
        out["reference"] = targets[0]
        out["alternatives"] = targets[1:]


def _deepeval(row: dict[str, Any], out: dict[str, Any], meta: dict[str, Any], kind: str) -> None:
    if "input" not in row:
        raise RowError("missing field 'input' (DeepEval test case)")
    out["input"] = row.pop("input")
    expected = row.pop("expected_output", None)
    if expected is not None:
        out["reference"] = expected
    context = row.pop("context", None)
    if context is not None:
        out["context"] = _targets(context, "context")
    observed = {
        k: row.pop(k)
        for k in ("actual_output", "retrieval_context", "tools_called")
        if row.get(k) is not None
    }
    if observed:
        meta["observed"] = observed
    extra = row.pop("additional_metadata", None)
    if isinstance(extra, dict):
        meta.update(extra)
    if "expected_tools" in row:
        tools = row.pop("expected_tools")
        if kind == "tool_call":
            out["expected_tool"] = _tool_value(tools, "expected_tools")[1]
        elif tools:
            raise RowError("expected_tools is for tool_call workflows; this workflow answers")
    elif kind == "tool_call" and "expected_tool" not in meta:
        raise RowError(
            "missing field 'expected_tools' (a tool_call workflow needs the expected call; "
            "[] when the request needs no tool)"
        )
    for name in ("id", "name"):
        if row.get(name) is not None and "id" not in out:
            out["id"] = str(row.pop(name))


def _promptfoo_input(vars_: dict[str, Any], column_map: Mapping[str, str]) -> tuple[str, Any]:
    renamed = {column_map.get(k, k): k for k in vars_}
    for name in _INPUT_VARS:
        if name in renamed:
            return renamed[name], vars_[renamed[name]]
    if len(vars_) == 1:
        return next(iter(vars_.items()))
    raise RowError(
        f"cannot tell which of vars {sorted(vars_)} is the input; name it one of "
        f"{list(_INPUT_VARS)} or pass --map VAR=input"
    )


def _csv_asserts(row: dict[str, Any]) -> list[Any]:
    """promptfoo's CSV form: ``__expected`` columns hold ``type: value`` or a plain value."""
    asserts: list[Any] = []
    for key in sorted(k for k in row if k.startswith("__expected")):
        cell = row.pop(key)
        if not isinstance(cell, str) or not cell.strip():
            continue
        head, sep, rest = cell.partition(":")
        if sep and head.strip() in {
            *_SIMPLE_ASSERTS,
            *UNSUPPORTED_ASSERTS,
            "equals",
            "not-contains",
        }:
            asserts.append({"type": head.strip(), "value": rest.strip() or None})
        else:
            asserts.append({"type": "equals", "value": cell})
    return asserts


def _promptfoo(
    row: dict[str, Any],
    out: dict[str, Any],
    meta: dict[str, Any],
    kind: str,
    column_map: Mapping[str, str],
) -> None:
    csv_asserts = _csv_asserts(row)
    vars_ = row.pop("vars", None)
    if vars_ is None and "assert" in row:
        raise RowError("missing field 'vars' (the promptfoo test's variables, with the input)")
    if vars_ is None:  # CSV: every column not starting with "__" is a var
        vars_ = {k: row.pop(k) for k in list(row) if not k.startswith("__")}
    if not isinstance(vars_, dict) or not vars_:
        raise RowError(f"field 'vars' must be a non-empty mapping, got {_show(vars_)}")
    name, value = _promptfoo_input(vars_, column_map)
    if not isinstance(value, str):
        raise RowError(f"vars.{name} (the input) must be a string, got {_show(value)}")
    out["input"] = value
    others = {k: v for k, v in vars_.items() if k != name}
    if others:
        meta["vars"] = others
    asserts = row.pop("assert", None) or []
    if not isinstance(asserts, list):
        raise RowError(f"field 'assert' must be a list of asserts, got {_show(asserts)}")
    checks: list[dict[str, Any]] = []
    tool_found = False
    for i, item in enumerate([*asserts, *csv_asserts], 1):
        where = f"assert {i}"
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            raise RowError(f"{where} must be a mapping with a 'type', got {_show(item)}")
        atype: str = item["type"]
        value_ = item.get("value")
        if item.get("transform") is not None:
            raise RowError(
                f"{where} ({atype}) has a transform, which runs code tunegate does "
                f"not execute; drop the transform or the assert"
            )
        if isinstance(value_, str) and value_.startswith("file://"):
            raise RowError(f"{where} ({atype}) reads its value from {value_}; inline the value")
        negate = atype.startswith("not-")
        base = atype[4:] if negate else atype
        if base in UNSUPPORTED_ASSERTS:
            raise RowError(
                f"{where}: assert type {atype!r} is not supported: it "
                f"{UNSUPPORTED_ASSERTS[base]}; rewrite it as one of equals, "
                f"{', '.join(_SIMPLE_ASSERTS)} (optionally not-), or drop it"
            )
        if base in _IMPLIED_ASSERTS:
            continue
        if base == "equals" and not negate and kind == "tool_call":
            if tool_found:
                raise RowError(f"{where}: a second expected tool call; a request maps to one")
            out["expected_tool"] = _tool_value(value_, f"assert {i} value")[1]
            tool_found = True
        elif base in ("equals", "similar") and not negate and kind == "answer":
            if not isinstance(value_, str):
                raise RowError(f"{where} ({atype}) needs a string value, got {_show(value_)}")
            if "reference" in out:
                checks.append({"type": "equals", "value": value_})
            else:
                out["reference"] = value_
        elif base == "equals":
            checks.append({"type": "equals", "value": value_, "negate": negate})
        elif base in _SIMPLE_ASSERTS:
            checks.append({"type": _SIMPLE_ASSERTS[base], "value": value_, "negate": negate})
        else:
            raise RowError(
                f"{where}: assert type {atype!r} is not supported; tunegate maps equals, "
                f"{', '.join(_SIMPLE_ASSERTS)} (optionally not-), similar (as the reference "
                f"answer) and ignores {', '.join(_IMPLIED_ASSERTS)} (checked anyway)"
            )
    if checks:
        out["checks"] = checks
    if kind == "tool_call" and not tool_found and "expected_tool" not in meta:
        raise RowError(
            "no expected tool call: give an equals assert whose value is {name, arguments} "
            "(null or 'none' for no tool), or metadata.expected_tool"
        )
    if row.get("description") is not None:
        meta["description"] = row.pop("description")
    extra = row.pop("metadata", None)
    if isinstance(extra, dict):
        meta.update(extra)
    for key in ("options", "threshold", "provider", "providers", "__description"):
        if key in row:
            meta[key.lstrip("_")] = row.pop(key)


def _target_shape(
    shape: str, row: dict[str, Any], out: dict[str, Any], meta: dict[str, Any], kind: str
) -> None:
    field = "ideal" if shape == "openai-evals" else "target"
    if "input" not in row:
        raise RowError("missing field 'input'")
    out["input"] = _chat_input(row.pop("input"), meta)
    if field in row:
        value = row.pop(field)
        if kind == "tool_call":
            out["expected_tool"] = _tool_value(value, field)[1]
        else:
            _answer_targets(out, _targets(value, field))
    elif kind == "tool_call" and "expected_tool" not in meta:
        raise RowError(f"missing field {field!r} (the expected tool call, or 'none' for no tool)")
    if shape == "inspect" and row.get("id") is not None:
        out["id"] = str(row.pop("id"))


def generative_fields(
    shape: str,
    data: Mapping[str, Any],
    workflow: Workflow,
    column_map: Mapping[str, str] | None = None,
) -> tuple[str, dict[str, Any]]:
    """``(shape, native fields)`` of one row: ``shape`` is the one given, or the detected one
    for ``auto``. :class:`RowError` says why a row cannot become an example."""
    mapping = dict(column_map or {})
    row = {mapping.get(k, k): v for k, v in data.items()}
    the_shape = detect_generative_shape(row) if shape == "auto" else shape
    kind = workflow.kind
    meta_raw = _parse_json_string(row.pop("metadata", None), "metadata")
    meta: dict[str, Any] = dict(meta_raw) if isinstance(meta_raw, dict) else {}
    if meta_raw is not None and not isinstance(meta_raw, dict):
        raise RowError(f"field 'metadata' must be an object, got {_show(meta_raw)}")
    out: dict[str, Any] = {}
    if the_shape == "native":
        for name in _NATIVE:
            if name in row:
                out[name] = row.pop(name)
        if "input" not in out:
            raise RowError("missing field 'input'")
        if isinstance(out["input"], list):  # a chat list: the last user message
            out["input"] = _chat_input(out["input"], meta)
        for name in _JSON_FIELDS:
            if name in out:
                out[name] = _parse_json_string(out[name], name)
        if isinstance(out.get("gold_documents"), str):  # CSV: comma-separated ids
            out["gold_documents"] = [
                d.strip() for d in out["gold_documents"].split(",") if d.strip()
            ]
        if "expected_tool" in out:
            out["expected_tool"] = _tool_value(out["expected_tool"], "expected_tool")[1]
        elif kind == "tool_call" and "expected_tool" not in meta:
            raise RowError("missing field 'expected_tool' (null when the request needs no tool)")
    elif the_shape == "deepeval":
        _deepeval(row, out, meta, kind)
    elif the_shape == "promptfoo":
        _promptfoo(row, out, meta, kind, mapping)
    elif the_shape in ("inspect", "openai-evals"):
        _target_shape(the_shape, row, out, meta, kind)
    else:
        raise InputError(f"unknown shape {shape!r}; expected one of {list(GENERATIVE_SHAPES)}")
    _lift(meta, out)
    for key, value in row.items():  # everything else is kept as metadata
        meta.setdefault(key, value)
    out["metadata"] = meta
    return the_shape, out


def _lift(meta: dict[str, Any], out: dict[str, Any]) -> None:
    """Fields any shape may carry in its metadata."""
    if "answerable" in meta and "answerable" not in out:
        out["answerable"] = meta.pop("answerable")
    if "asked_at" in meta and "asked_at" not in out:
        out["asked_at"] = meta.pop("asked_at")
    for key in ("gold_documents", "gold_document_ids", "gold_docs"):
        if key in meta and "gold_documents" not in out:
            out["gold_documents"] = meta.pop(key)
    if "expected_tool" in meta and "expected_tool" not in out:
        out["expected_tool"] = _tool_value(meta.pop("expected_tool"), "metadata.expected_tool")[1]
    docs = out.get("gold_documents")
    if isinstance(docs, list):
        out["gold_documents"] = [{"id": d} if isinstance(d, str) else d for d in docs]


def _did_you_mean(name: str, names: list[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, names, n=2, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def build_generative(fields: dict[str, Any], workflow: Workflow) -> GenerativeExample:
    """Validate native fields into a :class:`GenerativeExample` of the workflow's kind, with
    the workflow's checks (a declared tool, arguments that satisfy its schema)."""
    row = dict(fields)
    given_kind = row.pop("kind", None)
    if given_kind not in (None, workflow.kind):
        raise RowError(f"kind {given_kind!r} does not match the workflow's kind {workflow.kind!r}")
    row["kind"] = workflow.kind
    if row.get("metadata"):
        try:
            check_json_value(row["metadata"], "metadata")
            row["metadata"] = json.loads(
                json.dumps(row["metadata"], ensure_ascii=False, allow_nan=False, default=str)
            )
        except (ValueError, RecursionError) as exc:
            raise RowError(str(exc)) from None
    if row.get("id") in (None, ""):
        blob = json.dumps(row, sort_keys=True, ensure_ascii=False, default=str)
        row["id"] = "gex_" + hashlib.sha256(blob.encode("utf-8")).hexdigest()[:20]
    elif not isinstance(row["id"], str):
        row["id"] = str(row["id"])
    try:
        example = GenerativeExample.model_validate(row)
    except ValidationError as exc:
        raise RowError(validation_message(exc)) from None
    call = example.expected_tool
    if call is not None:
        tool = workflow.tool(call.name)
        if tool is None:
            names = [t.name for t in workflow.tools]
            raise RowError(
                f"unknown tool {call.name!r} in expected_tool{_did_you_mean(call.name, names)} "
                f"(the workflow's tools are {names}; declare it under tools: or fix the row)"
            )
        problems = tool.argument_errors(call.arguments)
        if problems:
            raise RowError(
                f"expected_tool {call.name!r}: {'; '.join(problems[:3])} (the arguments must "
                f"satisfy the tool's parameters schema in tunegate.yaml)"
            )
    return example


Parsed = tuple[RawRow, "GenerativeExample | None", str]
"""``(raw, example, identity hash)`` of a good row; ``(raw, None, reason)`` of a bad one."""


def parse_generative(
    path: Path,
    workflow: Workflow,
    *,
    shape: str = "auto",
    column_map: Mapping[str, str] | None = None,
    fmt: str | None = None,
) -> Iterator[Parsed]:
    """Every row of ``path`` as an example or a reason; one bad row never stops the others."""
    for raw in iter_generative_rows(path, fmt):
        if raw.error is not None or raw.data is None:
            yield raw, None, raw.error or "unreadable row"
            continue
        try:
            _, fields = generative_fields(shape, raw.data, workflow, column_map)
            example = build_generative(fields, workflow)
            yield raw, example, example.identity_hash
        except RowError as exc:
            yield raw, None, str(exc)
        except InputError:
            raise
        except Exception as exc:  # any other failure is this row's, not the file's
            detail = str(exc).splitlines()[0] if str(exc) else ""
            yield (
                raw,
                None,
                (
                    f"the row could not be validated ({type(exc).__name__}"
                    f"{': ' + detail[:200] if detail else ''}); fix the row or report it as a bug"
                ),
            )


def check_generative_args(workflow: Workflow, shape: str | None) -> str:
    """The shape to read a generative workflow's rows with (default ``auto``)."""
    value = (shape or "auto").lower().replace("_", "-")
    if value in ("openai", "evals"):
        value = "openai-evals"
    if value not in GENERATIVE_SHAPES:
        raise InputError(
            f"unknown shape {shape!r} for a {workflow.kind} workflow; expected one of "
            f"{list(GENERATIVE_SHAPES)}"
        )
    return value


def read_generative(
    path: str | Path,
    *,
    workflow: Workflow,
    shape: str | None = None,
    column_map: Mapping[str, str] | None = None,
    fmt: str | None = None,
) -> tuple[list[GenerativeExample], list[Any]]:
    """Load and validate a file of generative examples without a store: ``(examples,
    problems)`` (:class:`~tunegate.io.Problem`, with file, line and reason)."""

    source = Path(path)
    the_shape = check_generative_args(workflow, shape)
    rows = parse_generative(source, workflow, shape=the_shape, column_map=column_map, fmt=fmt)
    return read_by_id(source, rows)


def read_by_id(source: Path, rows: Iterable[tuple[Any, Any, str]]) -> tuple[list[Any], list[Any]]:
    """The records of parsed rows ``(raw, record | None, digest or reason)``, each id once
    (a repeat with the same content is dropped, with other content a problem), and the
    problems naming file and line."""
    from tunegate.io._ingest import Problem, _dup_reason

    records: list[Any] = []
    problems: list[Problem] = []
    seen: dict[str, tuple[str, int]] = {}
    for raw, record, digest in rows:
        if record is None:
            problems.append(Problem(file=str(source), line=raw.line, reason=digest))
            continue
        prev = seen.get(record.id)
        if prev is None:
            seen[record.id] = (digest, raw.line)
            records.append(record)
        elif prev[0] != digest:
            problems.append(
                Problem(file=str(source), line=raw.line, reason=_dup_reason(record.id, prev[1]))
            )
    return records, problems


def ingest_generative(
    store: Any,
    path: str | Path,
    *,
    workflow: Workflow,
    shape: str | None = None,
    column_map: Mapping[str, str] | None = None,
    fmt: str | None = None,
    quarantine_dir: str | Path | None = None,
) -> Any:
    """Ingest generative examples into ``store`` (documents of kind ``generative_example``),
    quarantining bad rows like :func:`~tunegate.io.ingest_file`; idempotent by id."""
    from tunegate.documents import GenerativeExampleDocument
    from tunegate.io._ingest import IngestReport, _Quarantine, quarantine_path

    source = Path(path)
    check_file(source)
    the_shape = check_generative_args(workflow, shape)
    target = quarantine_path(
        store, source, "examples", Path(quarantine_dir) if quarantine_dir is not None else None
    )
    fmt_name = source.suffix.lower().lstrip(".") or (fmt or "")
    report = IngestReport(kind="examples", file=str(source), format=fmt_name, shape=the_shape)
    started = time.perf_counter()
    docs = store.documents(GenerativeExampleDocument)
    with _Quarantine(target, source, "examples") as quarantine:
        rows = parse_generative(source, workflow, shape=the_shape, column_map=column_map, fmt=fmt)
        store_by_id(
            rows,
            docs,
            lambda example, digest: GenerativeExampleDocument(example=example, digest=digest),
            report,
            quarantine,
        )
    report.batches = 1 if report.added else 0
    report.quarantined = quarantine.count
    report.problems = quarantine.problems
    report.quarantine_file = str(target) if quarantine.count else None
    report.seconds = round(time.perf_counter() - started, 6)
    return report


def store_by_id(
    rows: Iterable[tuple[Any, Any, str]],
    docs: Any,
    make: Callable[[Any, str], Any],
    report: Any,
    quarantine: Any,
) -> None:
    """Store parsed rows ``(raw, record | None, digest or reason)`` as documents keyed by
    ``record.id`` (``make(record, digest)`` builds one), idempotently: the same id with the same
    digest again (in the file or the store) is counted as existing; with other content it is
    quarantined, as is a row that did not parse (its reason). Counts go into ``report``."""
    from tunegate.io._ingest import _dup_reason

    seen: dict[str, tuple[str, int]] = {}
    for raw, record, digest in rows:
        report.rows += 1
        if record is None:
            quarantine.add(raw, digest)
            continue
        prev = seen.get(record.id)
        if prev is not None:
            if prev[0] == digest:
                report.existing += 1
            else:
                quarantine.add(raw, _dup_reason(record.id, prev[1]))
            continue
        seen[record.id] = (digest, raw.line)
        stored = docs.get(record.id)
        if stored is None:
            docs.put(record.id, make(record, digest))
            report.added += 1
        elif stored.digest == digest:
            report.existing += 1
        else:
            quarantine.add(raw, f"id {record.id!r} is already in the store with different content")


def stored_generative_examples(store: Any) -> list[GenerativeExample]:
    """Every generative example in ``store``, ordered by id."""
    from tunegate.documents import GenerativeExampleDocument

    return [doc.example for _, doc in store.documents(GenerativeExampleDocument).items()]
