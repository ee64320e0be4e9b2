"""Knowledge-base documents with versions and effective dates, and their loaders.

A :class:`KbDocument` is one version of one document. Files give it two ways:

* a folder of Markdown files, each one version, with YAML front matter between ``---`` lines
  (``id``, ``version``, ``effective_from``, optional ``title``, ``effective_to`` and
  ``metadata``);
* JSONL, one version per line, with the same keys plus ``text``.

Every problem is an :class:`~tunegate.errors.InputError` naming the file and line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunegate._validation import aware, check_json_value, errors_message
from tunegate.errors import InputError
from tunegate.records import content_hash

__all__ = ["FILE_KEYS", "KbDocument", "load_documents", "load_jsonl", "load_markdown_folder"]

FILE_KEYS = ("id", "version", "title", "effective_from", "effective_to", "metadata")
"""The keys of a Markdown front matter (and, with ``text``, of a JSONL line)."""

_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


def _to_datetime(value: Any) -> Any:
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        return datetime.fromisoformat(value.strip()).replace(tzinfo=UTC)
    return value


class KbDocument(BaseModel):
    """One version of one knowledge-base document.

    It is in force from ``effective_from`` until the next version of the same document takes
    effect, or until ``effective_to`` when its source gives one (a withdrawn document). A date
    without a time means midnight UTC; a timestamp without an offset is UTC.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    doc_id: str = Field(min_length=1, max_length=128)
    """The document's id, shared by all its versions."""
    version: str = Field(min_length=1, max_length=64)
    """This version's name (``v2``, ``2024-03``, ...); versions are ordered by
    ``effective_from``, not by name."""
    title: str = Field(min_length=1)
    """The document's title in this version."""
    text: str = Field(min_length=1)
    """The body (Markdown)."""
    effective_from: datetime
    """When this version takes effect."""
    effective_to: datetime | None = None
    """When this version stops being in force without a successor (a withdrawal), if ever."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free metadata (department, audience, ...), what retrieval filters match."""
    source: str = ""
    """The file (and line) it came from."""

    @field_validator("effective_from", "effective_to", mode="before")
    @classmethod
    def _dates(cls, value: Any) -> Any:
        return _to_datetime(value)

    @field_validator("effective_from", "effective_to")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        return None if value is None else aware(value).astimezone(UTC)

    @field_validator("doc_id", "version")
    @classmethod
    def _no_blank(cls, value: str) -> str:
        if value != value.strip() or not value:
            raise ValueError(f"must not start or end with spaces, got {value!r}")
        return value

    @field_validator("metadata")
    @classmethod
    def _json(cls, value: dict[str, Any]) -> dict[str, Any]:
        check_json_value(value, "metadata")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> KbDocument:
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError(
                f"effective_to ({self.effective_to.isoformat()}) must be after effective_from "
                f"({self.effective_from.isoformat()})"
            )
        return self

    @property
    def content_hash(self) -> str:
        """SHA-256 of what makes the version (title, text, dates, metadata)."""
        return content_hash(
            self.title,
            self.text,
            self.effective_from.isoformat(),
            None if self.effective_to is None else self.effective_to.isoformat(),
            self.metadata,
        )


def _build(fields: dict[str, Any], where: str) -> KbDocument:
    data = dict(fields)
    if "id" in data:
        data["doc_id"] = data.pop("id")
    data["source"] = where
    try:
        return KbDocument.model_validate(data)
    except ValidationError as exc:
        message = errors_message(exc.errors()).replace("'doc_id'", "'id'")
        raise InputError(f"{where}: {message}") from None


