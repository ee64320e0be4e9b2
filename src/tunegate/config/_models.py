"""The workflow configuration's pydantic models: :class:`Workflow` and its sections."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tunegate.config._base import MetaCondition, _Strict
from tunegate.config._generative import (
    CLASSIFY,
    AnswerSettings,
    GenerativeRules,
    ToolSpec,
    WorkflowKind,
)
from tunegate.config._retrieval import RetrievalSettings

DEFAULT_CONFIG_NAME = "tunegate.yaml"


class LabelSpec(_Strict):
    """One class of the workflow."""

    description: str = Field(min_length=1)
    """What the class means, in words a zero-shot model sees as its prompt."""
    protected: bool = False
    """A protected class: a rise in its false-negative rate fails a verdict and fires triggers."""


class SliceSpec(_Strict):
    """A named slice: a regex over the text and/or predicates over metadata (all must hold)."""

    description: str = ""
    """What the slice is for (shown in reports)."""
    text_regex: str | None = None
    """Case-insensitive regular expression searched in the ticket text."""
    metadata: dict[str, MetaCondition] = Field(default_factory=dict)
    """Field name -> condition on ``Ticket.metadata``."""

    @field_validator("text_regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> SliceSpec:
        if self.text_regex is None and not self.metadata:
            raise ValueError("a slice needs text_regex and/or metadata conditions")
        return self

    @cached_property
    def _pattern(self) -> re.Pattern[str] | None:
        return re.compile(self.text_regex, re.IGNORECASE) if self.text_regex else None

    def matches(self, text: str, metadata: Mapping[str, Any] | None = None) -> bool:
        """True when the ticket belongs to this slice."""
        if self._pattern is not None and not self._pattern.search(text):
            return False
        meta = metadata or {}
        return all(cond.holds(meta.get(name)) for name, cond in self.metadata.items())


class RoutingPolicy(_Strict):
    """How a decision is routed from its probabilities (see ``tunegate.routing``)."""

    clarify_threshold: float = Field(default=0.5, gt=0.0, le=1.0)
    """Route to the clarification queue when normalized entropy H(p)/log(k) is above this.
    The fallback for model versions without a fitted threshold of their own
    (``ModelVersion.clarify_threshold``, fitted to ``target_clarify_rate`` or ``target_risk``
    on validation data when a fine-tune is registered)."""
    target_clarify_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """Fit each new version's threshold so that this share of validation examples is sent to
    clarification (``tunegate.metrics.fit_route_threshold``). Set at most one target."""
    target_risk: float | None = Field(default=None, ge=0.0, le=1.0)
    """Fit each new version's threshold to the largest coverage whose selective risk (error
    rate among ``auto`` decisions) on validation data is at most this. Set at most one
    target; with neither, versions keep ``clarify_threshold``."""
    escalate_classes: dict[str, float] = Field(default_factory=dict)
    """Class -> probability: escalate when the top class is this class with probability >= it."""

    @field_validator("escalate_classes")
    @classmethod
    def _probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        for name, threshold in value.items():
            if not 0.0 <= threshold <= 1.0:
                raise ValueError(f"threshold for {name!r} must be within [0, 1], got {threshold}")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RoutingPolicy:
        if self.target_clarify_rate is not None and self.target_risk is not None:
            raise ValueError(
                "set at most one of target_clarify_rate and target_risk (the fitted threshold "
                "can meet only one target)"
            )
        return self


class RuleSpec(_Strict):
    """A deterministic policy rule: when the text matches, the rule decides the label."""

    name: str = Field(min_length=1)
    """Unique rule name, recorded as the provenance of every hit."""
    label: str
    """The label the rule assigns."""
    all_of: list[str] = Field(default_factory=list)
    """Case-insensitive regexes that must all match."""
    any_of: list[str] = Field(default_factory=list)
    """Case-insensitive regexes of which at least one must match (if any are given)."""
    none_of: list[str] = Field(default_factory=list)
    """Case-insensitive regexes none of which may match."""
    description: str = ""
    """Why the rule exists (shown with every hit)."""

    @model_validator(mode="after")
    def _check(self) -> RuleSpec:
        if not self.all_of and not self.any_of:
            raise ValueError(f"rule {self.name!r} needs all_of and/or any_of patterns")
        for pattern in [*self.all_of, *self.any_of, *self.none_of]:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"rule {self.name!r}: bad regex {pattern!r}: {exc}") from exc
        return self


class GatePolicy(_Strict):
    """The five-condition fine-tuning gate (see docs/diagnosis.md)."""

    reason_code: str = "R2"
    """Override reason code whose weekly trend condition (1) tests."""
    trend_weeks: int = Field(default=4, ge=2)
    """Condition (1): the series must be stable or increasing over at least this many weeks."""
    trend_alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    """Significance level of the Mann-Kendall test for a *decreasing* trend."""
    min_weekly_overrides: int = Field(default=5, ge=0)
    """Condition (1) also needs at least this many overrides per week on average."""
    min_reviewed_examples: int = Field(default=200, ge=1)
    """Condition (3): reviewed labelled examples needed."""
    instruction_fix_success: float = Field(default=0.5, gt=0.0, le=1.0)
    """Condition (4): an instruction attempt that removes at least this share of the missed
    overrides fixed the problem, and fine-tuning is not needed."""
    require_rise: bool = True
    """Condition (1) also needs a significant *increase* (Mann-Kendall, one-sided, trend_alpha)
    over all complete weeks: the problem emerged or grew, it is not the model's standing error
    floor (see docs/diagnosis.md)."""


class TriagePolicy(_Strict):
    """Thresholds that turn triaged failure categories into a recommendation."""

    min_failures: int = Field(default=200, ge=1)
    """Triaged failures needed before any recommendation is made."""
    facts_share: float = Field(default=0.40, gt=0.0, le=1.0)
    """More than this share of missing/stale facts -> retrieval."""
    policy_share: float = Field(default=0.25, gt=0.0, le=1.0)
    """More than this share of policy violations -> move the logic into rules."""
    formatting_share: float = Field(default=0.5, gt=0.0, le=1.0)
    """More than this share of formatting failures -> constrained output."""


class RegressionPolicy(_Strict):
    """Rules of a baseline-vs-candidate verdict (``tunegate compare``)."""

    preservation_tolerance: float = Field(default=0.01, ge=0.0, le=1.0)
    """Fail when capability-preservation accuracy drops by more than this (CI-aware)."""
    protected_fnr_tolerance: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fail when a protected class's false-negative rate rises by more than this (CI-aware)."""
    max_ece_increase: float = Field(default=0.01, ge=0.0)
    """Fail when expected calibration error rises by more than this."""
    max_latency_increase: float = Field(default=0.15, ge=0.0)
    """Fail when median latency rises by more than this fraction."""
    max_selective_risk_increase: float = Field(default=0.01, ge=0.0, le=1.0)
    """Fail when the candidate's selective risk rises by more than this (CI-aware): its area
    under the risk-coverage curve (AURC) or its error rate among ``auto`` decisions at the
    baseline's coverage (rule ``selective_risk``)."""
    max_oos_auto_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    """Fail when the share of out-of-scope suite examples routed ``auto`` rises by more than
    this (CI-aware; rule ``oos_auto_rate``, only for suites with an out_of_scope slice)."""
    max_oos_auto_rate: float | None = Field(default=None, ge=0.0, le=1.0)
    """Optionally also fail when the candidate's out-of-scope ``auto`` share is above this
    (the interval's lower bound must be above it to fail)."""
    max_flip_rate_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    """Fail when the share of robustness-slice examples whose prediction changes under a
    label-preserving perturbation (typos, case, templates, length, mixed language) rises by
    more than this and its interval excludes 0 (rule ``robustness:flip_rate``; only for
    suites frozen with a robustness slice)."""
    max_attack_success_increase: float = Field(default=0.05, ge=0.0, le=1.0)
    """Fail when the share of targeted perturbations (keyword stuffing, injected
    instructions) that move a prediction to their target rises by more than this and its
    interval excludes 0 (rules ``robustness:attack_success:<perturbation>``)."""
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    """Confidence level of the bootstrap intervals."""
    n_bootstrap: int = Field(default=1000, ge=100)
    """Paired bootstrap resamples."""
    seed: int = 0
    """Seed of the bootstrap."""


