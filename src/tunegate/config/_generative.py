"""The config of generative workflows: the workflow kinds, the tools of a ``tool_call``
workflow and the abstention of an ``answer`` workflow (docs/generative.md)."""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from tunegate.config._base import _Strict

WorkflowKind = Literal["classify", "answer", "tool_call"]
"""What a workflow's model does: ``classify`` (a label), ``answer`` (a grounded answer with
citations, or an abstention) or ``tool_call`` (one declared tool and its JSON arguments, or
no tool). See docs/generative.md."""

CLASSIFY: WorkflowKind = "classify"

_TOOL_NAME = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"


def _schema_location(path: Any) -> str:
    parts = [str(p) for p in path]
    return f" (at parameters.{'.'.join(parts)})" if parts else ""


class ToolSpec(_Strict):
    """A tool a ``tool_call`` workflow may call: its name, what it does and the JSON Schema
    its arguments must satisfy."""

    name: str = Field(pattern=_TOOL_NAME)
    """The tool's name as the model calls it (letters, digits, ``_ . -``; at most 64)."""
    description: str = Field(min_length=1)
    """What the tool does, in words the model sees when it chooses a tool."""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object"})
    """The JSON Schema of the arguments object (checked against its metaschema, draft
    2020-12 unless ``$schema`` names another). Its ``type``, when given, must be ``object``."""

    @field_validator("parameters")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        import jsonschema

        name = info.data.get("name", "?")
        validator = jsonschema.validators.validator_for(
            value, default=jsonschema.Draft202012Validator
        )
        try:
            validator.check_schema(value)
        except jsonschema.SchemaError as exc:
            raise ValueError(
                f"tool {name!r}: parameters is not a valid JSON Schema: {exc.message}"
                f"{_schema_location(exc.absolute_path)}"
            ) from None
        kind = value.get("type")
        if kind is not None and kind != "object":
            raise ValueError(
                f"tool {name!r}: parameters must describe a JSON object (type: object), got "
                f"type {kind!r}; arguments are always an object of named values"
            )
        return value

    @cached_property
    def _validator(self) -> Any:
        import jsonschema

        cls = jsonschema.validators.validator_for(
            self.parameters, default=jsonschema.Draft202012Validator
        )
        return cls(self.parameters)

    def argument_errors(self, arguments: Any) -> list[str]:
        """Why ``arguments`` do not satisfy :attr:`parameters` (empty when they do), one
        message per problem naming the argument's path, e.g. ``arguments.priority: 'x' is not
        one of ['low', 'high']``."""
        found = sorted(self._validator.iter_errors(arguments), key=lambda e: list(e.path))
        out = []
        for error in found:
            where = ".".join(str(p) for p in error.absolute_path)
            out.append(f"arguments{'.' + where if where else ''}: {error.message}")
        return out


class AnswerSettings(_Strict):
    """How an ``answer`` workflow abstains (the ``answer:`` section)."""

    abstention: str = Field(default="I cannot answer this from the knowledge base.", min_length=1)
    """The exact wording an answer gives when it abstains: prompts ask for it, and an output
    equal to it (case and spacing aside) is an abstention."""
    abstention_patterns: list[str] = Field(default_factory=list)
    """Further case-insensitive regular expressions that mark an output as an abstention
    (e.g. ``"\\bI don't know\\b"``), for models that word it their own way."""

    @field_validator("abstention_patterns")
    @classmethod
    def _compile(cls, value: list[str]) -> list[str]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return value

    @cached_property
    def _patterns(self) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.abstention_patterns]

    def is_abstention(self, text: str) -> bool:
        """True when ``text`` is the abstention wording or matches an abstention pattern."""
        folded = " ".join(text.lower().split())
        if folded == " ".join(self.abstention.lower().split()):
            return True
        return any(p.search(text) for p in self._patterns)


class GenerativeRules(_Strict):
    """The verdict rules of ``answer`` / ``tool_call`` workflows (the ``generative_rules:``
    section; docs/generative.md#verdict-rules). Every harm is judged like the classify
    verdict: fail when its point estimate exceeds the tolerance and its paired interval
    excludes 0, pass when the whole interval is within the tolerance, else inconclusive."""

    max_hallucination_increase: float = Field(default=0.02, ge=0.0, le=1.0)
    """Largest tolerated rise of the unsupported-claim (hallucination) rate, as a fraction
    (0.02 = 2 percentage points)."""
    max_tool_call_accuracy_drop: float = Field(default=0.03, ge=0.0, le=1.0)
    """Largest tolerated drop of tool-call accuracy (0.03 = 3 points)."""
    abstention_tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    """Largest tolerated drop of abstention recall and of abstention precision (0: neither
    may fall below the baseline)."""
    max_latency_increase: float = Field(default=0.15, ge=0.0)
    """Largest tolerated relative rise of the median of the paired per-example latency
    ratios (0.15 = +15%)."""
    preservation_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)
    """Largest tolerated drop of correctness on the preservation slice (0.02 = 2 points),
    whatever the core slice gained."""
    core_tolerance: float = Field(default=0.02, ge=0.0, le=1.0)
    """Largest tolerated drop of correctness on the core slice (0.02 = 2 points)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Confidence level of every paired bootstrap interval."""
