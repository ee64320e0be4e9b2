"""``tunegate gen``: the loop for ``answer`` and ``tool_call`` workflows — the baseline
generator, runs over a frozen suite, verdicts, triage, cheap fixes as Attempts, the gate and
the supervised fine-tune (docs/generative.md). ``promote``, ``rollback`` and ``monitor`` are
the shared commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for
from tunegate.errors import InputError

if TYPE_CHECKING:
    from tunegate.config import Workflow
    from tunegate.records import GenerativeRun, GenerativeSuite, Verdict
    from tunegate.store import Store

__all__ = ["register"]

gen_app = typer.Typer(
    help="The loop for answer and tool_call workflows: baseline, eval, compare, triage, try, "
    "style, gate, finetune (then `tunegate promote` / `rollback` / `monitor`).",
    no_args_is_help=True,
)

SuiteOpt = Annotated[
    str,
    typer.Option(
        "--suite", help="The frozen generative suite (name or hash; `tunegate suite freeze`)."
    ),
]


def _setup(config: Path) -> tuple[Workflow, Store]:
    workflow = load(config)
    workflow.require_kind("tunegate gen", "answer", "tool_call")
    return workflow, store_for(workflow, config)


def _suite(store: Store, name: str) -> GenerativeSuite:
    from tunegate.evaluate import get_generative_suite

    return get_generative_suite(store, name)


def _champion(store: Store) -> str:
    from tunegate.registry import Registry

    champ = Registry(store).champion()
    if champ is None:
        raise InputError("no champion yet; register the baseline with `tunegate gen baseline`")
    return champ


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if value != value else f"{value:.3f}"
    return str(value)


def _print_metrics(run: GenerativeRun) -> None:
    from rich.table import Table

    overall = run.metrics.get("overall", {})
    slices = run.metrics.get("slices", {})
    table = Table(title=f"run {run.id}: {run.model_version} on {run.suite_name}")
    table.add_column("metric")
    table.add_column("overall", justify="right")
    for name in slices:
        table.add_column(name, justify="right")
    for metric, value in overall.items():
        if isinstance(value, dict):
            continue
        row = [metric, _fmt(value)]
        row += [_fmt(slices[s].get(metric, "")) for s in slices]
        table.add_row(*row)
    out.print(table)


def _print_verdict(verdict: Verdict) -> None:
    """The verdict's rules: baseline, candidate, the change (candidate - baseline), and the
    figure each rule tests with its interval (a harm: a rise of the hallucination rate, a
    drop of tool-call accuracy, so its sign can be the opposite of the change)."""
    from rich.table import Table

    table = Table(title=f"verdict: {verdict.outcome.value.upper()}")
    for col in ("rule", "outcome", "baseline", "candidate", "change", "tested [CI]", "message"):
        table.add_column(col)
    for r in verdict.rules:
        change = (
            f"{r.candidate - r.baseline:+.3f}"
            if r.baseline is not None and r.candidate is not None
            else ""
        )
        tested = (
            ""
            if r.difference is None
            else f"{r.difference:+.3f}"
            + (
                ""
                if r.ci_low is None or r.ci_high is None
                else f" [{r.ci_low:+.3f}, {r.ci_high:+.3f}]"
            )
        )
        table.add_row(
            r.rule,
            r.outcome.value,
            _fmt(r.baseline) if r.baseline is not None else "",
            _fmt(r.candidate) if r.candidate is not None else "",
            change,
            tested,
            r.message,
        )
    out.print(table)


@gen_app.command("baseline")
def baseline_cmd(
    config: ConfigOpt = Path("tunegate.yaml"),
    model: Annotated[
        str | None, typer.Option("--model", help="Model name on the endpoint (default llm.model).")
    ] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who registers it.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Register the workflow's generator (llm.model with the default prompt, retrieval and
    constrained output) and make it the first champion; with a champion already there,
    print it and change nothing."""
    from tunegate.train import ensure_champion

    workflow, store = _setup(config)
    champ = ensure_champion(store, workflow, actor=actor, model=model)
    version = store.get_model_version(champ)
    emit(
        {"champion": champ, "config": version.config},
        as_json=as_json,
        human=lambda: out.print(f"champion: [bold]{champ}[/bold] ({version.config.get('model')})"),
    )


