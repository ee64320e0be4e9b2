"""Domain records: one vocabulary across code, store, CLI, API and reports.

Every record is a pydantic model that round-trips through JSON (``model_dump(mode="json")`` /
``model_validate``). Probabilities are stored as ``{label: p}`` mappings so that a record is
self-describing; :meth:`Decision.proba_vector` gives the row in a workflow's label order.
"""

from __future__ import annotations

import hashlib
import json
import math
import unicodedata
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tunegate._validation import (
    MAX_METADATA_DEPTH,
    MAX_NOTE_CHARS,
    MAX_TEXT_CHARS,
    STORED,
    aware,
    check_json_value,
    check_strings,
    check_text,
    check_unicode,
    limits_apply,
    validation_message,
)

__all__ = [
    "CHECK_TYPES",
    "MAX_METADATA_DEPTH",
    "MAX_NOTE_CHARS",
    "MAX_TEXT_CHARS",
    "OUT_OF_SCOPE_LABEL",
    "STORED",
    "Attempt",
    "AttemptKind",
    "Decision",
    "DocumentRef",
    "EvalRun",
    "EvalSuite",
    "Example",
    "ExampleSource",
    "GenerativeExample",
    "GenerativeKind",
    "GenerativeOutput",
    "GenerativeSuite",
    "GenerativeSuiteExample",
    "ModelKind",
    "ModelStatus",
    "ModelVersion",
    "OutputCheck",
    "Override",
    "PromptVersionConfig",
    "ReasonCode",
    "ReviewStatus",
    "Route",
    "RuleHit",
    "RuleResult",
    "SuiteExample",
    "SuiteSlice",
    "Ticket",
    "ToolCall",
    "Verdict",
    "VerdictOutcome",
    "check_json_value",
    "check_unicode",
    "content_hash",
    "new_id",
    "normalize_text",
    "utcnow",
    "validation_message",
]


def utcnow() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """A fresh random id such as ``dec_3f2a...``."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def normalize_text(text: str) -> str:
    """NFKC, lowercase, collapsed whitespace: the form that exact-duplicate checks compare."""
    return " ".join(unicodedata.normalize("NFKC", text).lower().split())


def content_hash(*parts: Any) -> str:
    """SHA-256 over a canonical JSON encoding of ``parts``."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(StrEnum):
    """Where a decision goes."""

    AUTO = "auto"
    CLARIFY = "clarify"
    ESCALATE = "escalate"


class ReasonCode(StrEnum):
    """Why an analyst overrode a decision."""

    R1 = "R1"  # ambiguous input
    R2 = "R2"  # model missed a signal
    R3 = "R3"  # policy / workflow rule
    R4 = "R4"  # label or taxonomy change

    @property
    def meaning(self) -> str:
        return {
            "R1": "ambiguous input",
            "R2": "model missed a signal",
            "R3": "policy or workflow rule",
            "R4": "label or taxonomy change",
        }[self.value]


class ReviewStatus(StrEnum):
    PENDING = "pending"
    REVIEWED = "reviewed"
    REJECTED = "rejected"
    SUPERSEDED = "superseded"
    """An override replaced by a later override of the same decision (which says so): it is
    kept for the audit trail but no figure counts it."""


class ExampleSource(StrEnum):
    OVERRIDE = "override"
    HISTORICAL = "historical"
    IMPORTED = "imported"
    SIMULATED = "simulated"


class Ticket(_Record):
    """An incoming ticket."""

    id: str = Field(min_length=1)
    text: str
    created_at: datetime
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        if len(value) > MAX_TEXT_CHARS or not value.isascii():  # cheap test first: hot path
            return check_text(value, "text") if limits_apply(info) else value
        return value

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @model_validator(mode="after")
    def _strings(self, info: ValidationInfo) -> Ticket:  # one call: ingestion's hot path
        if not self.id.isascii():
            check_unicode(self.id, "id")
        if self.metadata and (info.context is None or limits_apply(info)):
            check_json_value(self.metadata, "metadata")
        return self

    @property
    def content_hash(self) -> str:
        return content_hash(self.text, self.created_at.isoformat(), self.metadata)


