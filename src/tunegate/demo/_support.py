"""``tunegate demo --scenario support-answers``: a fine-tune that sounds smarter and is worse,
caught before it ships, and the cheap fix that wins.

Every step is a library use-case; this module only orders them and gathers what they found:

1. the local llama.cpp server, the scenario's files, store and workflow, the knowledge base
   (:meth:`tunegate.kb.KnowledgeBase.ingest`), the frozen suite with its preservation slice
   and the scenario's tool requests (:func:`tunegate.evaluate.freeze_generative_suite`), the
   baseline generator registered and made champion;
2. the baseline run (:func:`tunegate.evaluate.run_generative_eval`), its triage and the
   recommendation with the knowledge base's change rate
   (:func:`tunegate.diagnose.triage_generative`, :func:`~tunegate.diagnose.recommend_generative`);
3. the tempting fine-tune on the reviewed historical answers with the gate closed
   (:func:`tunegate.train.finetune_generative` with ``require_gate=False``), its verdict, the
   promotion the registry refuses unless the verdict passed, and the style similarity of the
   answers to the house voice (:func:`tunegate.generative.style_similarity`);
4. the cheap fixes in the framework's order, each an Attempt with a verdict
   (:func:`tunegate.diagnose.try_generative_fix`); the best passing one promoted
   (:meth:`tunegate.registry.Registry.promote`);
5. monitoring of the following months (:func:`tunegate.monitor.run_generative_monitor`);
6. the before/after table (paired intervals: :func:`tunegate.metrics.paired_ratio_bootstrap`,
   :func:`~tunegate.metrics.paired_median_ratio`), ``result.json``, ``report.html`` and
   ``summary.md`` (:func:`tunegate.report.support_demo_html`,
   :func:`~tunegate.report.support_demo_markdown`).

The baseline searches every version of the knowledge base (``freshness: false``), as a first
retrieval set-up that indexes the policy folder as it is does; the freshness filter on
effective dates is then the first cheap fix. See docs/demo.md.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunegate.errors import InputError, RegistryError

if TYPE_CHECKING:
    from tunegate.config import Workflow
    from tunegate.records import Attempt, GenerativeRun, GenerativeSuite
    from tunegate.store import Store

__all__ = [
    "FIX_ORDER",
    "TABLE_METRICS",
    "SupportDemoConfig",
    "SupportDemoResult",
    "run_support_demo",
    "support_table",
]

FIX_ORDER = ("freshness", "top_k_5", "rerank_mmr", "abstention_criteria")
"""The cheap fixes tried, in the framework's order (retrieval first, then rules): the
names in :data:`tunegate.diagnose.CHEAP_FIXES`."""

TABLE_METRICS: tuple[tuple[str, str, str, str], ...] = (
    # (row label, generative_terms name, direction, slice: "all" or "core")
    ("hallucination rate", "unsupported_claim_rate", "lower", "all"),
    ("citation rate", "citation_score", "higher", "all"),
    ("stale-fact rate", "stale_claim_rate", "lower", "all"),
    ("abstention precision", "abstention_precision_score", "higher", "all"),
    ("abstention recall", "abstention_recall_score", "higher", "all"),
    ("tool-call accuracy", "tool_call_accuracy_score", "higher", "all"),
    ("answer correctness (core)", "answer_correctness_score", "higher", "core"),
)
"""The before/after table's ratio metrics; style similarity and latency follow them."""

STYLE_ROW = "style similarity to the house voice"
LATENCY_ROW = "latency p50 (ms)"


