"""JSONL helpers other modules use to persist lists of records."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from tunegate.errors import InputError

__all__ = ["read_jsonl", "write_jsonl"]

M = TypeVar("M", bound=BaseModel)


def write_jsonl(path: str | Path, records: Iterable[BaseModel]) -> int:
    """Write one JSON object per line (UTF-8), atomically (temp file + rename); returns lines."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    count = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as fh:
            for rec in records:
                fh.write(rec.model_dump_json())
                fh.write("\n")
                count += 1
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return count


def read_jsonl(path: str | Path, model: type[M]) -> list[M]:
    """Read a JSONL file written by :func:`write_jsonl` into ``model`` records.

    Strict: the first bad line raises :class:`InputError` naming the file and line. For user
    files with possibly bad rows use :func:`tunegate.io.read_records` (which quarantines).
    """
    source = Path(path)
    if not source.exists():
        raise InputError(f"{source}: no such file")
    out: list[M] = []
    with source.open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            if not raw.strip():
                continue
            try:
                out.append(model.model_validate_json(raw))
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "line"
                raise InputError(
                    f"{source}:{number}: not a valid {model.__name__}: {where}: {first['msg']}"
                ) from None
    return out