class RollbackPolicy(_Strict):
    """Rollback triggers watched in production, checked against the pre-promotion baseline."""

    protected_fnr_increase: float = Field(default=0.02, ge=0.0)
    """Fire when a protected class's estimated FNR rises by more than this."""
    override_rate_increase: float = Field(default=0.03, ge=0.0)
    """Fire when the overall override rate rises by more than this."""
    abstention_quality_drop: float = Field(default=0.0, ge=0.0)
    """Fire when selective accuracy of auto-routed decisions falls more than this below baseline."""
    latency_increase: float = Field(default=0.15, ge=0.0)
    """Fire when median latency rises by more than this fraction."""
    escalation_rising_weeks: int = Field(default=2, ge=1)
    """Fire when the escalation rate rises this many consecutive weeks."""
    unsupported_rate_increase: float = Field(default=0.02, ge=0.0)
    """``answer`` workflows: fire when a month's unsupported-assertion rate is more than this
    above the reference month's (2 points)."""
    citation_rate_drop: float = Field(default=0.0, ge=0.0)
    """``answer`` workflows: fire when a month's citation rate falls more than this below the
    reference month's (0: any significant fall)."""
    min_decisions: int = Field(default=50, ge=1)
    """A window with fewer decisions than this is not judged."""
    significance: float = Field(default=0.001, gt=0.0, lt=0.5)
    """A trigger fires only when its change is also statistically significant at this level
    (one-sided test against the baseline), so noise in small windows does not roll back. It
    applies to every window and trigger: at 0.01 a stable model raised a false alarm in about
    8% of 8-week periods per rate trigger (docs/monitoring.md), hence 0.001."""
    baseline_days: int = Field(default=28, ge=1)
    """The pre-promotion baseline window: this many days of decisions before the promotion."""
    webhook: str | None = None
    """Optional URL that receives a JSON alert when a trigger fires."""