@dataclass
class SupportDemoConfig:
    """Knobs of the support-answers demo. ``quick`` shrinks the scenario, the preservation
    slice and training for tests (a 3-minute budget on two cores)."""

    out_dir: Path = Path("tunegate-demo")
    quick: bool = False
    seed: int = 7
    """Seed of the scenario and of training."""
    epochs: int | None = None
    """Fine-tuning epochs (default 2; 1 with ``quick``)."""
    max_tokens: int = 96
    """The generators' answer budget in tokens (answers are one or two sentences)."""
    preservation_per_slice: int | None = None
    """Preservation examples per capability (default 3; 1 with ``quick``)."""
    monitored_months: int | None = None
    """Months of production log after the suite's date (default: the scenario's
    ``monitor_months``)."""
    n_resamples: int = 1000
    """Bootstrap resamples of the table's intervals."""
    llm_threads: int = 1
    """llama.cpp threads for generating tokens (1 is fastest on a busy 2-core machine)."""
    llm_threads_batch: int | None = None
    """llama.cpp threads for reading prompts (default: every core, at most 2). Prompts with
    retrieved passages are most of an answer's time, and prompt reading scales with cores."""
    fresh: bool = True
    """Delete ``out_dir`` first (the demo always starts from an empty store)."""

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        for name in ("epochs", "preservation_per_slice", "monitored_months", "llm_threads_batch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise InputError(f"SupportDemoConfig.{name} must be at least 1, got {value}")
        if self.llm_threads < 1:
            raise InputError(
                f"SupportDemoConfig.llm_threads must be at least 1, got {self.llm_threads}"
            )
        if not 1 <= self.max_tokens <= 2048:
            raise InputError(f"SupportDemoConfig.max_tokens must be 1-2048, got {self.max_tokens}")
        if self.n_resamples < 100:
            raise InputError(
                f"SupportDemoConfig.n_resamples must be >= 100, got {self.n_resamples}"
            )

    @property
    def threads_batch(self) -> int:
        if self.llm_threads_batch is not None:
            return self.llm_threads_batch
        return max(1, min(2, os.cpu_count() or 1))

    @property
    def n_epochs(self) -> int:
        return self.epochs if self.epochs is not None else (1 if self.quick else 2)

    @property
    def n_preservation(self) -> int:
        if self.preservation_per_slice is not None:
            return self.preservation_per_slice
        return 1 if self.quick else 3

    def n_months(self, scenario: Any) -> int:
        """Monitored months: ``monitored_months``, else all the scenario monitors."""
        if self.monitored_months is not None:
            return self.monitored_months
        return int(getattr(scenario, "monitor_months", 2 if self.quick else 3))


@dataclass
class SupportDemoResult:
    """What the support-answers demo found (``to_dict()`` is ``result.json`` and ``--json``)."""

    out_dir: Path
    scenario: dict[str, Any]
    table: list[dict[str, Any]]
    finetune: dict[str, Any]
    fixes: list[dict[str, Any]]
    promoted: dict[str, Any]
    examples: list[dict[str, Any]]
    triage: dict[str, Any]
    monitoring: dict[str, Any]
    timings: dict[str, float] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "table": self.table,
            "verdicts": {"finetune": self.finetune, "fixes": self.fixes},
            "promoted": self.promoted,
            "examples": self.examples,
            "triage": self.triage,
            "monitoring": self.monitoring,
            "timings": self.timings,
            "files": self.files,
        }


class _Timer:
    def __init__(self, log: Callable[[str], None]) -> None:
        self.log = log
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.log(f"[bold cyan]▶ {name}[/bold cyan]")
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.seconds[name] = round(took, 2)
        self.log(f"  [dim]done in {took:.1f} s[/dim]")


# -- the table ---------------------------------------------------------------------------------


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _aligned(base: GenerativeRun, other: GenerativeRun) -> list[Any]:
    by_id = {s.example_id: s for s in other.scores}
    ids = [s.example_id for s in base.scores]
    if set(ids) != set(by_id):
        raise InputError(
            f"runs {base.id} and {other.id} cover different examples; run both on one suite"
        )
    return [by_id[i] for i in ids]


def _style_terms(texts: Sequence[str], house: Sequence[str], encoder: Any) -> Any:
    """Per-answer style similarity (each text's best cosine to the house voice, through
    :func:`tunegate.metrics.style_similarity_score` one row at a time) as ratio terms, so it
    gets a paired interval like the other rows."""
    import numpy as np

    from tunegate.metrics import RatioTerms, style_similarity_score

    emb = encoder.embed(list(texts))
    ref = encoder.embed(list(house))
    values = np.array([style_similarity_score(emb[i : i + 1], ref) for i in range(len(texts))])
    return RatioTerms("style_similarity", values, np.ones(len(texts)))