CheckerOpt = Annotated[
    str,
    typer.Option(
        "--checker",
        help="Who judges whether a claim is supported by its cited passages: 'embedding' "
        "(deterministic, MiniLM + numbers and names; kappa 0.75 on the labelled sample) or "
        "'llm' (the LLM judge on llm.base_url, model --judge-model; measure it first).",
    ),
]
JudgeModelOpt = Annotated[
    str | None,
    typer.Option("--judge-model", help="With --checker llm: the judge's model name."),
]


def _checker(workflow: Workflow, checker: str, judge_model: str | None) -> Any:
    if checker == "embedding":
        if judge_model is not None:
            raise InputError("--judge-model applies to --checker llm")
        return None
    if checker != "llm":
        raise InputError(f"--checker must be 'embedding' or 'llm', got {checker!r}")
    from tunegate.generative import LlmJudgeChecker
    from tunegate.llm import ChatClient

    return LlmJudgeChecker(ChatClient.from_settings(workflow.llm), model=judge_model)


@gen_app.command("eval")
def eval_cmd(
    suite: SuiteOpt,
    version: Annotated[
        str | None, typer.Argument(help="Generator version (default: the champion).")
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    checker: CheckerOpt = "embedding",
    judge_model: JudgeModelOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a generator version over a frozen suite: every output scored (claims supported by
    the cited passages, citations, abstention, correctness, tool calls, format, latency) and
    stored as a run."""
    from tunegate.evaluate import run_generative_eval
    from tunegate.generative import build_generator

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    mv = store.get_model_version(version or _champion(store))
    judge = _checker(workflow, checker, judge_model)
    run = run_generative_eval(
        store, workflow, the_suite, build_generator(workflow, mv, store), checker=judge
    )
    emit(
        {
            "run": run.id,
            "model_version": run.model_version,
            "suite": run.suite_hash,
            "metrics": run.metrics,
        },
        as_json=as_json,
        human=lambda: _print_metrics(run),
    )


@gen_app.command("compare")
def compare_cmd(
    baseline_run: Annotated[str, typer.Argument(help="The baseline's run id.")],
    candidate_run: Annotated[str, typer.Argument(help="The candidate's run id (same suite).")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """The verdict of one run against another on the generative rules (hallucination,
    tool-call accuracy, abstention, latency, preservation); exit 0 pass, 1 fail,
    2 inconclusive."""
    from tunegate.evaluate import compare_generative, load_generative_run

    workflow, store = _setup(config)
    base = load_generative_run(store, baseline_run)
    cand = load_generative_run(store, candidate_run)
    verdict = compare_generative(base, cand, rules=workflow.generative_rules)
    emit(verdict.model_dump(mode="json"), as_json=as_json, human=lambda: _print_verdict(verdict))
    raise typer.Exit(verdict.exit_code)


def _latest_run(store: Store, version: str, suite: GenerativeSuite) -> GenerativeRun:
    from tunegate.diagnose import latest_generative_run

    run = latest_generative_run(store, version, suite.hash)
    if run is None:
        raise InputError(
            f"no run of {version} on suite {suite.name!r}; run `tunegate gen eval --suite "
            f"{suite.name}` first"
        )
    return run


def _change_rate(store: Store, workflow: Workflow) -> float | None:
    from tunegate.diagnose import kb_change_rate

    rate: float | None = kb_change_rate(store, workflow) if workflow.kind == "answer" else None
    return rate


@gen_app.command("triage")
def triage_cmd(
    suite: SuiteOpt,
    version: Annotated[
        str | None, typer.Option("--version", help="Generator version (default: the champion).")
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Assign each failure of the version's latest run to one of seven categories from its
    evidence, and recommend the fix (retrieval, rules in code, constrained output, tool
    schemas, or fine-tuning) with the knowledge base's change rate."""
    from tunegate.diagnose import recommend_generative, triage_generative

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    run = _latest_run(store, version or _champion(store), the_suite)
    triage = triage_generative(run, the_suite, workflow)
    rec = recommend_generative(triage, _change_rate(store, workflow))
    data = {"triage": triage.to_dict(), "recommendation": rec.to_dict()}

    def human() -> None:
        from rich.table import Table

        table = Table(title=f"{triage.total} failures of {triage.examples} ({run.model_version})")
        table.add_column("category")
        table.add_column("failures", justify="right")
        table.add_column("share", justify="right")
        for name, count in sorted(triage.counts.items(), key=lambda kv: -kv[1]):
            table.add_row(name, str(count), f"{triage.shares.get(name, 0.0):.0%}")
        out.print(table)
        out.print(f"[bold]recommendation: {rec.action}[/bold]")
        for line in rec.reasons:
            out.print(f"  {line}", highlight=False)
        if rec.fixes:
            out.print(f"  try: {', '.join(rec.fixes)}  (`tunegate gen try FIX --suite ...`)")

    emit(data, as_json=as_json, human=human)


@gen_app.command("try")
def try_cmd(
    fix: Annotated[
        str,
        typer.Argument(
            help="A named cheap fix (top_k_5, top_k_10, chunk_size_40, chunk_size_160, "
            "rerank_mmr, rewrite, freshness, abstention_criteria, constrained, verify) or "
            "'custom' with --change."
        ),
    ],
    suite: SuiteOpt,
    change: Annotated[
        str | None,
        typer.Option(
            "--change",
            help='With "custom": the config change as JSON, e.g. '
            '\'{"retrieval": {"filters": {"team": "it"}}}\'.',
        ),
    ] = None,
    version: Annotated[
        str | None, typer.Option("--version", help="Version to fix (default: the champion).")
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Try one cheap fix as an Attempt: a new generator version differing in one setting,
    run on the suite and judged against the version it fixes (exit 0 pass, 1 fail,
    2 inconclusive)."""
    from tunegate.diagnose import CHEAP_FIXES, try_generative_fix

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    if fix == "custom":
        if change is None:
            raise InputError("\"custom\" needs --change '{...}' (a JSON object)")
        try:
            the_change = json.loads(change)
        except ValueError as exc:
            raise InputError(f"--change is not JSON: {exc}") from None
        if not isinstance(the_change, dict):
            raise InputError("--change must be a JSON object")
        description = None
    else:
        if fix not in CHEAP_FIXES:
            raise InputError(f"no cheap fix {fix!r}; known: {', '.join(CHEAP_FIXES)} or custom")
        the_change = dict(CHEAP_FIXES[fix].change)
        description = CHEAP_FIXES[fix].description
    attempt = try_generative_fix(
        store,
        workflow,
        the_suite,
        version or _champion(store),
        the_change,
        description=description,
    )
    verdict = attempt.verdict
    data = attempt.model_dump(mode="json")

    def human() -> None:
        out.print(
            f"attempt {attempt.id}: {attempt.kind.value} — {attempt.description}\n"
            f"candidate {attempt.candidate_version} vs {attempt.baseline_version}",
            highlight=False,
        )
        if verdict is not None:
            _print_verdict(verdict)

    emit(data, as_json=as_json, human=human)
    raise typer.Exit(verdict.exit_code if verdict is not None else 2)


@gen_app.command("gate")
def gate_cmd(
    suite: SuiteOpt,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """The five conditions a generative fine-tune must meet (failures triaged; not mostly
    retrieval, rules or format; cheap fixes tried; a gap left; reviewed data); exit 0 open,
    1 closed."""
    from tunegate.diagnose import generative_gate

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    report = generative_gate(store, workflow, the_suite.hash)

    def human() -> None:
        for c in report.conditions:
            mark = "[green]✓[/green]" if c.passed else "[red]✗[/red]"
            out.print(f"{mark} ({c.number}) {c.name}: {c.summary}", highlight=False)
            if not c.passed and c.next_step:
                out.print(f"      next: {c.next_step}", highlight=False)
        out.print(f"[bold]{report.message}[/bold]", highlight=False)

    emit(report.to_dict(), as_json=as_json, human=human)
    raise typer.Exit(report.exit_code)


@gen_app.command("style")
def style_cmd(
    instructions: Annotated[
        str, typer.Argument(help="The house style in words, e.g. 'Warm, brief, no jargon.'")
    ],
    suite: SuiteOpt,
    version: Annotated[
        str | None,
        typer.Option("--version", help="Task version to restyle (default: the champion)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Rewriter model (default: the task's).")
    ] = None,
    house: Annotated[
        Path | None,
        typer.Option(
            "--house",
            help="A text file of answers in the house voice (one per line): the attempt also "
            "reports style similarity before and after.",
        ),
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Tone as its own stage: a style version rewrites the task version's answers (citations,
    abstentions and tool calls pass through) and is judged against it by the same rules, so
    a rewrite that changes a fact fails; the task model is never touched."""
    from tunegate.diagnose import try_style_stage

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    examples: list[str] = []
    if house is not None:
        if not house.is_file():
            raise InputError(f"--house {house}: no such file")
        examples = [line.strip() for line in house.read_text(encoding="utf-8").splitlines()]
        examples = [line for line in examples if line]
        if not examples:
            raise InputError(f"--house {house} holds no text; one house-voice answer per line")
    attempt = try_style_stage(
        store,
        workflow,
        the_suite,
        version or _champion(store),
        instructions,
        model=model,
        house_examples=examples,
    )
    verdict = attempt.verdict

    def human() -> None:
        d = attempt.details
        out.print(
            f"attempt {attempt.id}: style version {attempt.candidate_version} over "
            f"{attempt.baseline_version}; {d.get('rewrites_refused', 0)} rewrites refused "
            "(the task's text kept)",
            highlight=False,
        )
        if "style_similarity_after" in d:
            out.print(
                f"style similarity {_fmt(d['style_similarity_before'])} -> "
                f"{_fmt(d['style_similarity_after'])}",
                highlight=False,
            )
        if verdict is not None:
            _print_verdict(verdict)

    emit(attempt.model_dump(mode="json"), as_json=as_json, human=human)
    raise typer.Exit(verdict.exit_code if verdict is not None else 2)


@gen_app.command("finetune")
def finetune_cmd(
    suite: SuiteOpt,
    config: ConfigOpt = Path("tunegate.yaml"),
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Training epochs.")] = 2,
    seed: Annotated[int, typer.Option("--seed", help="Training seed.")] = 0,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder of the adapter artifact (default .tunegate/adapters/sft-<data>-s<seed> "
            "beside tunegate.yaml).",
        ),
    ] = None,
    include_unreviewed: Annotated[
        bool, typer.Option("--include-unreviewed", help="Train on pending examples too.")
    ] = False,
    skip_gate: Annotated[
        bool,
        typer.Option("--skip-gate", help="Train even when the gate is closed (recorded)."),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Supervised LoRA on the local causal LM from reviewed examples (never a suite's), the
    adapter exported to GGUF and served beside the base model, both run on the suite and the
    candidate judged against the champion; promote it with `tunegate promote` only when the
    verdict passes."""
    from tunegate.train import finetune_generative

    workflow, store = _setup(config)
    the_suite = _suite(store, suite)
    outcome = finetune_generative(
        store,
        workflow,
        the_suite,
        epochs=epochs,
        seed=seed,
        out_dir=out_dir,
        work_dir=config.parent,
        include_unreviewed=include_unreviewed,
        require_gate=not skip_gate,
    )
    data = outcome.to_dict()

    def human() -> None:
        out.print(
            f"candidate [bold]{outcome.candidate}[/bold] (adapter {outcome.adapter}); "
            f"{outcome.n_examples} training examples, loss {outcome.loss_first:.3f} -> "
            f"{outcome.loss_last:.3f}",
            highlight=False,
        )
        _print_verdict(outcome.verdict)
        out.print(outcome.message, highlight=False)

    emit(data, as_json=as_json, human=human)
    raise typer.Exit(outcome.verdict.exit_code)


def register(app: typer.Typer) -> None:
    app.add_typer(gen_app, name="gen")