class DataTarget(_Strict):
    """A per-class minimum of reviewed training examples (optionally within a slice)."""

    name: str
    """Name shown in shortfall messages."""
    label: str
    """The class."""
    slice: str | None = None
    """A named slice the examples must be in (``None`` = any)."""
    not_slice: str | None = None
    """A named slice the examples must NOT be in (e.g. routine lockouts = not mfa_related)."""
    min: int = Field(ge=1)
    """How many reviewed examples are needed."""


class StoreSettings(_Strict):
    """Where records live."""

    url: str = "sqlite:///tunegate.db"
    """SQLAlchemy URL: a SQLite file by default, ``postgresql+psycopg://...`` for PostgreSQL.
    A relative SQLite path is relative to the directory of tunegate.yaml."""


class ModelSettings(_Strict):
    """The encoder and inference settings."""

    encoder: str | None = None
    """Folder of a local Hugging Face encoder; ``None`` uses the shipped all-MiniLM-L6-v2."""
    max_length: int = Field(default=128, ge=8, le=512)
    """Tokens kept per text; longer texts are truncated (counted and warned once)."""
    batch_size: int = Field(default=64, ge=1)
    """Texts per inference batch."""
    backend: Literal["auto", "onnx", "torch"] = "auto"
    """Inference path: ``auto`` uses ONNX Runtime when available, else PyTorch."""
    precision: Literal["int8", "fp32"] = "int8"
    """Weights on the ONNX Runtime path. ``int8`` (dynamic quantization) is faster (measured
    here: 2.1x the encoder's float32 throughput, 6.5x in the LoRA benchmark), but about 1% of a
    confident adapter's top-1 labels differ from float32 (3.5% on a weak one) and a text's
    output depends slightly on the other texts in its batch (activation scales are per batch);
    ``fp32`` gives the same label whatever the batch. Measured trade-off: docs/models.md."""