def _answer_text(output: Any) -> str:
    return str(output.answer or "").strip() or "(empty)"


def _cell(terms_a: Any, terms_b: Any, *, n_resamples: int, confidence: float) -> dict[str, Any]:
    from tunegate.metrics import paired_ratio_bootstrap

    boot = paired_ratio_bootstrap(
        terms_a, terms_b, n_resamples=n_resamples, confidence=confidence, seed=0
    )
    value = _finite(terms_b.value())
    diff = boot.diff
    change = None if diff is None else _finite(diff.estimate)
    return {
        "value": value,
        "change": change if value is not None else None,
        "ci_low": None if diff is None or value is None else _finite(diff.low),
        "ci_high": None if diff is None or value is None else _finite(diff.high),
    }


def support_table(
    baseline: GenerativeRun,
    candidates: dict[str, GenerativeRun | None],
    *,
    house_examples: Sequence[str],
    encoder: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
) -> list[dict[str, Any]]:
    """The before/after rows: per metric the baseline's value and, per candidate run (e.g.
    ``{"finetune": run, "fix": run}``; ``None`` = not run), its value, the paired change
    (candidate - baseline) and that change's interval. Undefined figures are ``None``
    (shown as n/a). Latency's change is relative (median of the paired ratios - 1)."""
    import numpy as np

    from tunegate.evaluate import generative_terms
    from tunegate.metrics import paired_median_ratio

    base_terms = generative_terms(baseline.scores)
    core = [s.slice.value == "core" for s in baseline.scores]
    runs = {
        name: (run, _aligned(baseline, run) if run else None) for name, run in candidates.items()
    }
    cand_terms = {name: generative_terms(sc) if sc else None for name, (_, sc) in runs.items()}

    def masked(terms: Any, mask: Sequence[bool]) -> Any:
        from tunegate.metrics import RatioTerms

        m = np.asarray(mask, dtype=bool)
        return RatioTerms(terms.metric, terms.numerator[m], terms.denominator[m])

    rows: list[dict[str, Any]] = []
    for label, name, direction, where in TABLE_METRICS:
        a = base_terms[name] if where == "all" else masked(base_terms[name], core)
        row: dict[str, Any] = {
            "metric": label,
            "name": name,
            "direction": direction,
            "baseline": _finite(a.value()),
        }
        for cname, terms in cand_terms.items():
            if terms is None:
                row[cname] = None
                continue
            b = terms[name] if where == "all" else masked(terms[name], core)
            row[cname] = _cell(a, b, n_resamples=n_resamples, confidence=confidence)
        rows.append(row)

    # style similarity: the core answers' texts against the house voice
    idx = [
        i for i, s in enumerate(baseline.scores) if s.kind == "answer" and s.slice.value == "core"
    ]
    if house_examples and idx:
        if encoder is None:
            from tunegate.models import get_encoder

            encoder = get_encoder()
        by_id = {o.example_id: o for o in baseline.outputs}
        ids = [baseline.scores[i].example_id for i in idx]
        a = _style_terms([_answer_text(by_id[i]) for i in ids], house_examples, encoder)
        row = {
            "metric": STYLE_ROW,
            "name": "style_similarity",
            "direction": "higher",
            "baseline": _finite(a.value()),
        }
        for cname, (run, _) in runs.items():
            if run is None:
                row[cname] = None
                continue
            outs = {o.example_id: o for o in run.outputs}
            b = _style_terms([_answer_text(outs[i]) for i in ids], house_examples, encoder)
            row[cname] = _cell(a, b, n_resamples=n_resamples, confidence=confidence)
        rows.append(row)

    lat_a = np.array([s.latency_ms for s in baseline.scores], dtype=float)
    row = {
        "metric": LATENCY_ROW,
        "name": "latency_p50_ms",
        "direction": "lower",
        "baseline": _finite(float(np.median(lat_a))) if lat_a.size else None,
    }
    for cname, (_, scores) in runs.items():
        if scores is None:
            row[cname] = None
            continue
        lat_b = np.array([s.latency_ms for s in scores], dtype=float)
        ratio = paired_median_ratio(lat_a, lat_b, n_resamples=n_resamples, confidence=confidence)
        row[cname] = {
            "value": _finite(float(np.median(lat_b))),
            "change": _finite(ratio.estimate - 1.0),
            "ci_low": _finite(ratio.low - 1.0),
            "ci_high": _finite(ratio.high - 1.0),
            "relative": True,
        }
    rows.append(row)
    return rows


