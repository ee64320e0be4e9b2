"""``tunegate suite freeze|show``, ``tunegate eval``, ``tunegate compare``, ``tunegate probe``:
thin commands over :mod:`tunegate.evaluate` and :mod:`tunegate.report`."""

from __future__ import annotations

import json
import warnings
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tunegate.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    buildable,
    emit,
    executor_for,
    load,
    out,
    store_for,
)
from tunegate.errors import InputError, NotFoundError
from tunegate.records import EvalRun, EvalSuite, GenerativeSuite, ModelKind, SuiteSlice

if TYPE_CHECKING:
    from tunegate.config import Workflow
    from tunegate.store import Store

__all__ = ["register"]

suite_app = typer.Typer(help="Freeze and inspect evaluation suites.", no_args_is_help=True)
DEFAULT_CONFIG = Path("tunegate.yaml")


@suite_app.command("freeze")
def suite_freeze(
    file: Annotated[
        Path,
        typer.Argument(
            help="JSONL or CSV: text, label[, id, slice, tags]. Answer/tool_call workflows: "
            "any shape `tunegate ingest examples` reads (DeepEval, promptfoo, Inspect, ...)."
        ),
    ],
    name: Annotated[str, typer.Option("--name", help="Suite name.")],
    training: Annotated[
        list[Path] | None,
        typer.Option("--training", help="Extra file(s) of training texts to check for leakage."),
    ] = None,
    exact_only: Annotated[
        bool, typer.Option("--exact-only", help="Skip the embedding near-duplicate check.")
    ] = False,
    drop_leaked: Annotated[
        bool,
        typer.Option(
            "--drop-leaked", help="Leave out examples that overlap training data (listed)."
        ),
    ] = False,
    shape: Annotated[
        str | None,
        typer.Option(
            "--shape",
            help="Answer/tool_call workflows: the file's shape (auto, native, deepeval, "
            "promptfoo, inspect, openai-evals; default auto).",
        ),
    ] = None,
    preservation: Annotated[
        bool,
        typer.Option(
            "--preservation",
            help="Answer/tool_call workflows: add the packaged capability-preservation set "
            "(tool use, citation, summarisation, abstention, reasoning) as the preservation "
            "slice.",
        ),
    ] = False,
    preservation_per_slice: Annotated[
        int,
        typer.Option(
            "--preservation-per-slice",
            min=1,
            max=50,
            help="With --preservation: examples per capability.",
        ),
    ] = 10,
    preservation_seed: Annotated[
        int,
        typer.Option(
            "--preservation-seed", help="With --preservation: the seed of the templates' fillers."
        ),
    ] = 0,
    robustness: Annotated[
        bool,
        typer.Option(
            "--robustness",
            help="Classification workflows: also freeze a robustness slice: the core "
            "examples perturbed (typos, case and whitespace, templates, length, mixed "
            "language, keyword stuffing with the confirmed findings' terms); `tunegate eval` "
            "scores it and the verdict judges flip rate and attack success rate.",
        ),
    ] = False,
    robustness_seed: Annotated[
        int, typer.Option("--robustness-seed", help="With --robustness: the generators' seed.")
    ] = 0,
    perturbations: Annotated[
        str | None,
        typer.Option(
            "--perturbations",
            help="With --robustness: comma-separated generators (default: typos, "
            "case_whitespace, paraphrase, length_long, length_short, mixed_language, "
            "keyword_stuffing; add injection for LLM backends).",
        ),
    ] = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Freeze a suite from a file and store it (refuses examples that overlap training data:
    every example in the store plus --training files)."""
    from tunegate.evaluate import freeze_suite, read_suite_examples

    workflow = load(config)
    store = store_for(workflow, config)
    if (perturbations is not None or robustness_seed) and not robustness:
        raise InputError("--perturbations and --robustness-seed apply with --robustness")
    if robustness and not workflow.is_classify:
        raise InputError(
            "--robustness applies to classification workflows; for answer and tool_call "
            "workflows the injected-instruction generators exist in the library "
            "(tunegate.evaluate.inject_into_passages) but are not part of generative suites yet"
        )
    if not workflow.is_classify:
        suite_, notes_ = _freeze_generative(
            file,
            name,
            workflow,
            store,
            training,
            exact_only,
            drop_leaked,
            shape,
            preservation=preservation,
            preservation_per_slice=preservation_per_slice,
            preservation_seed=preservation_seed,
        )
        return _emit_generative(suite_, notes_, as_json=as_json)
    if shape is not None:
        raise InputError("--shape applies to answer and tool_call workflows")
    if preservation:
        raise InputError(
            "--preservation applies to answer and tool_call workflows; a classification "
            "suite's preservation slice is its labels without a data target, or rows with "
            "slice: preservation (docs/evaluation.md#suites)"
        )
    rows = read_suite_examples(file)
    training_texts = [e.text for e in store.examples()]
    for path in training or []:
        training_texts += [str(r["text"]) for r in _read_texts(path)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suite = freeze_suite(
            name,
            rows,
            workflow,
            training_texts=training_texts,
            near_duplicates=not exact_only,
            drop_leaked=drop_leaked,
        )
        rob = (
            _freeze_robustness(suite, workflow, store, perturbations, robustness_seed)
            if robustness
            else None
        )
    store.save_suite(suite)
    notes = [str(w.message) for w in caught]
    summary = _suite_summary(suite) | {
        "warnings": notes,
        "training_texts_checked": len(training_texts),
        "robustness": rob,
    }

    def human() -> None:
        out.print(
            f"froze suite {suite.name!r} ({suite.hash[:12]}): "
            + ", ".join(f"{k} {v}" for k, v in summary["slices"].items())
        )
        if rob is not None:
            out.print(
                f"froze robustness slice {rob['hash'][:12]}: {rob['examples']} perturbed "
                "examples ("
                + ", ".join(f"{k} {v}" for k, v in rob["per_perturbation"].items())
                + ")"
            )
        for note in notes:
            out.print(f"[yellow]warning:[/yellow] {note}")

    emit(summary, as_json=as_json, human=human)


def _freeze_robustness(
    suite: EvalSuite,
    workflow: Workflow,
    store: Store,
    perturbations: str | None,
    seed: int,
) -> dict[str, Any]:
    """Freeze and store the suite's robustness slice (keyword stuffing with the confirmed
    findings' terms); its summary."""
    from tunegate.documents import Finding
    from tunegate.evaluate import freeze_robustness_slice, save_robustness_slice

    names = (
        [n.strip() for n in perturbations.split(",") if n.strip()]
        if perturbations is not None
        else None
    )
    findings = [f for _, f in store.documents(Finding).items()]
    rslice = freeze_robustness_slice(suite, workflow, findings=findings, names=names, seed=seed)
    save_robustness_slice(store, rslice)
    per = {n: sum(e.perturbation == n for e in rslice.examples) for n in rslice.perturbations}
    return {
        "hash": rslice.hash,
        "seed": rslice.seed,
        "examples": len(rslice.examples),
        "per_perturbation": per,
        "stuffing_terms": rslice.stuffing_terms,
    }


def _freeze_generative(
    file: Path,
    name: str,
    workflow: Workflow,
    store: Store,
    training: list[Path] | None,
    exact_only: bool,
    drop_leaked: bool,
    shape: str | None,
    *,
    preservation: bool = False,
    preservation_per_slice: int = 10,
    preservation_seed: int = 0,
) -> tuple[GenerativeSuite, list[str]]:
    """Read, freeze and store a generative suite: (the suite, its warnings), with the
    packaged preservation set when ``preservation``."""
    from tunegate.evaluate import freeze_generative_suite, save_generative_suite
    from tunegate.io import read_generative, stored_generative_examples

    examples, problems = read_generative(file, workflow=workflow, shape=shape)
    if problems:
        shown = "; ".join(str(p) for p in problems[:5])
        raise InputError(
            f"{file}: {len(problems)} rows cannot become suite examples (a suite is frozen "
            f"whole): {shown}"
        )
    training_texts = [e.input for e in stored_generative_examples(store)]
    training_texts += [e.text for e in store.examples()]
    for path in training or []:
        training_texts += [str(r["text"]) for r in _read_texts(path)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        suite = freeze_generative_suite(
            name,
            examples,
            workflow,
            training_texts=training_texts,
            near_duplicates=not exact_only,
            drop_leaked=drop_leaked,
            preservation=preservation,
            preservation_per_slice=preservation_per_slice,
            preservation_seed=preservation_seed,
        )
    save_generative_suite(store, suite)
    return suite, [str(w.message) for w in caught]


def _generative_summary(suite: GenerativeSuite) -> dict[str, Any]:
    return {
        "name": suite.name,
        "kind": suite.kind,
        "hash": suite.hash,
        "examples": len(suite.examples),
        "slices": {
            s.value: len(suite.slice_examples(s))
            for s in SuiteSlice
            if s is not SuiteSlice.OUT_OF_SCOPE
        },
        "created_at": suite.created_at.isoformat(),
    }


def _emit_generative(suite: GenerativeSuite, notes: list[str], *, as_json: bool) -> None:
    summary = _generative_summary(suite) | {"warnings": notes}

    def human() -> None:
        out.print(
            f"froze {suite.kind} suite {suite.name!r} ({suite.hash[:12]}): "
            + ", ".join(f"{k} {v}" for k, v in summary["slices"].items())
        )
        for note in notes:
            out.print(f"[yellow]warning:[/yellow] {note}")

    emit(summary, as_json=as_json, human=human)


def _read_texts(path: Path) -> list[dict[str, Any]]:
    from tunegate.evaluate import read_suite_examples

    try:
        return read_suite_examples(path)
    except InputError:
        if path.suffix.lower() in (".txt",):
            return [{"text": t} for t in path.read_text(encoding="utf-8").splitlines() if t]
        raise


def _suite_summary(suite: EvalSuite) -> dict[str, Any]:
    tags: dict[str, int] = {}
    for e in suite.examples:
        for t in e.tags:
            tags[t] = tags.get(t, 0) + 1
    return {
        "name": suite.name,
        "hash": suite.hash,
        "examples": len(suite.examples),
        "slices": {s.value: len(suite.slice_examples(s)) for s in SuiteSlice},
        "named_slices": tags,
        "created_at": suite.created_at.isoformat(),
    }


@suite_app.command("show")
def suite_show(
    name: Annotated[str, typer.Argument(help="Suite name or hash.")],
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Show a stored suite's slices, named slices and robustness slice."""
    from tunegate.evaluate import get_robustness_slice, suite_size_warnings

    workflow = load(config)
    if not workflow.is_classify:
        from tunegate.evaluate import get_generative_suite

        found = get_generative_suite(store_for(workflow, config), name)
        return _emit_generative(found, [], as_json=as_json)
    store = store_for(workflow, config)
    suite = store.get_suite(name)
    rslice = get_robustness_slice(store, suite.hash)
    summary = _suite_summary(suite) | {
        "warnings": suite_size_warnings(suite, workflow),
        "robustness": (
            None
            if rslice is None
            else {
                "hash": rslice.hash,
                "seed": rslice.seed,
                "examples": len(rslice.examples),
                "perturbations": rslice.perturbations,
                "stuffing_terms": rslice.stuffing_terms,
            }
        ),
    }

    def human() -> None:
        out.print(f"suite {suite.name!r} {suite.hash[:12]}: {len(suite.examples)} examples")
        for k, v in summary["slices"].items():
            out.print(f"  {k:13s} {v}")
        for k, v in summary["named_slices"].items():
            out.print(f"  #{k:12s} {v}")
        if rslice is not None:
            out.print(
                f"  robustness slice {rslice.hash[:12]}: {len(rslice.examples)} perturbed "
                f"examples ({', '.join(rslice.perturbations)})"
            )
        for w in summary["warnings"]:
            out.print(f"[yellow]warning:[/yellow] {w}")

    emit(summary, as_json=as_json, human=human)


def _build_model(spec: str, workflow: Workflow, store: Store) -> Any:
    from tunegate.models import backends, build_classifier

    if spec in ("knn", "llm"):
        return build_classifier(spec, workflow, store=store)
    if spec in backends() or spec.startswith("lora:"):
        return buildable(spec, workflow)
    try:
        mv = store.get_model_version(spec)
    except NotFoundError:
        raise InputError(
            f"unknown model {spec!r}; use zero-shot, knn, rules, lora:PATH or a "
            f"registered model version id (tunegate models list)"
        ) from None
    kind = ModelKind(mv.kind)
    if kind == ModelKind.ZERO_SHOT:
        return buildable("zero-shot", workflow)
    if kind == ModelKind.RETRIEVAL:
        return build_classifier("knn", workflow, store=store)
    if kind == ModelKind.RULES:
        return buildable("rules", workflow)
    if kind == ModelKind.LORA and mv.artifact_path:
        return buildable(f"lora:{mv.artifact_path}", workflow)
    raise InputError(f"model version {spec!r} of kind {kind.value} cannot be evaluated here")


def eval_cmd(
    model: Annotated[str, typer.Argument(help="zero-shot | knn | rules | lora:PATH | version id")],
    suite: Annotated[str, typer.Option("--suite", help="Stored suite name or hash.")],
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", help="Also write the EvalRun as JSON to this file.")
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Bootstrap seed.")] = None,
    executor: ExecutorOpt = None,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a model on a frozen suite and store the EvalRun (with the suite's robustness
    slice scored, when it has one)."""
    from tunegate.evaluate import attach_robustness, get_robustness_slice, run_eval
    from tunegate.report import run_html

    workflow = load(config)
    store = store_for(workflow, config)
    the_suite = store.get_suite(suite)
    clf = _build_model(model, workflow, store)
    with closing(executor_for(workflow, config, executor)) as runner:
        run = run_eval(clf, the_suite, workflow, seed=seed, executor=runner)
    rslice = get_robustness_slice(store, the_suite.hash)
    if rslice is not None:
        run = attach_robustness(run, clf, rslice, workflow)
    store.save_eval_run(run)
    if report is not None:
        report.write_text(run_html(run, the_suite), encoding="utf-8")
    if output is not None:
        output.write_text(run.model_dump_json(indent=2), encoding="utf-8")
    m = run.metrics
    rob_summary: dict[str, Any] | None = m["robustness"]["summary"] if "robustness" in m else None
    summary = {
        "run": run.id,
        "model_version": run.model_version,
        "suite": the_suite.name,
        "overall": {
            k: m["overall"][k] for k in ("accuracy", "macro_f1", "expected_calibration_error")
        },
        "slices": {s: m["slices"][s]["accuracy"] for s in m["slices"]},
        "robustness": rob_summary,
        "report": str(report) if report else None,
    }

    def human() -> None:
        from tunegate.report import fmt_interval, robustness_rows

        out.print(f"run {run.id}: {run.model_version} on {the_suite.name}")
        for key in ("accuracy", "macro_f1", "expected_calibration_error"):
            out.print(f"  {key:28s} {fmt_interval(m['overall'][key])}")
        for s, tbl in m["slices"].items():
            out.print(f"  {s + ' accuracy':28s} {fmt_interval(tbl['accuracy'])} (n={tbl['n']})")
        if rob_summary:
            out.print("  robustness slice:")
            for figure, which, n, value in robustness_rows(rob_summary):
                out.print(f"    {figure:38s} {which:22s} {value} (n={n})")
        if report:
            out.print(f"report: {report}")

    emit(summary, as_json=as_json, human=human)


def _load_run(ref: str, store: Store) -> EvalRun:
    path = Path(ref)
    if path.suffix == ".json" and path.exists():
        return EvalRun.model_validate_json(path.read_text(encoding="utf-8"))
    return store.get_eval_run(ref)  # type: ignore[no-any-return]


def _run_model(run: EvalRun, workflow: Workflow, store: Store) -> Any:
    """The classifier of a run's registered model version (for ``--measure-latency``)."""
    from tunegate.models import load_model_version

    try:
        mv = store.get_model_version(run.model_version)
    except NotFoundError:
        raise InputError(
            f"run {run.id}'s model {run.model_version!r} is not a registered model version, "
            f"so it cannot be timed; register it (tunegate models register) or drop "
            f"--measure-latency"
        ) from None
    return load_model_version(mv, workflow, store=store)


def compare_cmd(
    baseline: Annotated[str, typer.Argument(help="Baseline EvalRun id (or .json file).")],
    candidate: Annotated[str, typer.Argument(help="Candidate EvalRun id (or .json file).")],
    markdown: Annotated[
        Path | None,
        typer.Option("--markdown", help="Write a Markdown summary (for a pull-request comment)."),
    ] = None,
    report: Annotated[Path | None, typer.Option("--report", help="Write an HTML report.")] = None,
    measure_latency: Annotated[
        bool,
        typer.Option(
            "--measure-latency",
            help="Load both runs' registered model versions and time them side by side on "
            "the suite's texts; without it the verdict does not judge latency.",
        ),
    ] = False,
    config: ConfigOpt = DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Compare two runs on the same suite; exit code 0 pass, 1 fail, 2 inconclusive."""
    from tunegate.evaluate import compare_runs, measure_latency_on_suite
    from tunegate.report import comparison_html, verdict_markdown

    workflow = load(config)
    store = store_for(workflow, config)
    base, cand = _load_run(baseline, store), _load_run(candidate, store)
    suite = store.get_suite(base.suite_hash)
    latency = None
    if measure_latency:
        latency = measure_latency_on_suite(
            _run_model(base, workflow, store), _run_model(cand, workflow, store), suite, workflow
        )
    comparison = compare_runs(base, cand, suite, workflow, latency=latency)
    verdict = comparison.verdict
    text = verdict_markdown(verdict, comparison)
    if markdown is not None:
        markdown.write_text(text, encoding="utf-8")
    if report is not None:
        report.write_text(comparison_html(comparison, base, cand, suite), encoding="utf-8")
    if as_json:
        payload = verdict.model_dump(mode="json")
        payload["latency"] = latency.to_dict() if latency is not None else None
        rob = comparison.robustness
        payload["robustness"] = rob.to_dict() if rob is not None else None
        typer.echo(json.dumps(payload, indent=2))
    else:
        out.print(text, markup=False, highlight=False)
    raise typer.Exit(verdict.exit_code)


def probe_cmd(
    dataset: Annotated[str, typer.Argument(help="The probe task: banking77.")] = "banking77",
    encoder: Annotated[
        str | None,
        typer.Option(
            "--encoder",
            help="Encoder folder to probe, or a LoRA artifact (its merged encoder is probed; "
            "written once to ARTIFACT/merged). Default: the shipped encoder.",
        ),
    ] = None,
    baseline_encoder: Annotated[
        str | None,
        typer.Option(
            "--baseline-encoder",
            help="Also probe this encoder (or LoRA artifact) and compare (before vs after).",
        ),
    ] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="BANKING77 folder.")] = Path(
        "../shared/data/banking77"
    ),
    train_per_class: Annotated[int, typer.Option(help="Training texts per intent.")] = 20,
    test_per_class: Annotated[int, typer.Option(help="Test texts per intent.")] = 10,
    seed: Annotated[int, typer.Option(help="Subsample and bootstrap seed.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """kNN probe of an encoder on BANKING77 (external capability preservation)."""
    from tunegate.config import ModelSettings
    from tunegate.evaluate import compare_probes, preservation_probe, probe_encoder_folder
    from tunegate.models import get_encoder

    if dataset != "banking77":
        raise InputError(f"unknown probe dataset {dataset!r}; available: banking77")
    if encoder is not None:
        encoder = probe_encoder_folder(encoder)
    if baseline_encoder is not None:
        baseline_encoder = probe_encoder_folder(baseline_encoder)
    kw = {"train_per_class": train_per_class, "test_per_class": test_per_class, "seed": seed}
    after = preservation_probe(get_encoder(ModelSettings(encoder=encoder)), data_dir, **kw)
    payload: dict[str, Any] = {
        "dataset": dataset,
        "encoder": encoder or "default",
        "accuracy": after.interval.to_dict(),
        "n_test": after.n_test,
        "n_train": after.n_train,
        "k": after.k,
    }
    if baseline_encoder is not None:
        before = preservation_probe(
            get_encoder(ModelSettings(encoder=baseline_encoder)), data_dir, **kw
        )
        cmp = compare_probes(before, after, seed=seed)
        payload |= {
            "baseline_accuracy": before.interval.to_dict(),
            "drop": cmp.drop.to_dict(),
            "within_noise": cmp.within_noise,
            "mcnemar_p": cmp.mcnemar.p_value,
        }

    def human() -> None:
        from tunegate.report import fmt_interval

        out.print(
            f"{dataset} kNN probe ({after.n_test} test / {after.n_train} train texts): "
            f"accuracy {fmt_interval(after.interval)}"
        )
        if "drop" in payload:
            out.print(
                f"drop vs baseline encoder: {fmt_interval(payload['drop'])}"
                f"{' (within noise)' if payload['within_noise'] else ''}"
            )

    emit(payload, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.add_typer(suite_app, name="suite")
    app.command("eval")(eval_cmd)
    app.command("compare")(compare_cmd)
    app.command("probe")(probe_cmd)