class RuleHit(_Record):
    """A rule that decided a label: the provenance of a rules-layer decision."""

    rule: str
    label: str
    matched: list[str] = Field(default_factory=list)
    """The text fragments that matched the rule's patterns."""


class Decision(_Record):
    """One model version's output for one ticket."""

    id: str = Field(default_factory=lambda: new_id("dec"))
    ticket_id: str
    model_version: str
    probabilities: dict[str, float]
    label: str
    h_norm: float = Field(ge=0.0, le=1.0)
    """Normalized entropy H(p)/log(k) of ``probabilities``."""
    route: Route
    latency_ms: float = Field(default=0.0, ge=0.0)
    created_at: datetime = Field(default_factory=utcnow)
    rule_hits: list[RuleHit] = Field(default_factory=list)
    shadow: bool = False
    """True when a candidate scored the ticket beside the champion without routing it."""

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> Decision:
        check_strings(self, ("id", "ticket_id", "model_version", "label"))
        for name, p in self.probabilities.items():
            check_unicode(name, "a label of probabilities")
            if not math.isfinite(p) and limits_apply(info):
                raise ValueError(
                    f"probabilities[{name!r}] is {p!r}; every probability must be a finite number"
                )
        if self.label not in self.probabilities:
            raise ValueError(f"label {self.label!r} is not among the probabilities' labels")
        total = sum(self.probabilities.values())
        if abs(total - 1.0) > 1e-3 or any(p < -1e-9 for p in self.probabilities.values()):
            raise ValueError(f"probabilities must be a distribution (sum={total:.4f})")
        return self

    def proba_vector(self, labels: list[str]) -> list[float]:
        return [float(self.probabilities.get(name, 0.0)) for name in labels]

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.label])


class Override(_Record):
    """An analyst's correction (or confirmation) of a decision."""

    id: str = Field(default_factory=lambda: new_id("ovr"))
    ticket_id: str
    decision_id: str | None = None
    model_label: str | None = None
    """The label the model gave (None when unknown)."""
    final_label: str
    reason_code: ReasonCode
    note: str = ""
    analyst: str = "unknown"
    created_at: datetime = Field(default_factory=utcnow)
    review_status: ReviewStatus = ReviewStatus.PENDING

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @field_validator("note")
    @classmethod
    def _note(cls, value: str, info: ValidationInfo) -> str:
        return check_text(value, "note", MAX_NOTE_CHARS) if limits_apply(info) else value

    @model_validator(mode="after")
    def _strings(self) -> Override:
        check_strings(
            self, ("id", "ticket_id", "decision_id", "model_label", "final_label", "analyst")
        )
        return self

    @property
    def is_correction(self) -> bool:
        """True when the analyst changed the label; False for a confirmation.

        An override whose model label is unknown counts as a correction.
        """
        return self.model_label is None or self.model_label != self.final_label


class Example(_Record):
    """A reviewed (text, label) pair for training or evaluation."""

    id: str = Field(default_factory=lambda: new_id("ex"))
    text: str
    label: str
    source: ExampleSource = ExampleSource.IMPORTED
    reviewer: str | None = None
    review_status: ReviewStatus = ReviewStatus.PENDING
    slice_tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    ticket_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str, info: ValidationInfo) -> str:
        if not value.strip():
            raise ValueError("text is empty or whitespace only")
        if len(value) > MAX_TEXT_CHARS or not value.isascii():  # cheap test first: hot path
            return check_text(value, "text") if limits_apply(info) else value
        return value

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    @model_validator(mode="after")
    def _strings(self, info: ValidationInfo) -> Example:  # one call: ingestion's hot path
        check_strings(self, ("id", "label", "reviewer", "slice_tags", "ticket_id"))
        if self.metadata and (info.context is None or limits_apply(info)):
            check_json_value(self.metadata, "metadata")
        return self

    @property
    def content_hash(self) -> str:
        """Hash of the normalized text and the label (what exact-duplicate checks compare)."""
        return content_hash(normalize_text(self.text), self.label)

    @property
    def text_hash(self) -> str:
        """Hash of the normalized text alone (leakage checks ignore the label)."""
        return content_hash(normalize_text(self.text))


