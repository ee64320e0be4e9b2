"""Records of generative workflows (kind ``answer`` or ``tool_call``): examples, suites,
tool calls, document references, output checks and outputs (docs/generative-workflows.md)."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tunegate._validation import (
    aware,
    check_json_value,
    check_strings,
    check_text,
    check_unicode,
    limits_apply,
)
from tunegate.records._core import (
    ExampleSource,
    ReviewStatus,
    SuiteSlice,
    _Record,
    check_frozen_suite,
    content_hash,
    new_id,
    normalize_text,
    utcnow,
)

__all__ = [
    "CHECK_TYPES",
    "DocumentRef",
    "GenerativeExample",
    "GenerativeKind",
    "GenerativeOutput",
    "GenerativeSuite",
    "GenerativeSuiteExample",
    "OutputCheck",
    "ToolCall",
]

# -- generative workflows (kind: answer | tool_call) -------------------------------------------

GenerativeKind = Literal["answer", "tool_call"]
"""The workflow kind a generative record belongs to (docs/generative-workflows.md)."""


class ToolCall(_Record):
    """One call of a declared tool: its name and its JSON arguments (an object)."""

    name: str = Field(min_length=1)
    arguments: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> ToolCall:
        check_unicode(self.name, "tool name")
        if limits_apply(info):
            check_json_value(self.arguments, "tool arguments")
        return self


class DocumentRef(_Record):
    """A knowledge-base document: its id and, when known, the version meant."""

    id: str = Field(min_length=1)
    version: str | None = None

    @model_validator(mode="after")
    def _check(self) -> DocumentRef:
        check_strings(self, ("id", "version"))
        return self


CHECK_TYPES: tuple[str, ...] = (
    "equals",
    "contains",
    "icontains",
    "contains-any",
    "contains-all",
    "icontains-any",
    "icontains-all",
    "starts-with",
    "regex",
    "is-json",
)
"""The deterministic output checks an example may carry (promptfoo's assert types of the same
names); anything that runs code or a model is refused at ingestion."""

_LIST_CHECKS = ("contains-any", "contains-all", "icontains-any", "icontains-all")


class OutputCheck(_Record):
    """A deterministic check of an output's text (from a promptfoo ``assert``)."""

    type: Literal[
        "equals",
        "contains",
        "icontains",
        "contains-any",
        "contains-all",
        "icontains-any",
        "icontains-all",
        "starts-with",
        "regex",
        "is-json",
    ]
    value: Any = None
    """The string (or, for the ``-any``/``-all`` checks, the strings) compared; for
    ``is-json`` an optional JSON Schema the parsed output must satisfy."""
    negate: bool = False
    """The output must NOT pass the check (promptfoo's ``not-`` prefix)."""

    @model_validator(mode="after")
    def _check(self) -> OutputCheck:
        if self.type in _LIST_CHECKS:
            if not (
                isinstance(self.value, list)
                and self.value
                and all(isinstance(v, str) for v in self.value)
            ):
                raise ValueError(f"check {self.type!r} needs a non-empty list of strings")
        elif self.type == "is-json":
            if self.value is not None and not isinstance(self.value, dict):
                raise ValueError("check 'is-json' takes an optional JSON Schema (an object)")
        elif not isinstance(self.value, str):
            raise ValueError(f"check {self.type!r} needs a string value, got {self.value!r}")
        if self.type == "regex":
            import re

            try:
                re.compile(str(self.value))
            except re.error as exc:
                raise ValueError(f"check 'regex': bad pattern {self.value!r}: {exc}") from None
        check_json_value(self.value, f"check {self.type!r}")
        return self

    def passes(self, text: str) -> bool:
        """True when ``text`` passes the check (after ``negate``)."""
        return self._raw(text) != self.negate

    def _raw(self, text: str) -> bool:
        import re

        kind, value = self.type, self.value
        if kind == "equals":
            return text.strip() == str(value).strip()
        if kind == "contains":
            return str(value) in text
        if kind == "icontains":
            return str(value).lower() in text.lower()
        if kind == "starts-with":
            return text.startswith(str(value))
        if kind == "regex":
            return re.search(str(value), text) is not None
        if kind == "is-json":
            try:
                parsed = json.loads(text)
            except ValueError:
                return False
            if not isinstance(self.value, dict):
                return True
            import jsonschema

            return bool(jsonschema.Draft202012Validator(self.value).is_valid(parsed))
        folded = kind.startswith("i")
        hay = text.lower() if folded else text
        needles = [v.lower() if folded else v for v in value]
        found = [n in hay for n in needles]
        return any(found) if kind.endswith("-any") else all(found)


