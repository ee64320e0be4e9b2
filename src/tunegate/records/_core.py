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
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

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
    "MAX_METADATA_DEPTH",
    "MAX_NOTE_CHARS",
    "MAX_TEXT_CHARS",
    "OUT_OF_SCOPE_LABEL",
    "STORED",
    "Attempt",
    "AttemptKind",
    "Decision",
    "EvalRun",
    "EvalSuite",
    "Example",
    "ExampleSource",
    "ModelKind",
    "ModelStatus",
    "ModelVersion",
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


def check_frozen_suite(
    name: str, stored: str, compute: Callable[[], str], ids: Sequence[str]
) -> None:
    """A suite's invariants, for every kind of suite: a stored hash matches its content
    (nothing was modified after freezing) and example ids are unique."""
    if stored and stored != compute():
        raise ValueError(
            f"suite {name!r}: content does not match its hash (it was modified after freezing)"
        )
    if len(ids) != len(set(ids)):
        raise ValueError(f"suite {name!r}: duplicate example ids")


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
        check_frozen_suite(self.name, self.hash, self.compute_hash, [e.id for e in self.examples])
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
    GENERATOR = "generator"
    """An ``answer`` / ``tool_call`` workflow's model: a served LLM with its prompt, retrieval
    and output settings (:class:`~tunegate.records.GeneratorConfig`)."""

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
    FORMAT = "format"
    """Constrained output (a JSON Schema the decoder must follow) for a generative workflow."""
    VERIFICATION = "verification"
    """Answers checked against their cited sources before they are returned."""
    STYLE = "style"
    """A style rewrite stage over a task version's answers (tone only), judged on its own."""
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