# -- verdicts and examples ---------------------------------------------------------------------


def _rules(verdict: Any) -> list[dict[str, Any]]:
    return [
        {
            "rule": r.rule,
            "outcome": r.outcome.value,
            "baseline": r.baseline,
            "candidate": r.candidate,
            "difference": r.difference,
            "ci_low": r.ci_low,
            "ci_high": r.ci_high,
            "message": r.message,
        }
        for r in verdict.rules
    ]


def _failed(verdict: Any) -> list[str]:
    return [r.rule for r in verdict.rules if r.outcome.value == "fail"]


def _cited(output: Any) -> list[dict[str, Any]]:
    shown = {
        (str(r.get("doc_id")), str(r.get("version"))): r
        for r in (output.metadata or {}).get("retrieved", []) or []
        if isinstance(r, dict)
    }
    out = []
    for ref in output.cited:
        seen = shown.get((ref.id, str(ref.version)))
        out.append(
            {
                "id": ref.id,
                "version": ref.version,
                "stale": bool(seen.get("stale")) if seen else False,
                "current_version": seen.get("current_version") if seen else None,
            }
        )
    return out


def _answer(run: GenerativeRun | None, example_id: str) -> dict[str, Any] | None:
    if run is None:
        return None
    for output, score in zip(run.outputs, run.scores, strict=True):
        if output.example_id == example_id:
            return {
                "text": str(output.answer or ""),
                "abstained": output.abstained,
                "cited": _cited(output),
                "correct": score.correct,
                "n_claims": score.n_claims,
                "n_unsupported": score.n_unsupported,
                "n_stale": score.n_stale,
                "latency_ms": round(score.latency_ms, 1),
            }
    return None


def pick_examples(
    suite: GenerativeSuite,
    baseline: GenerativeRun,
    finetune: GenerativeRun | None,
    fix: GenerativeRun | None,
    *,
    limit: int = 5,
) -> list[dict[str, Any]]:
    """Core answer examples to show, the most telling first: the fine-tune wrong where the
    fix is right, then any disagreement, then an unanswerable question, then the rest."""
    core = [e for e in suite.examples if e.kind == "answer" and e.slice.value == "core"]

    def correct(run: GenerativeRun | None, eid: str) -> bool | None:
        a = _answer(run, eid)
        return None if a is None else bool(a["correct"])

    def rank(e: Any) -> int:
        ft, fx = correct(finetune, e.id), correct(fix, e.id)
        if ft is False and fx is True:
            return 0
        if ft != fx:
            return 1
        if not e.answerable:
            return 2
        return 3

    chosen = sorted(core, key=rank)[:limit]
    return [
        {
            "id": e.id,
            "question": e.input,
            "reference": e.reference,
            "answerable": e.answerable,
            "gold": [{"id": g.id, "version": g.version} for g in e.gold_documents],
            "baseline": _answer(baseline, e.id),
            "finetune": _answer(finetune, e.id),
            "fix": _answer(fix, e.id),
        }
        for e in chosen
    ]


