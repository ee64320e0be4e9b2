"""The cheap fixes of a generative workflow, each tried as an :class:`~tunegate.records.Attempt`.

A cheap fix is a new ``generator`` version whose :class:`~tunegate.records.GeneratorConfig`
differs from the baseline's in one setting: retrieval (top-k, chunk size, metadata filters,
reranking, query rewriting), freshness, explicit abstention criteria, constrained output or
answer verification. :func:`try_generative_fix` registers it (lineage: parent = the
baseline), runs both versions on the frozen suite (reusing the baseline's stored run of that
suite), compares them with the generative verdict rules and stores the Attempt: promoted and
rolled back like new weights, and the gate's evidence (:mod:`._generative_gate`).

:data:`CHEAP_FIXES` is the catalogue the CLI offers by name.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from pydantic import ValidationError

from tunegate.config import RetrievalSettings, Workflow
from tunegate.errors import InputError
from tunegate.records import (
    Attempt,
    AttemptKind,
    GenerativeRun,
    GenerativeSuite,
    GeneratorConfig,
    ModelKind,
    ModelVersion,
)

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "CHEAP_FIXES",
    "FIXES_FOR_ACTION",
    "CheapFix",
    "apply_change",
    "change_kind",
    "latest_generative_run",
    "try_generative_fix",
    "try_style_stage",
]


class CheapFix(NamedTuple):
    """A named cheap fix: the attempt kind, the change to the generator config, and what it
    does in words."""

    kind: AttemptKind
    change: Mapping[str, Any]
    description: str


DEFAULT_ABSTENTION_CRITERIA = (
    "Answer only from the passages shown. If no passage states the answer, or the passages "
    "disagree, give the abstention wording instead of an answer. Do not answer from general "
    "knowledge."
)

CHEAP_FIXES: Mapping[str, CheapFix] = MappingProxyType(
    {
        "top_k_5": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"top_k": 5}},
            "retrieve 5 passages (fewer, more relevant passages to read)",
        ),
        "top_k_10": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"top_k": 10}},
            "retrieve 10 passages (more chances to include the gold document)",
        ),
        "chunk_size_40": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"chunk_size": 40, "chunk_overlap": 8}},
            "chunks of 40 words (overlap 8): passages closer to one fact each",
        ),
        "chunk_size_160": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"chunk_size": 160, "chunk_overlap": 32}},
            "chunks of 160 words (overlap 32): more context around each fact",
        ),
        "rerank_mmr": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"rerank": {"method": "mmr"}}},
            "rerank the fused candidates by maximal marginal relevance",
        ),
        "rewrite": CheapFix(
            AttemptKind.RETRIEVAL,
            {"retrieval": {"rewrite": {"lowercase": True, "remove_stopwords": True}}},
            "rewrite the query (lowercase, stopwords removed) before it is embedded",
        ),
        "freshness": CheapFix(
            AttemptKind.RETRIEVAL,
            {"freshness": True},
            "retrieve only the document versions in force when the question was asked",
        ),
        "abstention_criteria": CheapFix(
            AttemptKind.PROMPT,
            {"abstention_criteria": DEFAULT_ABSTENTION_CRITERIA},
            "state explicitly when to abstain",
        ),
        "constrained": CheapFix(
            AttemptKind.FORMAT,
            {"constrained": True},
            "constrained decoding: the output must follow the kind's JSON Schema",
        ),
        "verify": CheapFix(
            AttemptKind.VERIFICATION,
            {"verify": True},
            "check each answer against its cited passages; abstain on an unsupported claim",
        ),
    }
)
"""Cheap fixes by name. Metadata filters depend on the documents' fields, so they have no
entry: pass ``{"retrieval": {"filters": {...}}}`` to :func:`try_generative_fix`."""

FIXES_FOR_ACTION: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "retrieval": ("freshness", "top_k_5", "chunk_size_40", "rerank_mmr", "rewrite"),
        "rules": ("verify", "abstention_criteria"),
        "constrained_output": ("constrained",),
        "tool_schemas": ("constrained",),
    }
)
"""Recommendation action -> the :data:`CHEAP_FIXES` to try for it, in order."""

_FIELD_KIND: Mapping[str, AttemptKind] = MappingProxyType(
    {
        "retrieval": AttemptKind.RETRIEVAL,
        "freshness": AttemptKind.RETRIEVAL,
        "abstention_criteria": AttemptKind.PROMPT,
        "system_prompt": AttemptKind.PROMPT,
        "constrained": AttemptKind.FORMAT,
        "verify": AttemptKind.VERIFICATION,
        "max_tokens": AttemptKind.PROMPT,
        "temperature": AttemptKind.PROMPT,
    }
)
_NOT_CHEAP = ("model", "adapter", "stage", "parent")


def change_kind(change: Mapping[str, Any]) -> AttemptKind:
    """The attempt kind of a change: retrieval and freshness -> ``retrieval``; abstention
    criteria, the system prompt and decoding settings -> ``prompt``; ``constrained`` ->
    ``format``; ``verify`` -> ``verification``. A change of several kinds is refused (one
    fix, one attempt)."""
    _check_keys(change)
    kinds = {_FIELD_KIND[k] for k in change}
    if len(kinds) != 1:
        raise InputError(
            f"the change {sorted(change)} mixes attempt kinds "
            f"{sorted(k.value for k in kinds)}; try one fix at a time"
        )
    return kinds.pop()


def _check_keys(change: Mapping[str, Any]) -> None:
    if not isinstance(change, Mapping) or not change:
        raise InputError(
            "a cheap fix needs a change: a mapping of GeneratorConfig fields, e.g. "
            '{"retrieval": {"top_k": 5}}'
        )
    for key in change:
        if key in _NOT_CHEAP:
            raise InputError(
                f"change key {key!r} changes the model, not a cheap setting; a cheap fix "
                f"changes one of {sorted(_FIELD_KIND)}"
            )
        if key not in _FIELD_KIND:
            raise InputError(f"unknown change key {key!r}; allowed: {sorted(_FIELD_KIND)}")


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _errors(exc: ValidationError, prefix: str) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join([prefix, *(str(p) for p in e["loc"])]).strip(".")
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


def apply_change(
    config: GeneratorConfig, change: Mapping[str, Any], workflow: Workflow
) -> GeneratorConfig:
    """``config`` with ``change`` applied: ``retrieval`` overrides are merged key by key
    (nested mappings such as ``rerank`` too) and checked against the workflow's retrieval
    settings; the other keys replace the field. A change that leaves the config as it was is
    refused."""
    _check_keys(change)
    if workflow.kind == "tool_call" and ({"retrieval", "freshness"} & set(change)):
        raise InputError(
            "retrieval and freshness apply to answer workflows; a tool_call workflow "
            "retrieves nothing"
        )
    data = config.model_dump(mode="json")
    for key, value in change.items():
        if key == "retrieval":
            if not isinstance(value, Mapping):
                raise InputError(f"change 'retrieval' must be a mapping, got {value!r}")
            data["retrieval"] = _merge(data.get("retrieval") or {}, value)
            try:
                RetrievalSettings.model_validate(
                    _merge(workflow.retrieval.model_dump(mode="json"), data["retrieval"])
                )
            except ValidationError as exc:
                raise InputError(f"change: {_errors(exc, 'retrieval')}") from None
        else:
            data[key] = copy.deepcopy(value)
    try:
        new = GeneratorConfig.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"change: {_errors(exc, '')}") from None
    if new == config:
        raise InputError(
            f"the change {dict(change)} leaves the generator config as it is; nothing to try"
        )
    return new


def latest_generative_run(
    store: Store, model_version: str, suite_hash: str
) -> GenerativeRun | None:
    """The newest stored run of ``model_version`` on the suite ``suite_hash``, if any."""
    from tunegate.documents import GenerativeRunDocument

    runs = [
        doc.run
        for _, doc in store.documents(GenerativeRunDocument).items()
        if doc.run.model_version == model_version and doc.run.suite_hash == suite_hash
    ]
    return max(runs, key=lambda r: (r.created_at, r.id)) if runs else None


def _generator_version(store: Store, version: ModelVersion | str) -> ModelVersion:
    mv = store.get_model_version(version) if isinstance(version, str) else version
    if mv.kind is not ModelKind.GENERATOR:
        raise InputError(
            f"version {mv.id} is a {mv.kind.value} model; a generative cheap fix changes a "
            "generator version"
        )
    return mv


def _fixed(base: GenerativeRun, cand: GenerativeRun) -> dict[str, Any]:
    from tunegate.diagnose._generative import is_failure

    before = {s.example_id: is_failure(s) for s in base.scores}
    after = {s.example_id: is_failure(s) for s in cand.scores}
    if set(before) != set(after):
        raise InputError(
            f"runs {base.id} and {cand.id} cover different examples; run both on one suite"
        )
    failed = sum(before.values())
    fixed = sum(1 for k, v in before.items() if v and not after[k])
    return {
        "failed_before": failed,
        "failed_after": sum(after.values()),
        "fixed": fixed,
        "broken": sum(1 for k, v in before.items() if not v and after[k]),
        "fixed_share": (fixed / failed) if failed else None,
    }


GeneratorFactory = Callable[[Workflow, ModelVersion, "Store"], Any]


def _run_pair(
    store: Store,
    workflow: Workflow,
    suite: GenerativeSuite,
    base_mv: ModelVersion,
    cand_mv: ModelVersion,
    generator_factory: GeneratorFactory | None,
    checker: Any,
) -> tuple[str, GenerativeRun, GenerativeRun, bool]:
    """(suite hash, the baseline's run, the candidate's run, whether the baseline's newest
    stored run of the suite was reused): both versions on the same suite."""
    from tunegate.evaluate import run_generative_eval
    from tunegate.generative import build_generator

    factory = generator_factory or build_generator
    suite_hash = suite.hash or suite.frozen().hash
    base_run = latest_generative_run(store, base_mv.id, suite_hash)
    reused = base_run is not None
    if base_run is None:
        base_run = run_generative_eval(
            store, workflow, suite, factory(workflow, base_mv, store), checker=checker
        )
    cand_run = run_generative_eval(
        store, workflow, suite, factory(workflow, cand_mv, store), checker=checker
    )
    return suite_hash, base_run, cand_run, reused


def try_generative_fix(
    store: Store,
    workflow: Workflow,
    suite: GenerativeSuite,
    baseline_version: ModelVersion | str,
    change: Mapping[str, Any],
    *,
    kind: AttemptKind | str | None = None,
    description: str | None = None,
    generator_factory: GeneratorFactory | None = None,
    checker: Any = None,
    actor: str = "tunegate",
) -> Attempt:
    """Try one cheap fix against a generator version and store the Attempt.

    The candidate's config is the baseline's with ``change`` applied (:func:`apply_change`),
    registered with :func:`tunegate.generative.register_generator` (parent: the baseline).
    Both versions run on ``suite`` (:func:`tunegate.evaluate.run_generative_eval`; the
    baseline's newest stored run of this suite is reused) and are compared with
    :func:`tunegate.evaluate.compare_generative`. ``generator_factory(workflow, version,
    store)`` builds a generator (default :func:`tunegate.generative.build_generator`);
    ``kind`` defaults to :func:`change_kind`, ``description`` to the change.

    Details: ``change``, ``config`` (the candidate's), ``suite``, ``suite_hash``,
    ``baseline_run``, ``candidate_run``, ``baseline_run_reused``, ``metrics_before`` /
    ``metrics_after`` (overall), ``slices_before`` / ``slices_after``, and the failures
    before and after: ``failed_before``, ``failed_after``, ``fixed`` (failed before, pass
    now), ``broken`` and ``fixed_share`` (fixed / failed before), which the gate's
    condition (4) reads.
    """
    from tunegate.evaluate import compare_generative
    from tunegate.generative import register_generator

    workflow.require_kind("a generative cheap fix", "answer", "tool_call")
    if suite.kind != workflow.kind:
        raise InputError(
            f"suite {suite.name!r} is a {suite.kind} suite; the workflow is {workflow.kind}"
        )
    attempt_kind = change_kind(change) if kind is None else AttemptKind(kind)
    if attempt_kind is AttemptKind.FINETUNE:
        raise InputError("a fine-tune is not a cheap fix; use the fine-tuning commands")
    base_mv = _generator_version(store, baseline_version)
    base_cfg = GeneratorConfig.model_validate(base_mv.config)
    cand_cfg = apply_change(base_cfg, change, workflow)
    cand_mv = register_generator(store, workflow, cand_cfg, parent=base_mv.id)
    suite_hash, base_run, cand_run, reused = _run_pair(
        store, workflow, suite, base_mv, cand_mv, generator_factory, checker
    )
    verdict = compare_generative(base_run, cand_run, rules=workflow.generative_rules)
    fix = _fixed(base_run, cand_run)
    text = description or ", ".join(f"{k}={v}" for k, v in change.items())
    attempt = Attempt(
        kind=attempt_kind,
        description=f"{attempt_kind.value}: {text}"[:300],
        baseline_version=base_mv.id,
        candidate_version=cand_mv.id,
        verdict=verdict,
        details={
            **fix,
            "change": copy.deepcopy(dict(change)),
            "config": cand_cfg.model_dump(mode="json"),
            "suite": suite.name,
            "suite_hash": suite_hash,
            "baseline_run": base_run.id,
            "candidate_run": cand_run.id,
            "baseline_run_reused": reused,
            "metrics_before": base_run.metrics.get("overall", {}),
            "metrics_after": cand_run.metrics.get("overall", {}),
            "slices_before": base_run.metrics.get("slices", {}),
            "slices_after": cand_run.metrics.get("slices", {}),
        },
    )
    store.save_attempt(attempt)
    store.audit(
        f"try.{attempt_kind.value}",
        actor,
        {
            "attempt": attempt.id,
            "candidate": cand_mv.id,
            "verdict": verdict.outcome.value,
            "fixed_share": fix["fixed_share"],
        },
    )
    return attempt


def try_style_stage(
    store: Store,
    workflow: Workflow,
    suite: GenerativeSuite,
    task_version: ModelVersion | str,
    instructions: str,
    *,
    model: str | None = None,
    house_examples: Sequence[str] = (),
    generator_factory: GeneratorFactory | None = None,
    checker: Any = None,
    encoder: Any = None,
    actor: str = "tunegate",
) -> Attempt:
    """Register a ``style`` version rewriting ``task_version``'s answers by ``instructions``
    (tone only: citations, abstentions and tool calls pass through unchanged) and judge it
    against the task version on ``suite`` with the same rules as any candidate, so a rewrite
    that drops a fact or a citation fails like a worse model. Stored as an Attempt of kind
    ``style``; with ``house_examples`` (texts in the house voice) its details also give the
    style similarity of both versions' answers (:func:`tunegate.generative.style_similarity`).
    """
    from tunegate.evaluate import compare_generative
    from tunegate.generative import register_generator, style_similarity

    workflow.require_kind("a style stage", "answer")
    if not instructions.strip():
        raise InputError("the style instructions are empty; describe the house style in words")
    task_mv = _generator_version(store, task_version)
    task_cfg = GeneratorConfig.model_validate(task_mv.config)
    if task_cfg.stage == "style":
        raise InputError(
            f"{task_mv.id} is itself a style stage; put the new style on its task version "
            f"{task_cfg.parent}"
        )
    style_cfg = GeneratorConfig(
        model=model or task_cfg.model,
        stage="style",
        parent=task_mv.id,
        system_prompt=instructions,
        max_tokens=max(task_cfg.max_tokens, 256),
    )
    style_mv = register_generator(store, workflow, style_cfg, parent=task_mv.id)
    suite_hash, base_run, cand_run, reused = _run_pair(
        store, workflow, suite, task_mv, style_mv, generator_factory, checker
    )
    verdict = compare_generative(base_run, cand_run, rules=workflow.generative_rules)
    details: dict[str, Any] = {
        **_fixed(base_run, cand_run),
        "instructions": instructions,
        "config": style_cfg.model_dump(mode="json"),
        "suite": suite.name,
        "suite_hash": suite_hash,
        "baseline_run": base_run.id,
        "candidate_run": cand_run.id,
        "baseline_run_reused": reused,
        "metrics_before": base_run.metrics.get("overall", {}),
        "metrics_after": cand_run.metrics.get("overall", {}),
        "rewrites_refused": sum(
            1 for o in cand_run.outputs if o.metadata.get("style_error") is not None
        ),
    }
    if house_examples:

        def answers(run: GenerativeRun) -> list[str]:
            return [o.answer for o in run.outputs if o.answer and not o.abstained]

        before, after = answers(base_run), answers(cand_run)
        details["style_similarity_before"] = (
            style_similarity(before, house_examples, encoder) if before else None
        )
        details["style_similarity_after"] = (
            style_similarity(after, house_examples, encoder) if after else None
        )
    attempt = Attempt(
        kind=AttemptKind.STYLE,
        description=f"style: {instructions}"[:300],
        baseline_version=task_mv.id,
        candidate_version=style_mv.id,
        verdict=verdict,
        details=details,
    )
    store.save_attempt(attempt)
    store.audit(
        "try.style",
        actor,
        {"attempt": attempt.id, "candidate": style_mv.id, "verdict": verdict.outcome.value},
    )
    return attempt