class SuiteSlice(StrEnum):
    CORE = "core"
    EDGE = "edge"
    PRESERVATION = "preservation"
    OUT_OF_SCOPE = "out_of_scope"
    """Queries with no valid label (label :data:`OUT_OF_SCOPE_LABEL`): no class can be right,
    so they count only for routing (the share sent ``auto`` is a verdict rule)."""


OUT_OF_SCOPE_LABEL = "out_of_scope"
"""The reserved label of out-of-scope suite examples (class id ``-1`` in an EvalRun)."""


class SuiteExample(_Record):
    """One example of an evaluation suite, in one of the three slices."""

    id: str
    text: str
    label: str
    slice: SuiteSlice
    tags: list[str] = Field(default_factory=list)
    """Named slices from tunegate.yaml this example belongs to."""
    metadata: dict[str, Any] = Field(default_factory=dict)


class EvalSuite(_Record):
    """A frozen, content-hashed evaluation suite. Never overlaps training data."""

    name: str
    examples: list[SuiteExample]
    created_at: datetime = Field(default_factory=utcnow)
    hash: str = ""
    """SHA-256 over the examples; filled in by :meth:`frozen` and checked on load."""

    def compute_hash(self) -> str:
        return content_hash(
            self.name,
            [
                (e.id, normalize_text(e.text), e.label, e.slice.value, sorted(e.tags))
                for e in sorted(self.examples, key=lambda e: e.id)
            ],
        )

    def frozen(self) -> EvalSuite:
        return self.model_copy(update={"hash": self.compute_hash()})

    @model_validator(mode="after")
    def _hash_ok(self) -> EvalSuite:
        if self.hash and self.hash != self.compute_hash():
            raise ValueError(
                f"suite {self.name!r}: content does not match its hash "
                f"(it was modified after freezing)"
            )
        ids = [e.id for e in self.examples]
        if len(ids) != len(set(ids)):
            raise ValueError(f"suite {self.name!r}: duplicate example ids")
        return self

    def slice_examples(self, which: SuiteSlice | str) -> list[SuiteExample]:
        return [e for e in self.examples if e.slice == SuiteSlice(which)]


class ModelKind(StrEnum):
    ZERO_SHOT = "zero_shot"
    RETRIEVAL = "retrieval"
    RULES = "rules"
    LORA = "lora"
    ROUTER = "router"
    REMOTE_LLM = "remote_llm"
    PROMPT = "prompt"
    """A system prompt on a prompted-LLM backend (:class:`PromptVersionConfig`): changing the
    prompt registers a new version, promoted and rolled back like new weights."""

    @property
    def is_llm(self) -> bool:
        """A prompted LLM: its cheap lever (the gate's condition 4) is the system prompt."""
        return self in (ModelKind.PROMPT, ModelKind.REMOTE_LLM)


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"
    CHAMPION = "champion"
    RETIRED = "retired"


class ModelVersion(_Record):
    """A registered model version with its lineage."""

    id: str
    kind: ModelKind
    base_model: str = ""
    artifact_path: str | None = None
    artifact_hash: str | None = None
    training_data_hash: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    parent: str | None = None
    status: ModelStatus = ModelStatus.CANDIDATE
    created_at: datetime = Field(default_factory=utcnow)
    clarify_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    """This version's routing threshold on normalized entropy, fitted on validation data
    (``tunegate.metrics.fit_route_threshold``); ``None``: the workflow's
    ``routing.clarify_threshold``. Serving and evaluation route the version with it."""
    routing_fit: dict[str, Any] | None = None
    """How ``clarify_threshold`` was fitted (target, validation clarify rate and risk, n)."""

    @field_validator("created_at")
    @classmethod
    def _tz(cls, value: datetime) -> datetime:
        return aware(value)

    def routing_threshold(self, fallback: float) -> float:
        """The threshold to route this version with: its own, else ``fallback``."""
        return fallback if self.clarify_threshold is None else self.clarify_threshold