class LlmSettings(_Strict):
    """A prompted LLM as the model under test (the ``llm`` and ``llm-local`` backends):
    docs/models.md#llms. Every key has a default that runs the bundled local model."""

    base_url: str | None = None
    """An OpenAI-compatible Chat Completions endpoint, e.g. ``http://127.0.0.1:8088/v1``
    (``tunegate llm serve`` prints it). ``None``: the local server ``tunegate llm serve``
    starts (its default address)."""
    model: str = "smollm2-135m-instruct"
    """The model name sent with every request (and part of every cache key)."""
    api_key_env: str | None = None
    """Name of the environment variable holding the API key (never the key itself); ``None``
    sends no key (a local server)."""
    system_prompt: str | None = None
    """The system prompt template; ``None`` uses the built-in one. Placeholders:
    ``{instructions}``, ``{labels}`` (one ``- name: instructions description`` line per label),
    ``{label_names}`` (comma-separated)."""
    probabilities: Literal["auto", "logprobs", "samples"] = "auto"
    """How label probabilities are obtained: ``logprobs`` reads the server's log-probabilities
    of the label choices; ``samples`` asks ``samples`` times for a schema-constrained answer
    and uses the frequencies; ``auto`` uses logprobs when the server returns them."""
    samples: int = Field(default=5, ge=1, le=100)
    """Answers per text when probabilities come from samples."""
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    """Sampling temperature for ``samples`` (logprob scoring is deterministic)."""
    smoothing: float = Field(default=0.5, ge=0.0, le=10.0)
    """Added to every label's count before sampled answers become probabilities
    (:func:`tunegate.metrics.smoothed_frequencies`), so k answers never give a probability
    of exactly 0 or 1."""
    top_logprobs: int = Field(default=20, ge=1, le=20)
    """Alternatives per answer token asked for when probabilities come from logprobs."""
    response_format: Literal["json_object_schema", "json_schema", "json_object", "none"] = (
        "json_object_schema"
    )
    """How the answer's JSON schema is sent: ``json_object_schema`` (llama.cpp:
    ``{"type": "json_object", "schema": ...}``), ``json_schema`` (OpenAI, vLLM, Ollama:
    ``{"type": "json_schema", "json_schema": {...}}``), ``json_object`` (JSON without a schema)
    or ``none`` (the prompt alone asks for JSON)."""
    max_tokens: int = Field(default=64, ge=8, le=4096)
    """Generated tokens per answer (a ``{"label": ...}`` answer needs a few dozen)."""
    max_concurrency: int = Field(default=4, ge=1, le=256)
    """Requests in flight at once."""
    timeout_s: float = Field(default=60.0, gt=0.0)
    """Per-request timeout in seconds."""
    max_retries: int = Field(default=4, ge=0, le=20)
    """Retries (exponential backoff with jitter) on 429, 5xx, timeouts and dropped connections."""
    cost_per_1k_input_tokens: float = Field(default=0.0, ge=0.0)
    """Price used to record a cost per decision (0 for a local model)."""
    cost_per_1k_output_tokens: float = Field(default=0.0, ge=0.0)
    """Price per 1,000 generated tokens."""


class TrainingSettings(_Strict):
    """LoRA fine-tuning settings."""

    base: Literal["encoder", "llm-local"] = "encoder"
    """What ``tunegate finetune`` puts the adapters on: ``encoder`` (the sentence encoder with a
    classification head) or ``llm-local`` (the in-process local LLM, trained on the label's
    answer tokens; the default ``target_modules`` then mean ``[q_proj, v_proj]``):
    docs/training.md, "LoRA on the local LLM"."""
    lora_r: int = Field(default=8, ge=1)
    """LoRA rank."""
    lora_alpha: int = Field(default=16, ge=1)
    """LoRA scaling numerator."""
    lora_dropout: float = Field(default=0.1, ge=0.0, lt=1.0)
    """Dropout on the LoRA path."""
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"])
    """Encoder modules that get adapters."""
    frozen_layers: int | None = Field(default=None, ge=0)
    """Lower encoder layers left without adapters. Their output never changes during
    training, so it is computed once per text and cached across epochs (docs/training.md).
    ``None`` (default) freezes the lower half (3 of the shipped MiniLM's 6 layers); 0 puts
    adapters in every layer; an explicit value must be below the encoder's layer count."""
    epochs: int = Field(default=3, ge=1)
    """Maximum epochs (early stopping may end sooner)."""
    learning_rate: float = Field(default=5e-4, gt=0.0)
    """AdamW learning rate."""
    batch_size: int = Field(default=16, ge=1)
    """Training batch size."""
    max_batch_tokens: int | None = Field(default=1024, ge=1)
    """A training batch padded to more tokens than this (rows x width) runs as micro-batches
    with accumulated gradients: the same optimizer step, less activation memory on long texts.
    The default (16 rows x 64 tokens) leaves short tickets' batches whole; ``null`` never
    splits."""
    patience: int = Field(default=2, ge=1)
    """Early stopping: epochs without validation improvement before stopping."""
    seeds: int = Field(default=3, ge=1)
    """Adapters trained by default; the standard deviation across them is reported."""
    replay_ratio: float = Field(default=0.5, ge=0.0)
    """Replayed older, correctly handled examples per new example (rehearsal)."""
    validation_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    """Share held out for early stopping."""
    calibration_fraction: float = Field(default=0.15, gt=0.0, lt=0.5)
    """Share held out for fitting the temperature."""
    near_duplicate_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    """Cosine similarity at or above which two texts are near-duplicates."""


class SuiteSizes(_Strict):
    """Recommended size ranges of the three evaluation slices (outside -> warning)."""

    core: tuple[int, int] = (100, 300)
    """Core domain examples."""
    edge: tuple[int, int] = (50, 100)
    """Edge cases."""
    preservation: tuple[int, int] = (50, 100)
    """Capability-preservation examples."""