def _front_matter(path: Path, raw: str) -> tuple[dict[str, Any], str, dict[str, int]]:
    """(front matter, body, key -> 1-based line) of one Markdown file."""
    lines = raw.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise InputError(
            f"{path}:1: a knowledge-base Markdown file starts with YAML front matter between "
            f"'---' lines (keys: {', '.join(FILE_KEYS)})"
        )
    end = next((i for i in range(1, len(lines)) if lines[i].strip() in ("---", "...")), None)
    if end is None:
        raise InputError(f"{path}:1: the front matter opened here is never closed with '---'")
    block = "".join(lines[1:end])
    try:
        node = yaml.compose(block, Loader=yaml.SafeLoader)
        data = yaml.safe_load(block)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = 2 + mark.line if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise InputError(f"{path}:{line}: front matter is not valid YAML: {problem}") from None
    if not isinstance(data, dict) or not isinstance(node, yaml.MappingNode):
        raise InputError(f"{path}:2: front matter must be a mapping of {', '.join(FILE_KEYS)}")
    key_lines = {
        str(k.value): 2 + k.start_mark.line for k, _ in node.value if isinstance(k, yaml.ScalarNode)
    }
    body = "".join(lines[end + 1 :])
    return data, body, key_lines


def _markdown_document(path: Path) -> KbDocument:
    try:
        raw = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    data, body, key_lines = _front_matter(path, raw)
    for key in data:
        if key not in FILE_KEYS:
            raise InputError(
                f"{path}:{key_lines.get(str(key), 2)}: unknown front-matter key {key!r}; allowed: "
                f"{', '.join(FILE_KEYS)} (put other fields under metadata:)"
            )
    for key in ("id", "version", "effective_from"):
        if key not in data:
            raise InputError(
                f"{path}:1: front matter has no {key!r}; it needs id, version, effective_from"
            )
    fields = dict(data)
    if "title" not in fields:
        heading = _HEADING.search(body)
        fields["title"] = heading.group(1) if heading else str(data["id"])
    fields["text"] = body.strip()
    for key in ("id", "version"):
        if isinstance(fields[key], int | float):
            fields[key] = str(fields[key])
    try:
        return _build(fields, str(path))
    except InputError as exc:
        # Point at the line of the first key the message names.
        message = str(exc).removeprefix(f"{path}: ")
        line = next(
            (n for k, n in key_lines.items() if f"'{k}'" in message or message.startswith(k)),
            1,
        )
        raise InputError(f"{path}:{line}: {message}") from None


def load_markdown_folder(folder: str | Path) -> list[KbDocument]:
    """Every ``*.md`` file under ``folder`` (recursively, in path order), one version each."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder of Markdown files")
    files = sorted(p for p in root.rglob("*.md") if p.is_file())
    if not files:
        raise InputError(f"{root} holds no .md files")
    return [_markdown_document(p) for p in files]


def _jsonl_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open("rb") as fh:
        for number, raw in enumerate(fh, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"{path}:{number}: not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
            if text.strip():
                yield number, text


def load_jsonl(path: str | Path) -> list[KbDocument]:
    """One version per line: ``id``, ``version``, ``title``, ``text``, ``effective_from`` and
    optional ``effective_to`` and ``metadata``."""
    file = Path(path)
    if not file.is_file():
        raise InputError(f"{file} does not exist")
    docs: list[KbDocument] = []
    for number, line in _jsonl_lines(file):
        where = f"{file}:{number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise InputError(f"{where}: expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {*FILE_KEYS, "text"})
        if unknown:
            raise InputError(
                f"{where}: unknown keys {unknown}; allowed: {', '.join((*FILE_KEYS, 'text'))}"
            )
        docs.append(_build(data, where))
    if not docs:
        raise InputError(f"{file} holds no documents")
    return docs


def load_documents(path: str | Path) -> list[KbDocument]:
    """A folder of Markdown files or a ``.jsonl`` file (by what ``path`` is)."""
    p = Path(path)
    if p.is_dir():
        return load_markdown_folder(p)
    if p.suffix.lower() in (".jsonl", ".ndjson"):
        return load_jsonl(p)
    if p.suffix.lower() == ".md" and p.is_file():
        return [_markdown_document(p)]
    raise InputError(
        f"{p}: expected a folder of Markdown files, a .md file or a .jsonl file"
        + ("" if p.exists() else " (it does not exist)")
    )