class _GenerativeFields(_Record):
    """What a generative example carries, in an example and in a suite example."""

    kind: GenerativeKind
    """``answer`` or ``tool_call``: the workflow kind the example is for."""
    input: str
    """The question (``answer``) or the request (``tool_call``)."""
    reference: str | None = None
    """The reference answer (``answer``)."""
    alternatives: list[str] = Field(default_factory=list)
    """Other acceptable reference answers."""
    gold_documents: list[DocumentRef] = Field(default_factory=list)
    """The knowledge-base documents that answer the question (``answer``)."""
    context: list[str] = Field(default_factory=list)
    """Passages known to hold the answer, as text (DeepEval's ``context``), for checking
    support where the knowledge base has no document ids."""
    answerable: bool = True
    """False: the knowledge base cannot answer it, and the right output is an abstention."""
    expected_tool: ToolCall | None = None
    """``tool_call``: the call the request should produce; ``None`` means "no tool"."""
    checks: list[OutputCheck] = Field(default_factory=list)
    """Deterministic checks the output's text must pass (promptfoo asserts)."""
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("input")
    @classmethod
    def _input(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("input is empty or whitespace only")
        return check_text(value, "input") if limits_apply(info) else value

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and limits_apply(info):
            check_text(value, "reference")
        return value

    @field_validator("alternatives", "context")
    @classmethod
    def _texts(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if limits_apply(info):
            for item in value:
                check_text(item, str(info.field_name))
        return value

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> _GenerativeFields:
        if self.metadata and limits_apply(info):
            check_json_value(self.metadata, "metadata")
        if self.kind == "answer":
            if self.expected_tool is not None:
                raise ValueError(
                    "expected_tool is for tool_call examples; an answer example has a "
                    "reference answer and gold documents"
                )
            if self.answerable and not (self.reference or self.gold_documents or self.checks):
                raise ValueError(
                    "an answerable question needs a reference answer, gold documents or "
                    "checks (or answerable: false when the right output is an abstention)"
                )
        elif not self.answerable:
            raise ValueError(
                "answerable applies to answer examples; a tool_call example whose request "
                "needs no tool has expected_tool: null"
            )
        return self

    @property
    def no_tool(self) -> bool:
        """``tool_call``: True when the right output is no tool call."""
        return self.kind == "tool_call" and self.expected_tool is None

    @property
    def text_hash(self) -> str:
        """Hash of the normalized input (leakage checks compare inputs)."""
        return content_hash(normalize_text(self.input))

    def target_key(self) -> Any:
        """Everything the example asks of an output, in a canonical form (hashing)."""
        return [
            self.kind,
            normalize_text(self.input),
            self.reference,
            sorted(self.alternatives),
            sorted((d.id, d.version or "") for d in self.gold_documents),
            list(self.context),
            self.answerable,
            None if self.expected_tool is None else self.expected_tool.model_dump(mode="json"),
            [c.model_dump(mode="json") for c in self.checks],
        ]


class GenerativeExample(_GenerativeFields):
    """An example of an ``answer`` or ``tool_call`` workflow, for training or evaluation."""

    id: str = Field(default_factory=lambda: new_id("gex"))
    source: ExampleSource = ExampleSource.IMPORTED
    reviewer: str | None = None
    review_status: ReviewStatus = ReviewStatus.PENDING
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @model_validator(mode="after")
    def _strings(self) -> GenerativeExample:
        check_strings(self, ("id", "reviewer"))
        return self

    @property
    def identity_hash(self) -> str:
        """What "the same example" means on re-ingest: every field a file supplies, without
        review state and ``created_at`` (defaulted to now)."""
        return content_hash(self.id, self.target_key(), self.source.value, self.metadata)


class GenerativeSuiteExample(_GenerativeFields):
    """One example of a generative suite, in a slice (``core``, ``edge``, ``preservation``)."""

    id: str = Field(min_length=1)
    slice: SuiteSlice = SuiteSlice.CORE
    tags: list[str] = Field(default_factory=list)
    """Named slices from tunegate.yaml this example belongs to."""

    @model_validator(mode="after")
    def _slice(self) -> GenerativeSuiteExample:
        check_strings(self, ("id", "tags"))
        if self.slice is SuiteSlice.OUT_OF_SCOPE:
            raise ValueError(
                "a generative suite has no out_of_scope slice: an unanswerable question is "
                "answerable: false, a request for no tool has expected_tool: null"
            )
        return self


class GenerativeSuite(_Record):
    """A frozen, content-hashed suite of ``answer`` or ``tool_call`` examples (immutable,
    like :class:`EvalSuite`; never overlaps training inputs)."""

    name: str
    kind: GenerativeKind
    examples: list[GenerativeSuiteExample]
    created_at: datetime = Field(default_factory=utcnow)
    hash: str = ""
    """SHA-256 over the examples; filled in by :meth:`frozen` and checked on load."""

    def compute_hash(self) -> str:
        return content_hash(
            "generative",
            self.name,
            self.kind,
            [
                (e.id, e.target_key(), e.slice.value, sorted(e.tags))
                for e in sorted(self.examples, key=lambda e: e.id)
            ],
        )

    def frozen(self) -> GenerativeSuite:
        return self.model_copy(update={"hash": self.compute_hash()})

    @model_validator(mode="after")
    def _check(self) -> GenerativeSuite:
        check_frozen_suite(self.name, self.hash, self.compute_hash, [e.id for e in self.examples])
        wrong = sorted({e.kind for e in self.examples} - {self.kind})
        if wrong:
            raise ValueError(
                f"suite {self.name!r} is a {self.kind} suite but holds {wrong} examples"
            )
        return self

    def slice_examples(self, which: SuiteSlice | str) -> list[GenerativeSuiteExample]:
        return [e for e in self.examples if e.slice == SuiteSlice(which)]


class GenerativeOutput(_Record):
    """One model version's output for one generative example: what the answer said and
    cited, whether it abstained, the tool call it made, and what it cost."""

    id: str = Field(default_factory=lambda: new_id("gout"))
    example_id: str
    model_version: str
    kind: GenerativeKind
    answer: str | None = None
    """The answer's text (``answer``), or the raw text around a tool call."""
    cited: list[DocumentRef] = Field(default_factory=list)
    """The documents (and versions) the answer cites."""
    abstained: bool = False
    """The model declined to answer (``answer``)."""
    tool_call: ToolCall | None = None
    """The call made (``tool_call``); ``None``: no tool was called."""
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    latency_ms: float = Field(default=0.0, ge=0.0)
    created_at: datetime = Field(default_factory=utcnow)
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("answer")
    @classmethod
    def _answer(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and limits_apply(info):
            check_text(value, "answer")
        return value

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @field_validator("latency_ms")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"latency_ms must be a finite number, got {value!r}")
        return value

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> GenerativeOutput:
        check_strings(self, ("id", "example_id", "model_version"))
        if self.metadata and limits_apply(info):
            check_json_value(self.metadata, "metadata")
        if self.abstained and self.tool_call is not None:
            raise ValueError("an output that abstained made no tool call")
        return self

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens
