"""Store documents: one pydantic record per document kind, each declaring its kind once.

A document is a JSON value kept in the store under ``(kind, key)`` (the ``documents`` table).
Each kind is a :class:`Document` subclass with a ``KIND`` class constant; the registry refuses a
second class with the same kind, so a reader and a writer cannot disagree on a kind string.
Access is typed through the store::

    store.documents(Finding).put(finding.id, finding)
    store.documents(Finding).get(finding_id)      # -> Finding | None
    store.documents(Finding).items()              # -> [(key, Finding), ...] ordered by key
    store.documents(Finding).delete(finding_id)   # -> bool

The JSON shapes are those stored before the documents were typed; unknown keys of old
payloads are ignored on read (:class:`Simulation` keeps them: it stores a free-form config).
This module depends only on :mod:`tunegate.records`, so every part of tunegate can import it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from tunegate.records import (
    Example,
    GenerativeExample,
    GenerativeLogEntry,
    GenerativeRun,
    GenerativeSuite,
    content_hash,
)

__all__ = [
    "DOCUMENT_TYPES",
    "ApiToken",
    "ClassifyReceipt",
    "DatasetManifest",
    "Document",
    "Finding",
    "FindingTerm",
    "GenerativeExampleDocument",
    "GenerativeLogDocument",
    "GenerativeRunDocument",
    "GenerativeSuiteDocument",
    "LabelIssues",
    "MlflowRun",
    "MonitorReference",
    "PerturbedExample",
    "RobustnessSlice",
    "Simulation",
    "TriageLabel",
    "WebSession",
    "document_type",
]

_REGISTRY: dict[str, type[Document]] = {}

DOCUMENT_TYPES: Mapping[str, type[Document]] = _REGISTRY
"""Kind -> document class, for every declared kind (read-only view of the registry)."""


class Document(BaseModel):
    """Base of every store document; a subclass sets ``KIND`` to register its kind."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    KIND: ClassVar[str]
    """The ``kind`` column the documents of this class are stored under (unique)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        kind = cls.__dict__.get("KIND")
        if kind is None:
            return
        if not isinstance(kind, str) or not kind or len(kind) > 100:
            raise ValueError(f"{cls.__name__}.KIND must be a non-empty string of <= 100 chars")
        other = _REGISTRY.get(kind)
        if other is not None:
            raise ValueError(
                f"document kind {kind!r} is already declared by "
                f"{other.__module__}.{other.__qualname__}; {cls.__qualname__} needs its own kind"
            )
        _REGISTRY[kind] = cls


def document_type(kind: str) -> type[Document]:
    """The document class of ``kind``; :class:`KeyError` naming the known kinds when absent."""
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no document kind {kind!r}; known kinds: {sorted(_REGISTRY)}") from None


class FindingTerm(BaseModel):
    """A term (word, phrase, or a pair of terms found in the same ticket) distinctive of the
    missed overrides (``tunegate.diagnose.TermWeight`` is this class).

    Occlusion/IG findings (``Finding.kind == "attribution"``) fill the attribution fields;
    contrastive findings (``"contrast"``) fill the counts, the log-odds ratio, ``p_value``,
    ``q_value``, ``parts`` and ``examples`` and leave the attribution fields at 0. Documents
    stored before the contrast fields existed still load (every new field has a default).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    term: str
    """The word or phrase; a pair reads ``"authenticator + locked out"``."""
    label: str
    """The analyst's class this term is evidence for."""
    z: float
    """Log-odds z of the term in overrides vs correctly handled tickets."""
    overrides_with: int
    """Overridden tickets containing the term (a pair: both of its parts)."""
    reference_with: int
    """Correctly handled (contrast) tickets containing the term."""
    attr_analyst: float = 0.0
    """Mean normalized attribution toward the analyst's class, in the overrides."""
    attr_predicted: float = 0.0
    """Mean normalized attribution toward the model's (wrong) class, in the overrides."""
    margin: float = 0.0
    """attr_analyst - attr_predicted."""
    cue: str = ""
    """``weak`` or ``misleading`` (attribution findings); ``""`` for contrastive ones."""
    kind: str = "word"
    """``word``, ``phrase`` (an n-gram), ``slice`` (a workflow's named slice, term
    ``"[name]"``) or ``pair`` (two terms co-occurring in a ticket)."""
    parts: list[str] = Field(default_factory=list)
    """A pair's two terms (empty otherwise)."""
    log_odds: float | None = None
    """Smoothed log odds ratio, overridden vs contrast tickets (contrastive findings)."""
    p_value: float | None = None
    """One-sided Fisher exact p-value that the term is more frequent in the overrides."""
    q_value: float | None = None
    """Benjamini-Hochberg q-value over every term and pair tested for the finding."""
    excess: float | None = None
    """Overridden tickets the term accounts for beyond the contrast rate:
    ``overrides_with - n_overrides * reference_with / n_reference`` (contrastive findings,
    ranked by it)."""
    examples: list[str] = Field(default_factory=list)
    """Ids of a few overridden tickets containing the term."""


