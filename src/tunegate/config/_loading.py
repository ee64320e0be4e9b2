"""Loading ``tunegate.yaml`` with line numbers: every validation problem becomes a
:class:`~tunegate.errors.ConfigError` naming the key, the line and what is allowed."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from tunegate.config._models import DEFAULT_CONFIG_NAME, Workflow
from tunegate.errors import ConfigError

# -- loading with line numbers -------------------------------------------------------------


def _line_index(node: yaml.Node, path: tuple[Any, ...], out: dict[tuple[Any, ...], int]) -> None:
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            out[(*path, key)] = key_node.start_mark.line + 1
            _line_index(value_node, (*path, key), out)
            out[(*path, key)] = key_node.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _line_index(item, (*path, i), out)


def _line_for(loc: tuple[Any, ...], lines: dict[tuple[Any, ...], int]) -> int | None:
    path = tuple(p for p in loc if p not in ("function-after",))
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    model: Any = Workflow
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        annotation = field.annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        nxt = None
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
        if nxt is None:
            return []
        model = nxt
    return sorted((f.alias or name) for name, f in model.model_fields.items())


def parse_workflow(text: str, *, source: str = DEFAULT_CONFIG_NAME) -> Workflow:
    """Validate YAML text as a :class:`Workflow`; errors name the key, line and what is allowed."""
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{source}{where}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(
            f"{source}: expected a mapping of settings at the top level; "
            f"run `tunegate init` for a starter file"
        )
    lines: dict[tuple[Any, ...], int] = {}
    if node is not None:
        _line_index(node, (), lines)
    try:
        return Workflow.model_validate(data)
    except ValidationError as exc:
        messages = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            key = ".".join(str(p) for p in loc) or "(top level)"
            line = _line_for(loc, lines)
            where = f"{source}:{line}" if line else source
            if err["type"] == "extra_forbidden":
                allowed = _allowed_keys(loc)
                messages.append(f"{where}: unknown key {key!r}; allowed here: {allowed}")
            elif err["type"] == "missing":
                messages.append(f"{where}: missing required key {key!r}")
            else:
                msg = err["msg"].removeprefix("Value error, ")
                messages.append(f"{where}: {key}: {msg} (got {err.get('input')!r})")
        raise ConfigError("\n".join(messages)) from None


def load_workflow(path: str | Path | None = None) -> Workflow:
    """Load and validate ``tunegate.yaml`` (default: the one in the working directory)."""
    p = Path(path) if path is not None else Path(DEFAULT_CONFIG_NAME)
    if not p.exists():
        raise ConfigError(
            f"{p}: no such file; run `tunegate init` to write a starter "
            f"tunegate.yaml, or pass --config PATH"
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{p}: not valid UTF-8 ({exc})") from exc
    return parse_workflow(text, source=str(p))


def starter_yaml() -> str:
    """The commented starter ``tunegate.yaml`` for the IT service-desk example."""
    return resources.files("tunegate").joinpath("starter.yaml").read_text(encoding="utf-8")