class PromptVersionConfig(_Record):
    """What a ``prompt`` :class:`ModelVersion` stores in its ``config``: enough to build the
    same prompted classifier again (``build_classifier(backend, workflow,
    system_prompt=template)``) and to tell whether it still is the version registered."""

    backend: str = Field(min_length=1)
    """The registered model backend that runs the prompt (``llm``, ``llm-local``, or any
    backend whose factory takes ``system_prompt``): data, so a version names its own runner."""
    template: str = Field(min_length=1)
    """The system prompt template (placeholders ``{instructions}``, ``{labels}``,
    ``{label_names}``), as tried."""
    model: str = Field(min_length=1)
    """The model name the prompt was evaluated with (``llm.model``); loading pins it."""
    base_url: str | None = None
    """The endpoint it was evaluated on (provenance; loading uses the workflow's
    ``llm.base_url``, where the model is served now)."""
    prompt_hash: str = Field(min_length=1)
    """``tunegate.llm.prompt_hash`` of the rendered system prompt and the model."""
    labels: list[str]
    """The workflow's labels when it was registered (a different label set cannot load it)."""


class VerdictOutcome(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class RuleResult(_Record):
    """One regression rule's figures and outcome."""

    rule: str
    outcome: VerdictOutcome
    baseline: float | None = None
    candidate: float | None = None
    difference: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    threshold: float | None = None
    message: str = ""


class Verdict(_Record):
    """The comparison of a candidate EvalRun with a baseline EvalRun."""

    outcome: VerdictOutcome
    baseline_run: str
    candidate_run: str
    rules: list[RuleResult]
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def exit_code(self) -> int:
        return {VerdictOutcome.PASS: 0, VerdictOutcome.FAIL: 1, VerdictOutcome.INCONCLUSIVE: 2}[
            self.outcome
        ]


class AttemptKind(StrEnum):
    INSTRUCTIONS = "instructions"
    RULES = "rules"
    RETRIEVAL = "retrieval"
    PROMPT = "prompt"
    """A new system prompt for a prompted LLM; its candidate is a ``prompt`` ModelVersion."""
    FINETUNE = "finetune"


class Attempt(_Record):
    """An intervention tried, with its evaluation against the champion: the gate's evidence."""

    id: str = Field(default_factory=lambda: new_id("att"))
    kind: AttemptKind
    description: str = ""
    baseline_version: str
    candidate_version: str
    verdict: Verdict | None = None
    details: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific evidence, e.g. missed-signal overrides before/after."""
    created_at: datetime = Field(default_factory=utcnow)


class EvalRun(_Record):
    """One model version evaluated on one suite."""

    id: str = Field(default_factory=lambda: new_id("run"))
    model_version: str
    suite_hash: str
    labels: list[str]
    metrics: dict[str, Any]
    """Metrics overall, per slice and per class (nested mappings of floats)."""
    example_ids: list[str]
    y_true: list[int]
    proba: list[list[float]]
    """(n, k) probabilities in ``labels`` order, one row per example id."""
    latency_ms: list[float] = Field(default_factory=list)
    seed: int | None = None
    created_at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _shapes(self) -> EvalRun:
        n = len(self.example_ids)
        if len(self.y_true) != n or len(self.proba) != n:
            raise ValueError(
                f"example_ids ({n}), y_true ({len(self.y_true)}) and proba "
                f"({len(self.proba)}) must have the same length"
            )
        return self


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
        if self.hash and self.hash != self.compute_hash():
            raise ValueError(
                f"suite {self.name!r}: content does not match its hash "
                f"(it was modified after freezing)"
            )
        ids = [e.id for e in self.examples]
        if len(ids) != len(set(ids)):
            raise ValueError(f"suite {self.name!r}: duplicate example ids")
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