def _scenario_dict(scn: Any, config: SupportDemoConfig) -> dict[str, Any]:
    return {
        "name": "support-answers",
        "seed": config.seed,
        "quick": config.quick,
        "documents": len(scn.documents),
        "document_ids": len({d.doc_id for d in scn.documents}),
        "start": scn.start.isoformat(),
        "months": scn.months,
        "eval_at": scn.eval_at.isoformat(),
        "suite": len(scn.suite),
        "unanswerable": sum(1 for e in scn.suite if not e.answerable),
        "tool_examples": len(scn.tool_examples),
        "history": len(scn.history),
        "house_examples": len(scn.house_examples),
        "true_change_rate": scn.change_rate,
        "tools": [t.name for t in scn.tools],
        "llm_threads": config.llm_threads,
        "llm_threads_batch": config.threads_batch,
    }


def _write_jsonl(path: Path, rows: Sequence[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows), encoding="utf-8")
    return path


# -- the pipeline ------------------------------------------------------------------------------


def run_support_demo(
    config: SupportDemoConfig,
    log: Callable[[str], None] | None = None,
    *,
    scenario: Any = None,
) -> SupportDemoResult:
    """Run the support-answers demo end to end (module docstring) and write ``result.json``,
    ``report.html`` and ``summary.md`` into ``config.out_dir``. ``scenario``: a
    :class:`tunegate.simulate.SupportScenario` (default ``support_scenario(seed, quick)``)."""
    from tunegate.config import load_workflow
    from tunegate.diagnose import (
        CHEAP_FIXES,
        generative_gate,
        recommend_generative,
        triage_generative,
        try_generative_fix,
    )
    from tunegate.evaluate import (
        freeze_generative_suite,
        load_generative_run,
        run_generative_eval,
        save_generative_suite,
    )
    from tunegate.generative import build_generator, register_generator
    from tunegate.io import ingest_generative, ingest_generative_log
    from tunegate.kb import KnowledgeBase
    from tunegate.llm import local_llm_server
    from tunegate.monitor import run_generative_monitor
    from tunegate.records import GeneratorConfig
    from tunegate.registry import Registry
    from tunegate.store import Store
    from tunegate.train import finetune_generative

    if log is None:
        from rich.console import Console

        console = Console()
        log = lambda msg: console.print(msg, highlight=False)  # noqa: E731
    started = time.perf_counter()
    timer = _Timer(log)
    out = config.out_dir
    if config.fresh and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    actor = "tunegate-demo"

    stack = ExitStack()
    with timer.step("0. scenario and the local LLM server"):
        if scenario is None:
            from tunegate.simulate import support_scenario

            scenario = support_scenario(seed=config.seed, quick=config.quick)
        scn = scenario
        files = {k: str(v) for k, v in scn.write(out / "data").items()}
        server = stack.enter_context(
            local_llm_server(
                port=0,
                threads=config.llm_threads,
                threads_batch=config.threads_batch,
                log_path=out / "llm-server.log",
            )
        )
    with stack:
        with timer.step("1. workflow, knowledge base, frozen suite, baseline"):
            cfg_path = out / "tunegate.yaml"
            cfg_path.write_text(
                _with_training(scn.workflow_yaml(server.base_url, server.model)),
                encoding="utf-8",
            )
            workflow = load_workflow(cfg_path)
            store = Store(workflow.resolved_store_url(out.resolve()))
            kb = KnowledgeBase(store, workflow.retrieval)
            kb_report = kb.ingest(scn.documents)
            suite = freeze_generative_suite(
                "support-core",
                [*scn.suite, *scn.tool_examples],
                workflow,
                training_texts=[h.input for h in scn.history],
                drop_leaked=True,
                preservation=True,
                preservation_per_slice=config.n_preservation,
                preservation_seed=config.seed,
            )
            save_generative_suite(store, suite)
            registry = Registry(store)
            base_cfg = GeneratorConfig(
                model=workflow.llm.model, freshness=False, max_tokens=config.max_tokens
            )
            base_mv = register_generator(store, workflow, base_cfg)
            if registry.champion() is None:
                registry.promote(
                    base_mv.id,
                    actor=actor,
                    reason="baseline: every knowledge-base version searched, top-k of the workflow",
                )
            champion = base_mv.id
            slices: dict[str, int] = {}
            for e in suite.examples:
                slices[e.slice.value] = slices.get(e.slice.value, 0) + 1
            log(
                f"  {kb_report.versions_added} document versions; suite {suite.name} "
                f"({len(suite.examples)} examples: {slices}); champion {champion}"
            )

        with timer.step("2. baseline run, triage, recommendation"):
            base_run = run_generative_eval(
                store, workflow, suite, build_generator(workflow, base_mv, store)
            )
            triage = triage_generative(base_run, suite, workflow)
            rate = kb.change_rate(start=scn.start, months=scn.months)
            rec = recommend_generative(triage, rate)
            log(f"  {triage.total} failures of {triage.examples}: recommendation {rec.action}")

        with timer.step("3. the tempting fine-tune on the historical answers"):
            ingested = ingest_generative(store, files["history"], workflow=workflow)
            gate = generative_gate(store, workflow, suite.hash, champion)
            outcome = finetune_generative(
                store,
                workflow,
                suite,
                epochs=config.n_epochs,
                seed=config.seed,
                out_dir=out / "adapter",
                work_dir=out,
                require_gate=False,
                actor=actor,
                threads=config.llm_threads,
                threads_batch=config.threads_batch,
            )
            ft_run = load_generative_run(store, outcome.candidate_run)
            ft_promoted, ft_refusal = _promote(registry, outcome.candidate, actor)
            log(
                f"  gate {'open' if gate.open else 'closed'} (skipped, recorded); "
                f"{outcome.n_examples} training examples; verdict "
                f"{outcome.verdict.outcome.value}; "
                + ("promoted" if ft_promoted else f"not promoted: {ft_refusal}")
            )
            finetune = {
                "name": "finetune",
                "attempt": outcome.attempt.id,
                "candidate": outcome.candidate,
                "outcome": outcome.verdict.outcome.value,
                "failed_rules": _failed(outcome.verdict),
                "rules": _rules(outcome.verdict),
                "gate_open": gate.open,
                "gate_closed_conditions": [
                    {"number": c.number, "name": c.name, "summary": c.summary}
                    for c in gate.conditions
                    if not c.passed
                ],
                "training_examples": outcome.n_examples,
                "history_ingested": ingested.added,
                "epochs": config.n_epochs,
                "loss_first": _finite(outcome.loss_first),
                "loss_last": _finite(outcome.loss_last),
                "train_seconds": round(outcome.train_seconds, 1),
                "promoted": ft_promoted,
                "refusal": ft_refusal,
                "message": outcome.message,
            }

        with timer.step("4. the cheap fixes, in the framework's order"):
            fixes: list[dict[str, Any]] = []
            fix_runs: dict[str, GenerativeRun] = {}
            for name in FIX_ORDER:
                if name == "freshness" and base_cfg.freshness:
                    fixes.append(_skipped(name, "the baseline already retrieves fresh versions"))
                    continue
                fix = CHEAP_FIXES[name]
                attempt = try_generative_fix(
                    store,
                    workflow,
                    suite,
                    champion,
                    dict(fix.change),
                    description=fix.description,
                    actor=actor,
                )
                fixes.append(_fix_dict(name, attempt))
                fix_runs[name] = load_generative_run(store, attempt.details["candidate_run"])
                log(f"  {name}: {fixes[-1]['outcome']} {fixes[-1]['failed_rules'] or ''}")
            promoted = _promote_best(registry, fixes, fix_runs, actor, ft_promoted, outcome)
            log(f"  {promoted['message']}")

        with timer.step("5. monitoring the following months"):
            monitoring = _monitor(
                store,
                workflow,
                kb,
                scn,
                config,
                rec,
                rate,
                out,
                run_generative_monitor,
                ingest_generative_log,
            )

    with timer.step("6. table and report"):
        fix_name = promoted.get("fix") or _best_fix_name(fixes, fix_runs)
        fix_run = fix_runs.get(fix_name) if fix_name else None
        table = support_table(
            base_run,
            {"finetune": ft_run, "fix": fix_run},
            house_examples=scn.house_examples,
            n_resamples=config.n_resamples,
            confidence=workflow.generative_rules.confidence,
        )
        examples = pick_examples(suite, base_run, ft_run, fix_run, limit=3 if config.quick else 5)
        scenario_info = _scenario_dict(scn, config)
        scenario_info |= {
            "suite_name": suite.name,
            "suite_hash": suite.hash,
            "suite_slices": slices,
            "champion": champion,
            "baseline_config": base_cfg.model_dump(mode="json"),
            "baseline_run": base_run.id,
            "table_fix": fix_name,
            "model": workflow.llm.model,
        }
        triage_info = {
            "total": triage.total,
            "examples": triage.examples,
            "counts": triage.counts,
            "shares": triage.shares,
            "recommendation": rec.to_dict(),
            "failures": [
                {"example_id": f.example_id, "category": f.category.value, "evidence": f.evidence}
                for f in triage.failures
            ],
        }
        result = SupportDemoResult(
            out_dir=out,
            scenario=scenario_info,
            table=table,
            finetune=finetune,
            fixes=fixes,
            promoted=promoted,
            examples=examples,
            triage=triage_info,
            monitoring=monitoring,
            files=files,
        )
        _write(result)
    result.timings = {**timer.seconds, "total": round(time.perf_counter() - started, 2)}
    _write(result)  # with the last step's and the total time
    log(f"[bold]report: {out / 'report.html'}  summary: {out / 'summary.md'}[/bold]")
    log(_timings_line(result.timings))
    return result


