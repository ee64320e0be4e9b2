"""The workflow configuration, ``tunegate.yaml``, as validated pydantic models.

A :class:`Workflow` is data: it round-trips to YAML, every field carries a docstring, and
computation takes these objects, never raw dicts. :func:`load_workflow` validates a file and
turns every problem into a :class:`~tunegate.errors.ConfigError` that names the key, the line
and what is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from tunegate.errors import ConfigError

__all__ = [
    "DataTarget",
    "GatePolicy",
    "LabelSpec",
    "MetaCondition",
    "ModelSettings",
    "RegressionPolicy",
    "RollbackPolicy",
    "RoutingPolicy",
    "RuleSpec",
    "SliceSpec",
    "StoreSettings",
    "SuiteSizes",
    "TrainingSettings",
    "TriagePolicy",
    "Workflow",
    "blank_yaml",
    "describe_label",
    "load_workflow",
    "parse_workflow",
    "starter_from_file",
    "starter_from_labels",
    "starter_target",
    "starter_yaml",
]

DEFAULT_CONFIG_NAME = "tunegate.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class LabelSpec(_Strict):
    """One class of the workflow."""

    description: str = Field(min_length=1)
    """What the class means, in words a zero-shot model sees as its prompt."""
    protected: bool = False
    """A protected class: a rise in its false-negative rate fails a verdict and fires triggers."""


class MetaCondition(_Strict):
    """A predicate over one metadata field; every condition given must hold."""

    eq: Any = None
    """The field equals this value."""
    in_: list[Any] | None = Field(default=None, alias="in")
    """The field is one of these values."""
    not_in: list[Any] | None = None
    """The field is none of these values."""
    gte: float | None = None
    """The field is a number >= this."""
    lt: float | None = None
    """The field is a number < this."""

    def holds(self, value: Any) -> bool:
        if value is None:
            return False
        if self.eq is not None and value != self.eq:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.not_in is not None and value in self.not_in:
            return False
        if self.gte is not None or self.lt is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                return False
            if self.gte is not None and number < self.gte:
                return False
            if self.lt is not None and number >= self.lt:
                return False
        return True


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


class TrainingSettings(_Strict):
    """LoRA fine-tuning settings."""

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
    """A named classification workflow: everything tunegate needs to know about it."""

    name: str = Field(min_length=1)
    """The workflow's name."""
    instructions: str = ""
    """Workflow-level instructions prepended to every label description (zero-shot prompt)."""
    labels: dict[str, LabelSpec]
    """Label name -> spec. At least two."""
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
    rollback: RollbackPolicy = Field(default_factory=RollbackPolicy)
    """Production rollback triggers."""
    data_targets: list[DataTarget] = Field(default_factory=list)
    """Per-class minimums of reviewed training data."""
    store: StoreSettings = Field(default_factory=StoreSettings)
    """Where records live."""
    model: ModelSettings = Field(default_factory=ModelSettings)
    """Encoder and inference settings."""
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    """Fine-tuning settings."""
    suites: SuiteSizes = Field(default_factory=SuiteSizes)
    """Evaluation-suite size ranges."""
    mlflow_tracking_uri: str | None = None
    """When set (and the ``mlflow`` extra installed), runs and versions are also logged there."""
    id_prefix: str = Field(default="tkt", pattern=r"^[a-z][a-z0-9]{0,15}$")
    """Prefix of the ids tunegate gives inputs that arrive without one (``tkt_3f2a...`` for
    the service desk; ``tunegate init --from`` writes ``item``). Stored ids never change:
    changing it affects only new inputs."""

    @field_validator("labels")
    @classmethod
    def _two_labels(cls, value: dict[str, LabelSpec]) -> dict[str, LabelSpec]:
        if len(value) < 2:
            raise ValueError("a workflow needs at least two labels")
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


# -- starters for a new workflow -----------------------------------------------------------

STARTER_TARGET_CAP = 50
"""``tunegate init --from`` asks for at most this many reviewed examples per class."""


def describe_label(name: str) -> str:
    """A first description derived from a label's name: ``card_arrival`` -> ``card arrival``,
    ``CardArrival`` -> ``card arrival``, ``top-up.failed`` -> ``top up failed``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name)
    text = " ".join(re.sub(r"[_\-./:]+", " ", text).split()).lower()
    return text or name


def starter_target(count: int) -> int:
    """The reviewed-example target ``tunegate init --from`` writes for a class with ``count``
    rows in the file: ``min(count, 50)`` (at least 1). A class is never asked for more
    examples than the file has; 50 reviewed examples per class is enough for a first
    fine-tune of the shipped encoder (docs/workflow.md#data-targets)."""
    return max(1, min(int(count), STARTER_TARGET_CAP))


def _q(value: str) -> str:
    """A YAML scalar for any string (JSON strings are YAML double-quoted scalars)."""
    import json

    return json.dumps(value)


def _render_starter(
    *,
    header: list[str],
    name: str,
    instructions: str,
    labels: list[tuple[str, str, str]],
    targets: list[tuple[str, int]],
    encoder: str | None,
    labels_note: list[str],
) -> str:
    lines = [*(f"# {h}" if h else "#" for h in header), ""]
    lines += [
        f"name: {_q(name)}            # REQUIRED: the workflow's name",
        "",
        "# Prepended to every label description: this is the zero-shot model's prompt. Editing",
        '# it is the "instructions" fix that `tunegate try instructions` evaluates.',
        f"instructions: {_q(instructions)}",
        "",
        "# Prefix of the ids given to inputs that arrive without one (item_3f2a...).",
        "id_prefix: item",
        "",
        *(f"# {n}" for n in labels_note),
        "labels:",
    ]
    for label, description, comment in labels:
        tail = f"  # {comment}" if comment else ""
        lines.append(f"  {_q(label)}: {{description: {_q(description)}}}{tail}")
    lines += [
        "",
        "# Named slices, reported by every evaluation and monitor: none yet. A slice matches",
        "# when its text_regex (case-insensitive) matches AND every metadata condition holds.",
        "slices: {}",
        "",
        "# Routing by normalized entropy H(p)/log(k): clarify above the threshold, else auto.",
        "# escalate_classes: {label: probability} escalates a class at that probability.",
        "routing:",
        "  clarify_threshold: 0.5",
        "  escalate_classes: {}",
        "",
        "# Deterministic policy rules, applied before any model (`tunegate try rules`).",
        "rules: []",
        "",
    ]
    if targets:
        lines += [
            "# Reviewed training examples needed before a fine-tune (tunegate dataset build):",
            f"# one target per label, min(rows of the label in the file, {STARTER_TARGET_CAP}).",
            "data_targets:",
            *(f"  - {{name: {_q(lab)}, label: {_q(lab)}, min: {n}}}" for lab, n in targets),
        ]
    else:
        lines += [
            "# Reviewed training examples needed before a fine-tune (tunegate dataset build),",
            "# e.g. - {name: enough_first, label: first_label, min: 50}",
            "data_targets: []",
        ]
    lines += [
        "",
        "store:",
        '  url: "sqlite:///tunegate.db"   # relative to this file; or postgresql+psycopg://...',
        "",
        "model:",
        f"  encoder: {_q(encoder) if encoder else 'null'}"
        "   # a local Hugging Face encoder folder; null = shipped all-MiniLM-L6-v2",
        "",
        "# gate, triage, regression, rollback, training and suites keep their defaults:",
        "# every key is listed in docs/concepts.md and the service-desk starter (`tunegate init`).",
        "",
    ]
    return "\n".join(lines)


def starter_from_labels(
    counts: Mapping[str, int],
    *,
    name: str,
    task: str = "A request",
    encoder: str | None = None,
    source: str | None = None,
) -> str:
    """A starter ``tunegate.yaml`` for a new workflow with these labels (label -> rows in the
    data file): descriptions derived from the names (:func:`describe_label`), generic
    instructions (``"<task> about"``), no slices, no escalate-classes, no rules, and one data
    target per label (:func:`starter_target`). The text always passes :func:`parse_workflow`.
    """
    if len(counts) < 2:
        raise ConfigError(
            f"a workflow needs at least two labels; the data has {len(counts)} "
            f"({sorted(counts)}); check the label column"
        )
    total = sum(counts.values())
    where = f"`tunegate init --from {source}`" if source else "`tunegate init --from`"
    text = _render_starter(
        header=[
            f"tunegate.yaml for {name!r}, written by {where}:",
            f"{len(counts)} labels from {total} labelled rows. Every key is optional unless marked",
            "REQUIRED; unknown keys are errors. Next steps: docs/workflow.md.",
        ],
        name=name,
        instructions=f"{task.strip()} about",
        labels=[(label, describe_label(label), f"{n} rows") for label, n in counts.items()],
        targets=[(label, starter_target(n)) for label, n in counts.items()],
        encoder=encoder,
        labels_note=[
            "REQUIRED: at least two labels. The descriptions were derived from the label names:",
            "rewrite them in plain words (the zero-shot model embeds instructions + description).",
            "protected: true -> a rise in the class's false-negative rate fails verdicts.",
        ],
    )
    parse_workflow(text, source="the generated starter")  # always valid
    return text


def blank_yaml(*, name: str = "my_workflow", encoder: str | None = None) -> str:
    """A blank ``tunegate.yaml`` template: two placeholder labels to replace, no slices,
    no escalate-classes, no rules, no data targets. Valid as it stands."""
    text = _render_starter(
        header=[
            "tunegate.yaml: a blank template (`tunegate init --blank`). Replace the two",
            "placeholder labels with yours, or start from data: `tunegate init --from FILE`.",
            "Every key is optional unless marked REQUIRED; unknown keys are errors.",
            "Next steps: docs/workflow.md.",
        ],
        name=name,
        instructions="A request about",
        labels=[
            ("first_label", "what the first class means, in plain words", "replace me"),
            ("second_label", "what the second class means, in plain words", "replace me"),
        ],
        targets=[],
        encoder=encoder,
        labels_note=[
            "REQUIRED: at least two labels. The zero-shot model embeds instructions + description.",
            "protected: true -> a rise in the class's false-negative rate fails verdicts.",
        ],
    )
    parse_workflow(text, source="the blank template")
    return text


def starter_from_file(
    path: str | Path,
    *,
    name: str | None = None,
    task: str = "A request",
    encoder: str | None = None,
    label_column: str | None = None,
    text_column: str | None = None,
    fmt: str | None = None,
) -> tuple[str, Any]:
    """``tunegate init --from``: read the labels of a data file (CSV, JSONL or Parquet;
    :func:`tunegate.io.read_label_counts`) and write a starter for them
    (:func:`starter_from_labels`). Returns ``(yaml text, LabelSummary)``; ``name`` defaults to
    the file's stem."""
    from tunegate.io import read_label_counts

    summary = read_label_counts(path, label_column=label_column, text_column=text_column, fmt=fmt)
    text = starter_from_labels(
        summary.counts,
        name=name or Path(path).stem,
        task=task,
        encoder=encoder,
        source=Path(path).name,
    )
    return text, summary
