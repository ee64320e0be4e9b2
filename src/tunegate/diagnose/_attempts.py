"""The cheap fixes, tried before any fine-tune: instructions, rules, retrieval, and for a
prompted LLM a new system prompt (:func:`try_prompt`, whose candidate is registered as a
``prompt`` model version so it can be promoted and rolled back like weights).

Each ``try_*`` builds a candidate from the champion plus one change, evaluates both on the
frozen suite (:func:`tunegate.evaluate.run_eval` / :func:`~tunegate.evaluate.compare`) **and**
on recent missed-signal overrides, and stores an :class:`~tunegate.records.Attempt` with the
Verdict and these details:

``missed_signal_total``
    ``gate.reason_code`` corrections in the last ``weeks`` weeks (their tickets are scored).
``baseline_right`` / ``candidate_right``
    How many of those tickets the champion / the candidate now label with the analyst's label.
``fixed``, ``fixed_share``
    Tickets the champion gets wrong and the candidate gets right, over the tickets the champion
    gets wrong: "the share of missed-signal overrides the change fixes". The gate's condition
    (4) compares ``fixed_share`` with ``gate.instruction_fix_success``.
``latency``
    Both models timed side by side in one sitting
    (:func:`tunegate.evaluate.measure_latency_on_suite`): what the verdict's latency rule
    judged (``measure_latency=False`` skips it, and the verdict does not judge latency).

A fine-tune is then held to the best of these attempts (:mod:`tunegate.diagnose._promotion`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from tunegate.config import RuleSpec, Workflow
from tunegate.errors import InputError
from tunegate.records import (
    Attempt,
    AttemptKind,
    EvalSuite,
    ModelKind,
    ModelVersion,
    Override,
    ReviewStatus,
    normalize_text,
)

if TYPE_CHECKING:
    from tunegate.execute import Executor
    from tunegate.store import Store

__all__ = [
    "CHEAP_FIX_KINDS",
    "RulesFirstClassifier",
    "champion_classifier",
    "missed_signal_fix",
    "parse_rules",
    "recent_missed_signal_overrides",
    "try_instructions",
    "try_prompt",
    "try_retrieval",
    "try_rules",
]

CHEAP_FIX_KINDS = (
    AttemptKind.INSTRUCTIONS,
    AttemptKind.RULES,
    AttemptKind.RETRIEVAL,
    AttemptKind.PROMPT,
)
"""The attempt kinds that are cheap fixes (everything but a fine-tune)."""


class RulesFirstClassifier:
    """Rules decide where they fire; the wrapped model decides elsewhere (the serving order)."""

    def __init__(self, rules: Any, model: Any) -> None:
        if list(rules.labels) != list(model.labels):
            raise InputError(f"rules labels {rules.labels} differ from model labels {model.labels}")
        self.rules = rules
        self.model = model
        self.labels = list(model.labels)
        self.kind = ModelKind.ROUTER

    @property
    def version(self) -> str:
        return f"{self.rules.version}+{self.model.version}"

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        """(n, k): rule rows where a rule fires, model rows elsewhere."""
        hits = self.rules.hits(texts)
        out = np.asarray(self.model.predict_proba(texts, metadata), dtype=float).copy()
        ruled = self.rules.proba_for_hits(hits)
        for i, h in enumerate(hits):
            if h is not None:
                out[i] = ruled[i]
        return out


def champion_classifier(workflow: Workflow, store: Store) -> tuple[Any, str | None]:
    """(classifier, registered champion id or None) for the store's champion.

    A zero-shot champion is rebuilt from its recorded config (instructions, temperature), a
    LoRA champion is loaded from its artifact, a prompt champion runs its stored prompt on its
    backend; with no champion registered, the workflow's zero-shot model is the champion.
    """
    from tunegate.models import ZeroShotClassifier, load_model_version

    champ_id = store.get_alias("champion") if hasattr(store, "get_alias") else None
    if champ_id:
        mv = store.get_model_version(champ_id)
        if mv.kind not in (ModelKind.LORA, ModelKind.ZERO_SHOT, ModelKind.PROMPT):
            raise InputError(
                f"champion {champ_id} is a {mv.kind.value} model; pass champion= "
                f"(a classifier) to try a fix against it"
            )
        clf = load_model_version(mv, workflow, store=store)
        if mv.kind is ModelKind.LORA:
            from tunegate.execute import ModelRecipe, attach_recipe

            # Ray workers rebuild the champion from its artifact (tunegate.execute)
            attach_recipe(clf, ModelRecipe(load_model_version, (mv, workflow)))
        return clf, champ_id
    return ZeroShotClassifier(workflow), None


def recent_missed_signal_overrides(
    overrides: Sequence[Override], *, reason_code: str, weeks: int, as_of: datetime | None = None
) -> list[Override]:
    """Corrections with ``reason_code`` in the ``weeks`` weeks before ``as_of`` (default: the
    newest override)."""
    picked = [o for o in overrides if o.is_correction and str(o.reason_code.value) == reason_code]
    if not picked:
        return []
    end = as_of or max(o.created_at for o in picked)
    start = end - timedelta(weeks=weeks)
    return [o for o in picked if start < o.created_at <= end]


def missed_signal_fix(
    baseline: Any, candidate: Any, texts: Sequence[str], final_labels: Sequence[str]
) -> dict[str, Any]:
    """How many of the overridden tickets each model now labels as the analyst did."""
    n = len(texts)
    if n == 0:
        return {
            "missed_signal_total": 0,
            "baseline_right": 0,
            "candidate_right": 0,
            "fixed": 0,
            "broken": 0,
            "fixed_share": None,
        }
    labels = list(baseline.labels)
    b = np.asarray(baseline.predict_proba(list(texts))).argmax(axis=1)
    c = np.asarray(candidate.predict_proba(list(texts))).argmax(axis=1)
    y = np.array([labels.index(f) if f in labels else -1 for f in final_labels])
    b_ok, c_ok = b == y, c == y
    wrong = int((~b_ok).sum())
    fixed = int((~b_ok & c_ok).sum())
    return {
        "missed_signal_total": n,
        "baseline_right": int(b_ok.sum()),
        "candidate_right": int(c_ok.sum()),
        "fixed": fixed,
        "broken": int((b_ok & ~c_ok).sum()),
        "fixed_share": (fixed / wrong) if wrong else None,
    }


def _evaluate_change(
    kind: AttemptKind,
    workflow: Workflow,
    store: Store,
    suite: EvalSuite,
    baseline: Any,
    candidate: Any,
    champ_id: str | None,
    *,
    weeks: int,
    as_of: datetime | None,
    description: str,
    extra: dict[str, Any],
    exclude_ticket_ids: set[str] | None = None,
    save: bool = True,
    measure_latency: bool = True,
    executor: Executor | None = None,
    candidate_id: str | None = None,
    before_save: Callable[[], None] | None = None,
) -> Attempt:
    """Evaluate ``candidate`` against ``baseline`` and build (and with ``save`` store) the
    Attempt. ``candidate_id`` records the candidate's run under a registered version id (as
    ``champ_id`` does for the baseline); ``before_save`` runs after the evaluation succeeded
    and before anything is stored (registering the candidate's version)."""
    from tunegate.evaluate import compare, measure_latency_on_suite, run_eval

    missed = recent_missed_signal_overrides(
        store.overrides(), reason_code=workflow.gate.reason_code, weeks=weeks, as_of=as_of
    )
    tickets = (
        {t.id: t for t in store.tickets(ids=sorted({o.ticket_id for o in missed}))}
        if missed
        else {}
    )
    rows = [(tickets[o.ticket_id].text, o.final_label) for o in missed if o.ticket_id in tickets]
    fix = missed_signal_fix(baseline, candidate, [r[0] for r in rows], [r[1] for r in rows])
    base_run = run_eval(baseline, suite, workflow, executor=executor)
    if champ_id is not None:
        base_run = base_run.model_copy(update={"model_version": champ_id})
    cand_run = run_eval(candidate, suite, workflow, executor=executor)
    if candidate_id is not None:
        cand_run = cand_run.model_copy(update={"model_version": candidate_id})
    latency = (
        measure_latency_on_suite(baseline, candidate, suite, workflow) if measure_latency else None
    )
    verdict = compare(base_run, cand_run, suite, workflow, latency=latency)
    attempt = Attempt(
        kind=kind,
        description=description,
        baseline_version=champ_id or base_run.model_version,
        candidate_version=cand_run.model_version,
        verdict=verdict,
        details={
            **fix,
            "weeks": weeks,
            "reason_code": workflow.gate.reason_code,
            "suite": suite.name,
            "suite_hash": suite.hash,
            "baseline_run": base_run.id,
            "candidate_run": cand_run.id,
            "latency": latency.to_dict() if latency is not None else None,
            **extra,
        },
    )
    if save:
        if before_save is not None:
            before_save()
        store.save_eval_run(base_run)
        store.save_eval_run(cand_run)
        store.save_attempt(attempt)
        store.audit(
            f"try.{kind.value}",
            "tunegate",
            {
                "attempt": attempt.id,
                "verdict": verdict.outcome.value,
                "fixed_share": fix["fixed_share"],
            },
        )
    return attempt


def try_instructions(
    workflow: Workflow,
    new_instructions: str,
    store: Store,
    suite: EvalSuite,
    *,
    champion: Any = None,
    weeks: int = 4,
    as_of: datetime | None = None,
    save: bool = True,
    measure_latency: bool = True,
    executor: Executor | None = None,
) -> Attempt:
    """Evaluate new zero-shot instructions against the champion; store the Attempt."""
    from tunegate.models import ZeroShotClassifier

    if not new_instructions.strip():
        raise InputError("new instructions are empty; pass the instruction text to try")
    baseline, champ_id = (
        (champion, None) if champion is not None else champion_classifier(workflow, store)
    )
    temperature = (
        getattr(baseline, "temperature", None)
        if getattr(baseline, "kind", None) == ModelKind.ZERO_SHOT
        else None
    )
    candidate = ZeroShotClassifier(workflow, instructions=new_instructions, temperature=temperature)
    return _evaluate_change(
        AttemptKind.INSTRUCTIONS,
        workflow,
        store,
        suite,
        baseline,
        candidate,
        champ_id,
        weeks=weeks,
        as_of=as_of,
        save=save,
        measure_latency=measure_latency,
        executor=executor,
        description=f"instructions: {new_instructions[:120]}",
        extra={
            "instructions": new_instructions,
            **({"temperature": temperature} if temperature is not None else {}),
        },
    )


def try_prompt(
    workflow: Workflow,
    template: str,
    store: Store,
    suite: EvalSuite,
    *,
    backend: str | None = None,
    source: str = "the prompt template",
    champion: Any = None,
    weeks: int = 4,
    as_of: datetime | None = None,
    save: bool = True,
    measure_latency: bool = True,
    executor: Executor | None = None,
    actor: str = "tunegate",
) -> Attempt:
    """Evaluate a new system prompt ``template`` for a prompted LLM against the champion; store
    the Attempt (kind ``prompt``) and register the prompt as a ``prompt`` model version
    (:func:`tunegate.models.prompt_version`, lineage: the version it changes) whose id is the
    Attempt's ``candidate_version``, so ``tunegate promote`` reads its Verdict.

    ``backend``: the backend that runs the prompt (default: the champion's when the champion
    is a prompt version, else ``llm``). The baseline is the registered champion; with none,
    the workflow's configured prompt (``llm.system_prompt``, else the built-in one) on the
    same backend, registered as a version but not promoted (promote it first to be able to
    roll back to it). ``source`` names the template in errors (the CLI passes the file).
    """
    from tunegate.llm import DEFAULT_SYSTEM_PROMPT
    from tunegate.models import load_model_version, prompt_version
    from tunegate.registry import Registry

    registry = Registry(store)
    champ_mv = None
    champ_id = None if champion is not None else registry.champion()
    if champ_id is not None:
        champ_mv = store.get_model_version(champ_id)
    if backend is None:
        backend = (
            str(champ_mv.config.get("backend", "llm"))
            if champ_mv is not None and champ_mv.kind is ModelKind.PROMPT
            else "llm"
        )
    configured = None
    if champion is not None:
        baseline = champion
    elif champ_mv is not None:
        baseline = load_model_version(champ_mv, workflow, store=store)
    else:
        configured = prompt_version(
            workflow,
            workflow.llm.system_prompt or DEFAULT_SYSTEM_PROMPT,
            backend=backend,
            source="llm.system_prompt in tunegate.yaml",
        )
        champ_id = configured.id
        baseline = load_model_version(configured, workflow, store=store)
    mv = prompt_version(workflow, template, backend=backend, parent=champ_id, source=source)
    if mv.id == champ_id:
        what = "the champion's" if configured is None else "the workflow's configured"
        raise InputError(
            f"{source} is {what} prompt on {backend} (version {mv.id}); change it and try again"
        )
    try:
        existing: ModelVersion | None = store.get_model_version(mv.id)
    except LookupError:
        existing = None
    candidate = load_model_version(existing or mv, workflow, store=store)

    def register() -> None:
        if configured is not None:
            try:
                store.get_model_version(configured.id)
            except LookupError:
                registry.register(configured, actor=actor, as_candidate=False)
        if existing is None:
            registry.register(mv, actor=actor)

    cfg = mv.config
    first_line = next((line.strip() for line in template.splitlines() if line.strip()), "")
    return _evaluate_change(
        AttemptKind.PROMPT,
        workflow,
        store,
        suite,
        baseline,
        candidate,
        champ_id,
        weeks=weeks,
        as_of=as_of,
        save=save,
        measure_latency=measure_latency,
        executor=executor,
        candidate_id=mv.id,
        before_save=register,
        description=f"prompt {mv.id} ({backend}, {cfg['model']}): {first_line[:100]}",
        extra={
            "prompt_version": mv.id,
            "backend": backend,
            "model": cfg["model"],
            "prompt_hash": cfg["prompt_hash"],
            "template": template,
            "source": source,
            "baseline_is_configured_prompt": configured is not None,
        },
    )


def parse_rules(rules_yaml: str | Sequence[RuleSpec] | Sequence[dict[str, Any]]) -> list[RuleSpec]:
    """Rules from YAML text (a list, or a mapping with a ``rules`` list) or from specs/dicts."""
    if isinstance(rules_yaml, str):
        try:
            data = yaml.safe_load(rules_yaml)
        except yaml.YAMLError as exc:
            raise InputError(f"rules are not valid YAML: {exc}") from exc
        if isinstance(data, dict):
            data = data.get("rules")
        if not isinstance(data, list) or not data:
            raise InputError(
                "expected a YAML list of rules (name, label, all_of/any_of), "
                "or a mapping with a `rules:` list"
            )
        items: Sequence[Any] = data
    else:
        items = rules_yaml
    out = []
    for i, item in enumerate(items):
        if isinstance(item, RuleSpec):
            out.append(item)
            continue
        try:
            out.append(RuleSpec.model_validate(item))
        except Exception as exc:
            raise InputError(f"rule #{i + 1}: {exc}") from exc
    return out


def try_rules(
    workflow: Workflow,
    rules_yaml: str | Sequence[RuleSpec] | Sequence[dict[str, Any]],
    store: Store,
    suite: EvalSuite,
    *,
    champion: Any = None,
    weeks: int = 4,
    as_of: datetime | None = None,
    save: bool = True,
    measure_latency: bool = True,
    executor: Executor | None = None,
) -> Attempt:
    """Evaluate rules applied before the champion (rules decide where they fire)."""
    from tunegate.models import RulesClassifier

    rules = parse_rules(rules_yaml)
    for r in rules:
        if r.label not in workflow.labels:
            raise InputError(
                f"rule {r.name!r} assigns unknown label {r.label!r}; "
                f"allowed: {workflow.label_names}"
            )
    baseline, champ_id = (
        (champion, None) if champion is not None else champion_classifier(workflow, store)
    )
    candidate = RulesFirstClassifier(RulesClassifier(rules, baseline.labels), baseline)
    return _evaluate_change(
        AttemptKind.RULES,
        workflow,
        store,
        suite,
        baseline,
        candidate,
        champ_id,
        weeks=weeks,
        as_of=as_of,
        save=save,
        measure_latency=measure_latency,
        executor=executor,
        description=f"rules: {', '.join(r.name for r in rules)}",
        extra={"rules": [r.model_dump(mode="json", by_alias=True) for r in rules]},
    )


def try_retrieval(
    workflow: Workflow,
    store: Store,
    suite: EvalSuite,
    *,
    champion: Any = None,
    k: int = 10,
    weeks: int = 4,
    as_of: datetime | None = None,
    save: bool = True,
    measure_latency: bool = True,
    executor: Executor | None = None,
) -> Attempt:
    """Evaluate a kNN retriever over reviewed examples against the champion.

    Examples that are the measured overrides' tickets (same ticket id or same normalized text)
    or that overlap the suite are left out, so the retriever cannot score by memorizing the
    very tickets it is judged on.
    """
    from tunegate.models import KNNClassifier

    baseline, champ_id = (
        (champion, None) if champion is not None else champion_classifier(workflow, store)
    )
    missed = recent_missed_signal_overrides(
        store.overrides(), reason_code=workflow.gate.reason_code, weeks=weeks, as_of=as_of
    )
    ticket_ids = {o.ticket_id for o in missed}
    texts = (
        {normalize_text(t.text) for t in store.tickets(ids=sorted(ticket_ids))}
        if ticket_ids
        else set()
    )
    texts |= {normalize_text(e.text) for e in suite.examples}
    examples = [
        e
        for e in store.examples(review_status=ReviewStatus.REVIEWED)
        if e.ticket_id not in ticket_ids and normalize_text(e.text) not in texts
    ]
    if not examples:
        raise InputError(
            "no reviewed examples left for retrieval after removing the suite and "
            "the measured overrides; review examples first (`tunegate review`)"
        )
    candidate = KNNClassifier(workflow, examples, k=k)
    return _evaluate_change(
        AttemptKind.RETRIEVAL,
        workflow,
        store,
        suite,
        baseline,
        candidate,
        champ_id,
        weeks=weeks,
        as_of=as_of,
        save=save,
        measure_latency=measure_latency,
        executor=executor,
        description=f"retrieval: kNN (k={k}) over {len(examples)} reviewed examples",
        # the example ids pin the index: a version registered from this attempt
        # (register_cheap_fix) rebuilds exactly the retriever that was judged
        extra={"k": k, "examples": len(examples), "example_ids": [e.id for e in examples]},
    )
