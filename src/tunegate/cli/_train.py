"""``tunegate dataset build``, ``tunegate label-issues`` and ``tunegate finetune``."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    emit,
    executor_for,
    load,
    out,
    store_for,
)

__all__ = ["register"]

dataset_app = typer.Typer(help="Build training datasets from reviewed data.", no_args_is_help=True)


@dataset_app.command("build")
def dataset_build(
    config: ConfigOpt = Path("tunegate.yaml"),
    suite: Annotated[
        list[str] | None,
        typer.Option("--suite", help="Frozen suite to exclude (repeatable; default: all stored)."),
    ] = None,
    include_unreviewed: Annotated[
        bool, typer.Option("--include-unreviewed", help="Train on pending examples too.")
    ] = False,
    allow_shortfall: Annotated[
        bool, typer.Option("--allow-shortfall", help="Report unmet data targets, do not fail.")
    ] = False,
    replay_ratio: Annotated[
        float | None, typer.Option("--replay-ratio", min=0.0, help="Replayed per new example.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the replay sample.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Build, hash and store the training dataset from reviewed overrides and examples."""
    from tunegate.train import build_dataset

    workflow = load(config)
    store = store_for(workflow, config)
    ds = build_dataset(
        store,
        workflow,
        suites=tuple(suite or ()),
        include_unreviewed=include_unreviewed,
        replay_ratio=replay_ratio,
        seed=seed,
        allow_shortfall=allow_shortfall,
    )
    ds.save(store)
    payload = {
        "hash": ds.hash,
        "manifest": ds.manifest,
        "targets": ds.target_report,
        "leakage": {k: v for k, v in ds.leakage_report.items() if k != "examples"},
        "dedup": {k: v for k, v in ds.dedup_report.items() if k not in ("exact", "near")},
    }

    def human() -> None:
        m = ds.manifest
        out.print(
            f"dataset [bold]{ds.hash[:12]}[/bold]: {m['n_examples']} examples "
            f"({m['n_new']} new, {m['n_replay']} replayed)"
        )
        out.print(f"  per class: {m['per_class']}")
        for row in ds.target_report:
            out.print(f"  target {row['message']}")
        lk, dd = ds.leakage_report, ds.dedup_report
        out.print(
            f"  excluded for suite overlap: {lk['excluded']} ({lk['exact']} exact, "
            f"{lk['near']} near); duplicates removed: {dd['exact_removed']} exact, "
            f"{dd['near_removed']} near"
        )
        out.print(
            f"next: tunegate label-issues {ds.hash[:12]}   or   "
            f"tunegate finetune {ds.hash[:12]} --out adapters/NAME"
        )

    emit(payload, as_json=as_json, human=human)


