"""Limits and checks every record applies, whether it arrives by file or by HTTP.

The constants and helpers are re-exported by :mod:`tunegate.records`; the records' validators
call them, so ingestion and the API refuse the same values with the same messages.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationError, ValidationInfo

__all__ = [
    "MAX_METADATA_DEPTH",
    "MAX_NOTE_CHARS",
    "MAX_TEXT_CHARS",
    "STORED",
    "aware",
    "check_json_value",
    "check_strings",
    "check_text",
    "check_unicode",
    "errors_message",
    "limits_apply",
    "validation_message",
]

MAX_TEXT_CHARS = 20_000
"""The longest ticket or example text accepted, by ingestion and the HTTP API alike."""
MAX_NOTE_CHARS = 2_000
"""The longest override note accepted."""
MAX_METADATA_DEPTH = 32
"""The deepest nesting of lists and objects accepted in ``metadata`` (the object itself is 1)."""

STORED: dict[str, Any] = {"stored": True}
"""Validation context for re-reading a stored record (``model_validate(row, context=STORED)``):
the size and value limits above are skipped, so rows stored before they existed still load."""


def limits_apply(info: ValidationInfo) -> bool:
    """False when validating with the :data:`STORED` context."""
    context = info.context
    return not (isinstance(context, dict) and context.get("stored"))


def aware(value: datetime) -> datetime:
    """``value`` timezone-aware (naive is UTC); ``ValueError`` when its instant in UTC falls
    outside the years 1..9999 (``0001-01-01T00:30:00+01:00``), which no store can hold."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    if value.year in (1, 9999):  # only there can an offset push the instant out of range
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError(
                f"timestamp {value.isoformat()} is out of range once converted to UTC (its "
                f"offset moves it outside the years 1..9999); give it in UTC or with a smaller "
                f"offset"
            ) from None
    return value


def check_unicode(value: str, field: str) -> str:
    """``value`` unchanged; ``ValueError`` when it holds an unpaired surrogate (``\\ud800``),
    which is not valid Unicode and cannot be stored or encoded as UTF-8."""
    if value.isascii():
        return value
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = f"\\u{ord(value[exc.start]):04x}"
        raise ValueError(
            f"{field} holds an unpaired surrogate ({code} at character {exc.start}), which is "
            f"not valid Unicode; fix the text's encoding (a JSON surrogate escape must be a "
            f"high/low pair)"
        ) from None
    return value


def check_text(value: str, field: str, limit: int = MAX_TEXT_CHARS) -> str:
    """A ticket's or example's text: not blank, at most ``limit`` characters, valid Unicode."""
    if len(value) > limit:
        raise ValueError(
            f"{field} has {len(value):,} characters, more than the limit of {limit:,}; "
            f"shorten it or split it into several records"
        )
    return check_unicode(value, field)


def check_json_value(value: Any, field: str, *, max_depth: int = MAX_METADATA_DEPTH) -> Any:
    """``value`` unchanged; ``ValueError`` naming ``field`` when it nests lists/objects deeper
    than ``max_depth``, holds a NaN or infinite float (JSON cannot), or a string or key with an
    unpaired surrogate. Values of other types (dates, ...) pass: they are stored as text."""
    if type(value) is dict:  # the common case, checked inline: a flat object of ASCII and ints
        for key, inner in value.items():
            kind = type(inner)
            if type(key) is not str or not key.isascii():
                break
            if kind is str:
                if not inner.isascii():
                    break
            elif not (kind is int or kind is bool or inner is None):
                break
        else:
            return value
    _walk(value, field, 1, max_depth)
    return value


def _walk(item: Any, field: str, depth: int, max_depth: int) -> None:
    kind = type(item)
    if kind is str:
        if not item.isascii():
            check_unicode(item, field)
        return
    if kind is int or kind is bool or item is None:
        return
    if isinstance(item, float):
        if not math.isfinite(item):
            raise ValueError(
                f"{field} holds {item!r}, which JSON cannot represent; use null or a finite number"
            )
        return
    if isinstance(item, str):
        check_unicode(item, field)
    elif isinstance(item, dict | list | tuple):
        if depth > max_depth:
            raise ValueError(
                f"{field} is nested more than {max_depth} levels deep; flatten it "
                f"(e.g. join the inner keys with dots)"
            )
        if isinstance(item, dict):
            for key, inner in item.items():
                if type(key) is str and not key.isascii():
                    check_unicode(key, f"{field} (a key)")
                _walk(inner, field, depth + 1, max_depth)
        else:
            for inner in item:
                _walk(inner, field, depth + 1, max_depth)


def check_strings(record: BaseModel, names: tuple[str, ...]) -> None:
    """The string fields ``names`` of ``record`` (``str``, ``None`` or a list of ``str``)
    valid Unicode."""
    values = record.__dict__
    for name in names:
        value = values[name]
        if type(value) is str:
            if not value.isascii():
                check_unicode(value, name)
        elif type(value) is list:
            for item in value:
                if type(item) is str and not item.isascii():
                    check_unicode(item, name)


_MESSAGES = {
    "string_unicode": "holds an unpaired surrogate, which is not valid Unicode; fix the "
    "text's encoding (a JSON surrogate escape must be a high/low pair)",
}


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(exc: ValidationError) -> str:
    """One line for a record's :class:`~pydantic.ValidationError`: each error with its field
    and what to do. Ingestion quarantines rows with it; the HTTP API answers with it."""
    return errors_message(exc.errors())


def errors_message(errors: Iterable[Mapping[str, Any]], *, skip: int = 0) -> str:
    """:func:`validation_message` of pydantic's error dicts (``skip``: leading ``loc`` parts to
    leave out, e.g. FastAPI's ``body``). The result is always encodable: values are shown with
    ``repr`` and unpaired surrogates in field names are escaped."""
    parts: list[str] = []
    for err in errors:
        loc = ".".join(str(p) for p in tuple(err["loc"])[skip:])
        kind = err["type"]
        msg = err["msg"].removeprefix("Value error, ")
        if kind == "missing":
            parts.append(f"missing field {loc!r}")
        elif kind in _MESSAGES:
            parts.append(f"{loc or 'a value'} {_MESSAGES[kind]}")
        elif kind.startswith(("datetime", "date", "timezone")):
            parts.append(f"bad timestamp in {loc!r}: {msg} (got {_shown(err.get('input'))})")
        elif kind == "extra_forbidden":
            parts.append(f"unknown field {loc!r}")
        elif kind == "value_error" or "empty" in msg:
            parts.append(f"{loc}: {msg}" if loc and not msg.startswith(loc) else msg)
        else:
            where = f"{loc}: " if loc else ""
            parts.append(f"{where}{msg} (got {_shown(err.get('input'))})")
    return "; ".join(parts).encode("utf-8", "backslashreplace").decode("utf-8")