class Finding(Document):
    """A finding: what distinguishes one class's missed overrides.

    ``kind="contrast"`` (:func:`tunegate.diagnose.contrast_overrides`): terms and term pairs
    over-represented in tickets the model labelled ``predicted_label`` and analysts moved to
    ``label`` against tickets of the same predicted class handled correctly.
    ``kind="attribution"`` (:func:`tunegate.diagnose.attribute_overrides`): words the model
    under-weights by occlusion / integrated gradients. Key: ``id``; confirmed by a
    person with :func:`tunegate.diagnose.confirm_finding` (the gate's condition 2), and read by
    the monitor's next gap.
    """

    KIND: ClassVar[str] = "finding"

    id: str
    kind: str = "attribution"
    """What produced the finding (``attribution`` or ``contrast``)."""
    reason_code: str
    """The reason code of the overrides attributed (e.g. ``R2``)."""
    label: str
    """The analyst's class the terms are evidence for."""
    model_labels: dict[str, int] = Field(default_factory=dict)
    """Model label -> number of the attributed overrides the model gave it."""
    tokens: list[FindingTerm] = Field(default_factory=list)
    reference_level: float = 0.0
    """Mean attribution of a word toward its class on correctly handled tickets."""
    method: str = "ig"
    n_steps: int = 0
    n_overrides: int = 0
    n_reference: int = 0
    n_reference_counted: int = 0
    confirmed: bool = False
    confirmed_by: str | None = None
    created_at: str = ""
    """ISO 8601 UTC timestamp."""
    confirmed_at: str | None = None
    note: str = ""
    predicted_label: str | None = None
    """The model's class of the contrasted tickets (contrastive findings)."""
    examples: list[dict[str, str]] = Field(default_factory=list)
    """A few overridden tickets (``ticket_id``, ``text``) showing the top terms."""
    min_support: int = 0
    """Fewest overridden tickets a term needed to be tested (contrastive findings)."""
    alpha: float = 0.0
    """False discovery rate a term's q-value had to meet (contrastive findings)."""


class TriageLabel(Document):
    """A person's category for one failure (key: the failure id, i.e. the override id)."""

    KIND: ClassVar[str] = "triage"

    category: str
    suggested_category: str | None = None
    rule: str | None = None
    """The suggestion rule that proposed ``suggested_category``."""
    confirmed: bool = True
    reviewer: str = "unknown"
    confirmed_at: str = ""
    """ISO 8601 UTC timestamp."""
    note: str = ""
    source: str | None = None
    reason_code: str | None = None
    model_label: str | None = None
    final_label: str | None = None


class DatasetManifest(Document):
    """A built training dataset with its reports (key: the dataset hash)."""

    KIND: ClassVar[str] = "dataset"

    hash: str
    manifest: dict[str, Any] = Field(default_factory=dict)
    """Counts per class, per slice and per source; parameters used."""
    target_report: list[dict[str, Any]] = Field(default_factory=list)
    leakage_report: dict[str, Any] = Field(default_factory=dict)
    dedup_report: dict[str, Any] = Field(default_factory=dict)
    example_ids: list[str] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)


class LabelIssues(Document):
    """The label-quality summary of a dataset (key: the dataset hash)."""

    KIND: ClassVar[str] = "label_issues"

    n_examples: int
    n_flagged: int
    flagged_share: float
    oof_accuracy: float
    """Out-of-fold accuracy of the probe the issues were found with."""
    n_folds: int
    flagged_per_given_label: dict[str, int] = Field(default_factory=dict)
    issues: list[dict[str, Any]] = Field(default_factory=list)
    """One entry per flagged example (``LabelIssue.to_dict()``)."""


class MonitorReference(Document):
    """The texts a model version was built from: its drift reference (key: the version id)."""

    KIND: ClassVar[str] = "monitor_reference"

    texts: list[str]


class ApiToken(Document):
    """An API token's public record (key: SHA-256 hex of the token; the token is not stored)."""

    KIND: ClassVar[str] = "token"

    id: str
    name: str
    role: str
    """``analyst`` or ``admin``."""
    created_at: str
    """ISO 8601 UTC timestamp."""
    revoked: bool = False
    revoked_at: str | None = None


class WebSession(Document):
    """A logged-in page session. Key: ``<expiry, 12-digit unix time>:<SHA-256 hex of the
    session id>`` (the id itself lives only in the signed cookie; keys sort by expiry, so
    expired sessions are purged by one bounded range query). Logout deletes it, revoking its
    token deletes it, and it is refused after ``expires_at`` whatever the cookie says."""

    KIND: ClassVar[str] = "web_session"

    token_hash: str
    """The key of the :class:`ApiToken` the session was opened with."""
    token_id: str
    created_at: str
    """ISO 8601 UTC timestamp."""
    expires_at: float
    """Unix time after which the session is refused (and deleted)."""


class ClassifyReceipt(Document):
    """What a ``POST /v1/classify`` with an ``Idempotency-Key`` wrote (key: SHA-256 hex of the
    caller's token id and the key, so keys are scoped per token). A retry with the same key
    and request returns these decisions instead of classifying again."""

    KIND: ClassVar[str] = "classify_receipt"

    request_hash: str
    """SHA-256 of the request's tickets as sent (text, id, created_at, metadata)."""
    created_at: str
    """ISO 8601 UTC timestamp: also the ``created_at`` of tickets that came without one."""
    ticket_ids: list[str]
    decision_ids: list[str]
    """In request order; derived from the key, so a half-finished request completes the same
    decisions on retry."""


class MlflowRun(Document):
    """Where a model version's training was logged in MLflow (key: the model version id)."""

    KIND: ClassVar[str] = "mlflow_run"

    tracking_uri: str
    experiment: str
    run_id: str
    registered_model: str | None = None
    registered_version: str | None = None
    aliases: list[str] = Field(default_factory=list)
    note: str = ""


class Simulation(Document):
    """A loaded simulation folder (key: the folder name): its ``sim_config.json`` keys (kept
    as they are), its summary, and where its evaluation examples and ground truth live."""

    KIND: ClassVar[str] = "simulation"
    model_config = ConfigDict(frozen=True, extra="allow")

    summary: dict[str, Any] | None = None
    eval_examples: str = ""
    ground_truth: str = ""


class GenerativeExampleDocument(Document):
    """An ``answer`` / ``tool_call`` example (key: the example id), written by ``tunegate
    ingest examples`` on a generative workflow; ``digest`` is its identity hash, so ingesting
    the same file again adds nothing and a changed row under the same id is refused."""

    KIND: ClassVar[str] = "generative_example"

    example: GenerativeExample
    digest: str


class GenerativeSuiteDocument(Document):
    """A frozen generative suite (key: its hash), written by ``tunegate suite freeze`` on a
    generative workflow; immutable like the ``suites`` table's classification suites."""

    KIND: ClassVar[str] = "generative_suite"

    suite: GenerativeSuite


class GenerativeRunDocument(Document):
    """A generative suite run (key: the run id): every output, its score and the metrics,
    written by :func:`tunegate.evaluate.run_generative_eval`."""

    KIND: ClassVar[str] = "generative_run"

    run: GenerativeRun


class GenerativeLogDocument(Document):
    """A production output of an ``answer`` / ``tool_call`` workflow (key: the output id),
    written by ``tunegate ingest outputs``; ``digest`` is its identity hash, so ingesting the
    same log again adds nothing and a changed row under the same id is refused."""

    KIND: ClassVar[str] = "generative_log"

    entry: GenerativeLogEntry
    digest: str


class PerturbedExample(BaseModel):
    """One example of a robustness slice: a suite example's text after one perturbation
    (:mod:`tunegate.evaluate._robustness` documents every generator)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    """``<source_id>~<perturbation>``: unique within the slice."""
    source_id: str
    """The suite example it was made from (its clean prediction is in the same EvalRun)."""
    perturbation: str
    """The generator's registered name (``typos``, ``keyword_stuffing``, ...)."""
    kind: str
    """``invariance`` (label-preserving: judged by the flip rate) or ``attack`` (targeted:
    judged by the attack success rate toward ``target``)."""
    text: str
    label: str
    """The true label: the source example's (a perturbation never changes it)."""
    target: str | None = None
    """``attack`` perturbations: the label the perturbation pushes toward."""
    detail: str = ""
    """What was changed (the stuffed term, the injected instruction, the edit count)."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """The source example's metadata (a classifier that reads metadata sees the same)."""


class RobustnessSlice(Document):
    """A frozen robustness slice of a classification suite (key: its hash): perturbed copies
    of the suite's core examples, made deterministically from ``seed``, written by
    ``tunegate suite freeze --robustness``. Its hash covers the parent suite's hash, the
    seed, the perturbation names and every example, and is checked on load."""

    KIND: ClassVar[str] = "robustness_slice"

    suite_name: str
    suite_hash: str
    """The hash of the suite whose core examples were perturbed."""
    seed: int
    perturbations: list[str]
    """The generators applied, in order."""
    stuffing_terms: dict[str, list[str]] = Field(default_factory=dict)
    """Label -> the terms keyword stuffing inserted toward it (from confirmed findings)."""
    examples: list[PerturbedExample]
    created_at: str = ""
    """ISO 8601 UTC timestamp (not hashed)."""
    hash: str = ""

    def compute_hash(self) -> str:
        """SHA-256 over the parent suite, the seed, the generators, the stuffing terms and
        every example (sorted by id)."""
        return content_hash(
            "robustness_slice",
            self.suite_hash,
            self.seed,
            self.perturbations,
            {k: list(v) for k, v in sorted(self.stuffing_terms.items())},
            [e.model_dump() for e in sorted(self.examples, key=lambda e: e.id)],
        )

    def frozen(self) -> RobustnessSlice:
        """This slice with its hash filled in."""
        return self.model_copy(update={"hash": self.compute_hash()})

    @model_validator(mode="after")
    def _hash_ok(self) -> RobustnessSlice:
        if self.hash and self.hash != self.compute_hash():
            raise ValueError(
                f"robustness slice of suite {self.suite_name!r} was modified after it was "
                f"frozen (stored hash {self.hash[:12]}); freeze a new slice instead"
            )
        return self