DEMO_TRAINING = {"batch_size": 4, "learning_rate": 0.001, "lora_r": 8, "lora_alpha": 16}
"""The fine-tune's recipe where the scenario's workflow sets none: batches of 4 so a small
history still gives several optimizer steps per epoch (the workflow default of 16 made the
quick run's single epoch one step, an adapter that barely moved), and the learning rate of
the generative loop's tests."""


def _with_training(text: str) -> str:
    """The scenario's ``tunegate.yaml`` with :data:`DEMO_TRAINING` filled in where its
    ``training:`` leaves a key out (written to the out folder as it is used)."""
    import yaml

    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise InputError("the scenario's workflow_yaml() is not a YAML mapping")
    training = data.setdefault("training", {}) or {}
    for key, value in DEMO_TRAINING.items():
        training.setdefault(key, value)
    data["training"] = training
    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def _timings_line(timings: dict[str, float]) -> str:
    return "timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())


def _write(result: SupportDemoResult) -> None:
    from tunegate.report import support_demo_html, support_demo_markdown

    out = result.out_dir
    result.files |= {
        "result": str(out / "result.json"),
        "report": str(out / "report.html"),
        "summary": str(out / "summary.md"),
    }
    data = result.to_dict()
    (out / "result.json").write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    (out / "report.html").write_text(support_demo_html(data), encoding="utf-8")
    (out / "summary.md").write_text(support_demo_markdown(data), encoding="utf-8")


