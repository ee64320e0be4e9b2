"""``tunegate demo``: the whole loop on the simulated service desk."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, cast

import typer

from tunegate.cli._common import JsonOpt, emit

SCENARIOS = ("service-desk", "support-answers")


def demo(
    scenario: Annotated[
        str,
        typer.Option(
            "--scenario",
            help="service-desk (the default: a classifier fine-tune that is the right fix) or "
            "support-answers (a generative fine-tune on historical answers that sounds better "
            "and is worse, caught before it ships; the cheap fixes win).",
        ),
    ] = "service-desk",
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the store, artifacts and reports.")
    ] = Path("tunegate-demo"),
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="Small volumes (service-desk: 2 seeds, under two minutes; support-answers: "
            "about 16 suite examples, 1 epoch, under three minutes). For tests.",
        ),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the simulation.")] = 7,
    seeds: Annotated[
        int | None, typer.Option(help="LoRA seeds (default 3; 2 with --quick).")
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(
            help="Weights of the champion and the candidate on ONNX Runtime: fp32 (the default; "
            "the same label for a ticket whatever its batch) or int8 (2-6x faster here; about "
            "1% of labels differ; the default with --quick)."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole loop on a simulated scenario and write report.html and summary.md.

    service-desk (default): simulates 12 weeks with an MFA rollout at week 6, diagnoses the
    misroutes, tries the cheap fixes first, runs the gate, fine-tunes a calibrated LoRA
    adapter over several seeds, compares it with the champion on three slices with confidence
    intervals, promotes it only on a passing verdict, monitors the weeks after deployment and
    names the next gap.

    support-answers: on the local LLM server, an IT policy knowledge base whose documents
    change month by month; the baseline answers with citations, a LoRA fine-tune on the
    reviewed historical answers is judged (and refused unless its verdict passes), the cheap
    fixes (freshness, top-k 5, reranking, abstention criteria) are tried as Attempts and the
    best passing one promoted; the following months are monitored.
    """
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"choose one of {', '.join(SCENARIOS)}", param_hint="--scenario")
    if scenario == "support-answers":
        if seeds is not None or precision is not None:
            raise typer.BadParameter(
                "--seeds and --precision apply to --scenario service-desk",
                param_hint="--seeds/--precision",
            )
        from tunegate.demo import SupportDemoConfig, run_support_demo

        support = SupportDemoConfig(out_dir=out, quick=quick, seed=seed)
        if as_json:
            emit(run_support_demo(support, log=lambda _msg: None).to_dict(), as_json=True)
        else:
            run_support_demo(support)
        return
    from tunegate.demo import DemoConfig, run_demo

    if precision not in (None, "int8", "fp32"):
        raise typer.BadParameter("choose int8 or fp32", param_hint="--precision")
    config = DemoConfig(
        out_dir=out,
        quick=quick,
        seed=seed,
        seeds=seeds,
        precision=cast(Literal["int8", "fp32"] | None, precision),
    )
    if as_json:
        result = run_demo(config, log=lambda _msg: None)
        emit(result.to_dict(), as_json=True)
    else:
        run_demo(config)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