def label_issues_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset hash (or a unique prefix).")],
    config: ConfigOpt = Path("tunegate.yaml"),
    folds: Annotated[int, typer.Option("--folds", min=2, help="Cross-validation folds.")] = 5,
    drop_flagged: Annotated[
        bool, typer.Option("--drop-flagged", help="Store a new dataset without flagged examples.")
    ] = False,
    show: Annotated[int, typer.Option("--show", min=0, help="Flagged examples to print.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Flag likely mislabelled examples (confident learning on out-of-fold probabilities)."""
    from tunegate.documents import LabelIssues
    from tunegate.models import get_encoder
    from tunegate.train import label_issues, load_dataset

    workflow = load(config)
    store = store_for(workflow, config)
    ds = load_dataset(store, dataset)
    report = label_issues(
        ds.examples, workflow.label_names, encoder=get_encoder(workflow.model), n_folds=folds
    )
    summary = report.summary()
    store.documents(LabelIssues).put(ds.hash, LabelIssues.model_validate(summary))
    if drop_flagged:
        clean = ds.without(report.flagged_ids, reason="label_issues")
        clean.save(store)
        summary["clean_dataset"] = clean.hash

    def human() -> None:
        out.print(
            f"{len(report.issues)} of {report.n_examples} examples flagged "
            f"(out-of-fold accuracy {report.oof_accuracy:.3f}, {report.n_folds} folds)"
        )
        for issue in report.issues[:show]:
            out.print(
                f"  {issue.id}: given {issue.given_label!r}, suggested "
                f"{issue.suggested_label!r} (p={issue.self_confidence:.2f}) "
                f"{issue.text[:70]!r}"
            )
        if drop_flagged:
            out.print(f"stored dataset without them: {summary['clean_dataset'][:12]}")

    emit(summary, as_json=as_json, human=human)


def finetune_cmd(
    dataset: Annotated[str, typer.Argument(help="Dataset hash (or a unique prefix).")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the adapter(s).")],
    config: ConfigOpt = Path("tunegate.yaml"),
    seeds: Annotated[
        int | None, typer.Option("--seeds", min=1, help="Adapters to train (default: workflow).")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="First seed.")] = 0,
    epochs: Annotated[int | None, typer.Option("--epochs", min=1, help="Max epochs.")] = None,
    resume: Annotated[
        bool, typer.Option("--resume/--no-resume", help="Resume checkpoints.")
    ] = True,
    suite: Annotated[
        str | None,
        typer.Option("--suite", help="Evaluate the candidate against the champion on this suite."),
    ] = None,
    actor: Annotated[str, typer.Option("--actor", help="Who is training (audit log).")] = "cli",
    despite_gate: Annotated[
        str | None,
        typer.Option(
            "--despite-gate",
            metavar="REASON",
            help="Train although the fine-tuning gate is closed; the reason and the failed "
            "conditions are recorded in the audit log.",
        ),
    ] = None,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Train LoRA adapter(s), register the candidate, optionally evaluate it (Verdict).

    Runs only when the fine-tuning gate is open (`tunegate gate`); a closed gate stops it
    with the failed conditions, unless --despite-gate gives a reason.
    """
    from tunegate.diagnose import require_open_gate
    from tunegate.train import load_dataset, run_finetune

    workflow = load(config)
    store = store_for(workflow, config)
    ds = load_dataset(store, dataset)
    gate = require_open_gate(store, workflow, despite=despite_gate, actor=actor)
    if not gate.open and not as_json:
        out.print(f"[yellow]training despite a closed gate[/yellow] ({despite_gate})")
    with closing(executor_for(workflow, config, executor)) as runner:
        outcome = run_finetune(
            store,
            workflow,
            ds,
            out_dir,
            seeds=seeds,
            base_seed=seed,
            resume=resume,
            epochs=epochs,
            suite=store.get_suite(suite) if suite is not None else None,
            actor=actor,
            executor=runner,
        )
    sweep, mv = outcome.sweep, outcome.candidate
    payload = outcome.to_dict()
    choice = None
    if outcome.candidate_run is not None and outcome.verdict is not None and suite is not None:
        # the fine-tune is held to the best cheap fix too, not only to the champion
        from tunegate.diagnose import choose_promotion, versus_best_cheap_fix

        versus = versus_best_cheap_fix(
            outcome.candidate_run,
            store.get_suite(suite),
            workflow,
            store.attempts(),
            store.get_eval_run,
        )
        choice = choose_promotion(mv.id, outcome.verdict, versus)
        payload["versus_cheap_fix"] = versus.to_dict() if versus is not None else None
        payload["promotion"] = choice.to_dict()

    def human() -> None:
        out.print(
            f"trained {len(sweep.artifacts)} adapter(s); candidate [bold]{mv.id}[/bold] "
            f"= seed {sweep.chosen_seed} (median validation macro-F1) at {sweep.chosen}"
        )
        for key in ("val_macro_f1", "val_accuracy", "ece_uncalibrated", "ece_calibrated"):
            if key in sweep.spread:
                s = sweep.spread[key]
                out.print(f"  {key}: mean {s['mean']:.4f}  std {s['std']:.4f}")
        if "verdict" in payload:
            out.print(
                f"verdict against champion {payload['champion']}: "
                f"[bold]{payload['verdict']}[/bold] (attempt {payload['attempt']})"
            )
            out.print(
                f"runs: champion {payload['baseline_run']}, candidate "
                f"{payload['candidate_run']} (`tunegate runs`; `tunegate compare "
                f"{payload['baseline_run']} {payload['candidate_run']}`)",
                highlight=False,
            )
            if choice is not None and choice.choice == "cheap fix" and choice.cheap_fix:
                out.print(f"[yellow]the cheap fix is enough[/yellow]: {choice.reason}")
                out.print(
                    f"next: tunegate promote {choice.version} --from-attempt "
                    f"{choice.cheap_fix.id}  (the {choice.cheap_fix.kind.value} fix, not the "
                    "fine-tune)",
                    highlight=False,
                )
            elif choice is not None and choice.version is None:
                out.print(f"not worth promoting: {choice.reason}")
            else:
                if choice is not None:
                    out.print(f"against the best cheap fix: {choice.reason}")
                out.print(f"next: tunegate promote {mv.id}")

    emit(payload, as_json=as_json, human=human)
    if "verdict" in payload and payload["verdict"] != "pass":
        raise typer.Exit(1 if payload["verdict"] == "fail" else 2)


def register(app: typer.Typer) -> None:
    app.add_typer(dataset_app, name="dataset")
    app.command("label-issues")(label_issues_cmd)
    app.command("finetune")(finetune_cmd)