def _promote(registry: Any, version: str, actor: str) -> tuple[bool, str | None]:
    """Ask the registry to promote ``version``: it refuses unless its verdict passed."""
    try:
        registry.promote(version, actor=actor, reason="demo: verdict passed")
    except RegistryError as exc:
        return False, str(exc)
    return True, None


def _skipped(name: str, why: str) -> dict[str, Any]:
    return {
        "name": name,
        "attempt": None,
        "candidate": None,
        "outcome": "skipped",
        "failed_rules": [],
        "rules": [],
        "description": why,
        "promoted": False,
    }


def _fix_dict(name: str, attempt: Attempt) -> dict[str, Any]:
    verdict = attempt.verdict
    d = attempt.details
    return {
        "name": name,
        "attempt": attempt.id,
        "candidate": attempt.candidate_version,
        "kind": attempt.kind.value,
        "description": attempt.description,
        "outcome": verdict.outcome.value if verdict is not None else "inconclusive",
        "failed_rules": _failed(verdict) if verdict is not None else [],
        "rules": _rules(verdict) if verdict is not None else [],
        "failed_before": d.get("failed_before"),
        "failed_after": d.get("failed_after"),
        "fixed": d.get("fixed"),
        "broken": d.get("broken"),
        "candidate_run": d.get("candidate_run"),
        "promoted": False,
    }