class Workflow(_Strict):
    """A named workflow: everything tunegate needs to know about it."""

    name: str = Field(min_length=1)
    """The workflow's name."""
    kind: WorkflowKind = CLASSIFY
    """``classify`` (default: a label per input), ``answer`` (a grounded answer with citations,
    or an explicit abstention) or ``tool_call`` (one of ``tools`` with JSON arguments, or no
    tool). See docs/generative.md."""
    instructions: str = ""
    """Workflow-level instructions prepended to every label description (zero-shot prompt)."""
    labels: dict[str, LabelSpec] = Field(default_factory=dict, validate_default=True)
    """Label name -> spec. At least two in a ``classify`` workflow; none in the other kinds."""
    tools: list[ToolSpec] = Field(default_factory=list, validate_default=True)
    """The tools a ``tool_call`` workflow may call (at least one, unique names); only there."""
    answer: AnswerSettings = Field(default_factory=AnswerSettings)
    """How an ``answer`` workflow abstains; only there."""
    slices: dict[str, SliceSpec] = Field(default_factory=dict)
    """Named slices reported by every evaluation and monitor."""
    routing: RoutingPolicy = Field(default_factory=RoutingPolicy)
    """Entropy routing thresholds and escalate-classes."""
    rules: list[RuleSpec] = Field(default_factory=list)
    """Deterministic policy rules, applied before any model."""
    gate: GatePolicy = Field(default_factory=GatePolicy)
    """The fine-tuning gate."""
    triage: TriagePolicy = Field(default_factory=TriagePolicy)
    """Error-triage recommendation thresholds."""
    regression: RegressionPolicy = Field(default_factory=RegressionPolicy)
    """Verdict rules for a candidate against a baseline."""
    generative_rules: GenerativeRules = Field(default_factory=GenerativeRules)
    """Verdict rules of ``answer`` / ``tool_call`` workflows (docs/generative.md)."""
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    """Production rollback triggers."""
    data_targets: list[DataTarget] = Field(default_factory=list)
    """Per-class minimums of reviewed training data."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where records live."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """Encoder and inference settings."""
    llm: LlmSettings = Field(default_factory=LlmSettings)
    """A prompted LLM as the model under test (docs/models.md#llms)."""
    baseline: Literal["zero-shot", "llm", "llm-local"] = "zero-shot"
    """The first champion when none is registered: the zero-shot encoder with
    ``instructions``, or a prompted LLM (``llm``: the OpenAI-compatible endpoint of ``llm:``;
    ``llm-local``: the bundled model in process) with ``llm.system_prompt``, registered as a
    ``prompt`` version so ``tunegate try prompt`` and the gate's condition 4 compare with it."""
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    """Fine-tuning settings."""
    suites: SuiteSizes = Field(default_factory=SuiteSizes)
    """Evaluation-suite size ranges."""
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings)
    """The knowledge base's chunking and hybrid retrieval (docs/knowledge-base.md)."""
    executor: Literal["local", "ray"] = "local"
    """Where batch work runs (classify batch, eval, shadow scoring, attribution, cheap-fix
    attempts, seed sweeps): ``local`` (this process) or ``ray`` (Ray Data actors that load
    the model once; the ``ray`` extra). ``--executor`` overrides it (docs/scaling.md)."""
    ray_address: str | None = None
    """The Ray cluster to join (``ray://host:10001``, or ``auto``); ``None`` starts a local
    cluster for the command and stops it at the end."""
    ray_workers: int | None = Field(default=None, ge=1)
    """Ray workers (one CPU each) scoring at once; ``None``: every CPU of the cluster."""
    mlflow_tracking_uri: str | None = None
    """When set (and the ``mlflow`` extra installed), runs and versions are also logged there."""
    id_prefix: str = Field(default="tkt", pattern=r"^[a-z][a-z0-9]{0,15}$")
    """Prefix of the ids tunegate gives inputs that arrive without one (``tkt_3f2a...`` for
    the service desk; ``tunegate init --from`` writes ``item``). Stored ids never change:
    changing it affects only new inputs."""

    @field_validator("labels")
    @classmethod
    def _two_labels(cls, value: dict[str, LabelSpec], info: ValidationInfo) -> dict[str, LabelSpec]:
        kind = info.data.get("kind")
        if kind == CLASSIFY and len(value) < 2:
            raise ValueError(
                "a classify workflow needs at least two labels (labels: name -> description)"
                if value
                else "a classify workflow needs labels: (at least two, name -> description); "
                "for generated answers or tool calls set kind: answer or kind: tool_call"
            )
        if kind not in (None, CLASSIFY) and value:
            raise ValueError(
                f"labels apply to classify workflows; this workflow's kind is {kind}: remove "
                f"labels: (or set kind: classify)"
            )
        return value

    @field_validator("tools")
    @classmethod
    def _tools(cls, value: list[ToolSpec], info: ValidationInfo) -> list[ToolSpec]:
        kind = info.data.get("kind")
        if kind == "tool_call" and not value:
            raise ValueError(
                "a tool_call workflow needs tools: (at least one, each with name, description "
                "and a JSON Schema of its parameters)"
            )
        if kind not in (None, "tool_call") and value:
            raise ValueError(
                f"tools apply to tool_call workflows; this workflow's kind is {kind}: remove "
                f"tools: (or set kind: tool_call)"
            )
        names = [t.name for t in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"tool names must be unique; repeated: {repeated}")
        return value

    @field_validator("answer")
    @classmethod
    def _answer_kind(cls, value: AnswerSettings, info: ValidationInfo) -> AnswerSettings:
        kind = info.data.get("kind")  # runs only when the key is given
        if kind not in (None, "answer") and value != AnswerSettings():
            raise ValueError(
                f"answer: applies to answer workflows; this workflow's kind is {kind}: remove it"
            )
        return value

    @field_validator("rules", "data_targets")
    @classmethod
    def _classify_only(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        kind = info.data.get("kind")
        if value and kind not in (None, CLASSIFY):
            raise ValueError(
                f"{info.field_name} name labels, so they apply to classify workflows; this "
                f"workflow's kind is {kind}: remove {info.field_name}:"
            )
        return value

    @model_validator(mode="after")
    def _references(self) -> Workflow:
        known = sorted(self.labels)
        for name in self.routing.escalate_classes:
            if name not in self.labels:
                raise ValueError(
                    f"routing.escalate_classes names unknown label {name!r}; allowed: {known}"
                )
        for rule in self.rules:
            if rule.label not in self.labels:
                raise ValueError(
                    f"rule {rule.name!r} assigns unknown label {rule.label!r}; allowed: {known}"
                )
        names = [r.name for r in self.rules]
        if len(names) != len(set(names)):
            raise ValueError(f"rule names must be unique, got {names}")
        for target in self.data_targets:
            if target.label not in self.labels:
                raise ValueError(
                    f"data target {target.name!r} names unknown label "
                    f"{target.label!r}; allowed: {known}"
                )
            for ref in (target.slice, target.not_slice):
                if ref is not None and ref not in self.slices:
                    raise ValueError(
                        f"data target {target.name!r} names unknown slice {ref!r}; "
                        f"allowed: {sorted(self.slices)}"
                    )
        return self

    @property
    def is_classify(self) -> bool:
        """True for a ``classify`` workflow (labels, probabilities, routing)."""
        return self.kind == CLASSIFY

    def require_kind(self, what: str, *kinds: WorkflowKind) -> None:
        """:class:`~tunegate.errors.ConfigError` unless this workflow's kind is one of
        ``kinds`` (default: ``classify``): ``"<what> works on classify workflows; this
        workflow's kind is answer"``."""
        from tunegate.errors import ConfigError

        allowed = kinds or (CLASSIFY,)
        if self.kind not in allowed:
            names = " or ".join(allowed)
            raise ConfigError(
                f"{what} works on {names} workflows; this workflow's kind is {self.kind} "
                f"(see docs/generative.md)"
            )

    def tool(self, name: str) -> ToolSpec | None:
        """The declared tool called ``name``, or ``None``."""
        return next((t for t in self.tools if t.name == name), None)

    @property
    def label_names(self) -> list[str]:
        """Labels in declaration order (the column order of every probability matrix)."""
        return list(self.labels)

    @property
    def protected_labels(self) -> list[str]:
        return [name for name, spec in self.labels.items() if spec.protected]

    def slice_tags(self, text: str, metadata: Mapping[str, Any] | None = None) -> list[str]:
        """Names of the named slices this ticket belongs to."""
        return [name for name, spec in self.slices.items() if spec.matches(text, metadata)]

    def label_prompts(self) -> dict[str, str]:
        """The text a zero-shot model embeds per label: instructions + description."""
        prefix = self.instructions.strip()
        return {
            name: (f"{prefix} {spec.description}" if prefix else spec.description)
            for name, spec in self.labels.items()
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json", by_alias=True), sort_keys=False)

    def resolved_store_url(self, base_dir: Path | None) -> str:
        """The store URL with a relative SQLite path made relative to ``base_dir``."""
        url = self.store.url
        prefix = "sqlite:///"
        if base_dir is not None and url.startswith(prefix) and not url.startswith(prefix + "/"):
            rel = url[len(prefix) :]
            if rel and rel != ":memory:":
                return prefix + str((base_dir / rel).resolve())
        return url
