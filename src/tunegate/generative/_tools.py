"""Deterministic judges of tool calls and structured output against JSON Schemas: the flags
that :func:`~tunegate.metrics.tool_call_accuracy_score`,
:func:`~tunegate.metrics.argument_validity_score` and
:func:`~tunegate.metrics.format_validity_score` take."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tunegate._optional import require
from tunegate.errors import InputError

__all__ = ["arguments_equal", "arguments_valid", "format_valid", "normalize_arguments"]

_MISSING = object()


def _parsed(value: Any) -> Any:
    """A JSON string parsed (``_MISSING`` when it does not parse); anything else as is."""
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return _MISSING
    return value


def _normalized(value: Any, schema: Mapping[str, Any]) -> Any:
    if isinstance(value, Mapping):
        props = schema.get("properties", {}) if isinstance(schema, Mapping) else {}
        out = {str(k): _normalized(v, props.get(k, {})) for k, v in value.items()}
        for key, sub in props.items():
            if key not in out and isinstance(sub, Mapping) and "default" in sub:
                out[key] = _normalized(sub["default"], sub)
        return out
    if isinstance(value, list):
        items = schema.get("items", {}) if isinstance(schema, Mapping) else {}
        return [_normalized(v, items if isinstance(items, Mapping) else {}) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)  # 5.0 == 5 in JSON Schema's number model
    return value


def normalize_arguments(arguments: Any, schema: Mapping[str, Any] | None = None) -> Any:
    """Tool-call arguments in a canonical form: a JSON string is parsed, properties the
    schema gives a ``default`` are filled in where absent (recursively), integral floats
    become ints. Key order never matters; strings are compared as they are (no case folding:
    enums are case-sensitive); ``true`` stays distinct from ``1``."""
    value = _parsed(arguments)
    if value is _MISSING:
        raise InputError(f"tool-call arguments are not valid JSON: {str(arguments)[:80]!r}")
    return _normalized(value, schema or {})


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def arguments_equal(expected: Any, actual: Any, schema: Mapping[str, Any] | None = None) -> bool:
    """True when two argument sets are equal after :func:`normalize_arguments` (arguments
    that are not valid JSON are never equal)."""
    try:
        return _canonical(normalize_arguments(expected, schema)) == _canonical(
            normalize_arguments(actual, schema)
        )
    except InputError:
        return False


def _valid(value: Any, schema: Mapping[str, Any]) -> bool:
    jsonschema = require("jsonschema", purpose="JSON Schema validation of tool calls")
    validator_cls = jsonschema.validators.validator_for(schema)
    try:
        validator_cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise InputError(f"the JSON Schema itself is invalid: {exc.message}") from exc
    return bool(validator_cls(schema).is_valid(value))


def arguments_valid(arguments: Any, schema: Mapping[str, Any]) -> bool:
    """True when the arguments (a mapping, or a JSON string) are valid against the tool's
    JSON Schema (its declared draft, else the latest). Unparseable JSON is invalid; an
    invalid schema raises :class:`~tunegate.errors.InputError`."""
    value = _parsed(arguments)
    return value is not _MISSING and _valid(value, schema)


def format_valid(output: str, schema: Mapping[str, Any]) -> bool:
    """True when a model's text output parses as JSON and is valid against ``schema``
    (surrounding whitespace allowed, nothing else: no Markdown fence, no prose)."""
    value = _parsed(output.strip())
    return value is not _MISSING and _valid(value, schema)