def _core_correctness(run: GenerativeRun) -> float:
    value = run.metrics.get("slices", {}).get("core", {}).get("correctness_score")
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else -1.0


def _best_fix_name(fixes: list[dict[str, Any]], runs: dict[str, GenerativeRun]) -> str | None:
    """The fix the table shows when none was promoted: the best on core correctness (the
    earliest on a tie)."""
    tried: list[str] = [str(f["name"]) for f in fixes if f["name"] in runs]
    if not tried:
        return None
    return max(tried, key=lambda n: (_core_correctness(runs[n]), -tried.index(n)))


def _promote_best(
    registry: Any,
    fixes: list[dict[str, Any]],
    runs: dict[str, GenerativeRun],
    actor: str,
    finetune_promoted: bool,
    outcome: Any,
) -> dict[str, Any]:
    """Promote the passing fix with the best core correctness (the earliest on a tie); the
    registry checks the verdict again."""
    passing = [f for f in fixes if f["outcome"] == "pass"]
    if not passing:
        names = ", ".join(f"{f['name']} {f['outcome']}" for f in fixes)
        return {
            "version": None,
            "fix": None,
            "finetune": outcome.candidate if finetune_promoted else None,
            "message": f"no cheap fix passed its verdict ({names}): nothing promoted, the "
            "champion stays",
        }
    order = [f["name"] for f in fixes]
    best = max(passing, key=lambda f: (_core_correctness(runs[f["name"]]), -order.index(f["name"])))
    ok, refusal = _promote(registry, best["candidate"], actor)
    best["promoted"] = ok
    if not ok:
        return {
            "version": None,
            "fix": best["name"],
            "finetune": outcome.candidate if finetune_promoted else None,
            "message": f"{best['name']} passed against the baseline but the registry refused "
            f"it: {refusal}",
        }
    return {
        "version": best["candidate"],
        "fix": best["name"],
        "attempt": best["attempt"],
        "finetune": None,
        "message": f"promoted {best['name']} ({best['candidate']}): its verdict passed",
    }


def _monitor(
    store: Store,
    workflow: Workflow,
    kb: Any,
    scn: Any,
    config: SupportDemoConfig,
    rec: Any,
    rate: Any,
    out: Path,
    run_monitor: Callable[..., Any],
    ingest_log: Callable[..., Any],
) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for i in range(config.n_months(scn)):
        rows.extend(scn.log(i))
    path = _write_jsonl(out / "data" / "production-log.jsonl", rows)
    report = ingest_log(store, path, workflow=workflow)
    result = run_monitor(store, workflow, kb=kb)
    months = [m.to_dict() for m in result.months]
    rate_value = float(getattr(rate, "rate", rate))
    recommendation = next(
        (r for r in rec.reasons if "of its documents a month" in r),
        f"The knowledge base changes {rate_value:.1%} of its documents a month.",
    )
    return {
        "rows_ingested": report.added,
        "quarantined": report.quarantined,
        "months": [
            {
                k: m.get(k)
                for k in (
                    "month",
                    "n_outputs",
                    "citation_rate",
                    "unsupported_rate",
                    "lagging_share",
                    "freshness_lag_days",
                    "escalation_rate",
                    "kb_change_rate",
                )
            }
            for m in months
        ],
        "fired": [r.to_dict() for r in result.fired],
        "notes": result.notes,
        "kb_change_rate": rate_value,
        "true_change_rate": scn.change_rate,
        "retrieval_beats_finetuning": rec.retrieval_beats_finetuning,
        "recommendation": recommendation,
    }
