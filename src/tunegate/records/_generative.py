"""Records of generative workflows (kind ``answer`` or ``tool_call``): examples, suites,
tool calls, document references, output checks and outputs (docs/generative.md)."""

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
    "ExampleScore",
    "GenerativeExample",
    "GenerativeKind",
    "GenerativeLogEntry",
    "GenerativeOutput",
    "GenerativeRun",
    "GenerativeSuite",
    "GenerativeSuiteExample",
    "GeneratorConfig",
    "OutputCheck",
    "ToolCall",
]

# -- generative workflows (kind: answer | tool_call) -------------------------------------------

GenerativeKind = Literal["answer", "tool_call"]
"""The workflow kind a generative record belongs to (docs/generative.md)."""


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


_BROUGHT = ("passages", "tools")
"""The ``metadata`` keys an example brings its own inputs in (part of its target)."""


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
    asked_at: datetime | None = None
    """When the question was asked: retrieval searches the knowledge base as of this time,
    and a cited version superseded by then is a stale fact. ``None``: now."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Free-form; two keys have a meaning: ``passages`` (a list of ``{"id", "text"}``: the
    example brings its own passages instead of the knowledge base, as the preservation suite
    does) and ``tools`` (a list of tool specs offered instead of the workflow's)."""

    @field_validator("asked_at")
    @classmethod
    def _asked_tz(cls, value: datetime | None) -> datetime | None:
        return None if value is None else aware(value)

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
        """Everything the example asks of an output, in a canonical form (hashing): the
        target fields, and the passages and tools the example brings in ``metadata`` (what
        the output is judged against; added only when present, so the hash of an example
        without them is unchanged)."""
        brought = [
            [key, self.metadata[key]] for key in _BROUGHT if self.metadata.get(key) is not None
        ]
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
            *([] if self.asked_at is None else [self.asked_at.isoformat()]),
            *brought,
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
        wrong = sorted(
            {e.kind for e in self.examples if e.slice is not SuiteSlice.PRESERVATION} - {self.kind}
        )
        if wrong:
            raise ValueError(
                f"suite {self.name!r} is a {self.kind} suite but holds {wrong} examples "
                "(only the preservation slice may hold examples of the other kind)"
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


class GenerativeLogEntry(_Record):
    """One output served in production by an ``answer`` / ``tool_call`` workflow: the
    question, when it was asked, what the model said (a :class:`GenerativeOutput`), and
    whether a human took the conversation over. What ``tunegate ingest outputs`` stores and
    :func:`tunegate.monitor.generative_monthly_figures` reads (docs/monitoring.md)."""

    question: str
    """The question (``answer``) or the request (``tool_call``) as the user asked it."""
    asked_at: datetime
    """When it was asked (naive = UTC): the month and week it counts in, and the time a
    cited document version is judged current or superseded at."""
    escalated: bool = False
    """A human took over (the answer or call was not accepted as it was)."""
    output: GenerativeOutput
    """The output as served; its ``id`` is the entry's id (the store key)."""

    @field_validator("asked_at")
    @classmethod
    def _asked_tz(cls, value: datetime) -> datetime:
        return aware(value)

    @field_validator("question")
    @classmethod
    def _question(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("question is empty or whitespace only")
        return check_text(value, "question") if limits_apply(info) else value

    @property
    def id(self) -> str:
        """The output's id."""
        return self.output.id

    @property
    def identity_hash(self) -> str:
        """What "the same entry" means on re-ingest: every field."""
        return content_hash(self.model_dump(mode="json"))


class GeneratorConfig(_Record):
    """What a ``generator`` :class:`~tunegate.records.ModelVersion` stores in its ``config``:
    everything that makes an ``answer`` / ``tool_call`` workflow's outputs, so a cheap fix
    (top-k, chunk size, filters, reranking, rewriting, abstention criteria, constrained
    output, verification) is a new version differing in one field, promoted and rolled back
    like new weights."""

    model: str = Field(min_length=1)
    """The model name on the OpenAI-compatible endpoint (``llm.model``; a fine-tuned adapter
    is served under its own alias)."""
    adapter: str | None = None
    """The GGUF LoRA adapter file the ``model`` alias serves (provenance of a fine-tune)."""
    system_prompt: str | None = None
    """The system prompt; ``None``: the kind's default."""
    retrieval: dict[str, Any] = Field(default_factory=dict)
    """Overrides of the workflow's ``retrieval:`` settings (``top_k``, ``chunk_size``,
    ``filters``, ``rerank``, ``rewrite``, ...)."""
    freshness: bool = True
    """Retrieve only the document versions in force when the question was asked
    (``False``: every version ever ingested, superseded ones included)."""
    abstention_criteria: str | None = None
    """Explicit criteria for abstaining, added to the prompt."""
    constrained: bool = True
    """Constrained decoding: the output must follow the kind's JSON Schema."""
    verify: bool = False
    """Check each answer against its cited passages and abstain when a claim is unsupported."""
    max_tokens: int = Field(default=192, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stage: Literal["task", "style"] = "task"
    """``style``: a rewrite pass over another version's answers (tone only); evaluated as
    its own version, it never changes the task model."""
    parent: str | None = None
    """``style``: the task version whose answers are rewritten."""


class ExampleScore(_Record):
    """One output judged against its example: the per-example columns the metrics of
    :mod:`tunegate.metrics` take (docs/generative.md)."""

    example_id: str
    kind: GenerativeKind
    slice: SuiteSlice = SuiteSlice.CORE
    tags: list[str] = Field(default_factory=list)
    n_claims: int = Field(default=0, ge=0)
    n_unsupported: int = Field(default=0, ge=0)
    n_stale: int = Field(default=0, ge=0)
    cited: list[str] = Field(default_factory=list)
    """Distinct document ids cited."""
    gold: list[str] = Field(default_factory=list)
    """Distinct gold document ids."""
    answerable: bool = True
    abstained: bool = False
    correct: bool = False
    """The output does what the example asks (see docs/generative.md for each kind)."""
    expected_tool: str | None = None
    called_tool: str | None = None
    arguments_match: bool = False
    arguments_valid: bool = False
    format_valid: bool = True
    latency_ms: float = Field(default=0.0, ge=0.0)
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    retrieved_gold: bool | None = None
    """Whether retrieval returned a gold document (``None``: no gold documents)."""
    failure: str | None = None
    """The triage category when the output failed (``None``: it passed or is not triaged)."""
    evidence: str = ""
    """Why: the unsupported claim, the stale version cited, the schema error, ..."""


class GenerativeRun(_Record):
    """One model version run over one generative suite: every output, its score, and the
    metrics (overall and per slice)."""

    id: str = Field(default_factory=lambda: new_id("grun"))
    model_version: str
    suite_name: str
    suite_hash: str
    kind: GenerativeKind
    outputs: list[GenerativeOutput]
    scores: list[ExampleScore]
    metrics: dict[str, Any] = Field(default_factory=dict)
    """``{"overall": {metric: value}, "slices": {slice: {metric: value}}}``."""
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @model_validator(mode="after")
    def _aligned(self) -> GenerativeRun:
        a = [o.example_id for o in self.outputs]
        b = [s.example_id for s in self.scores]
        if a != b:
            raise ValueError("outputs and scores must cover the same examples in the same order")
        return self
