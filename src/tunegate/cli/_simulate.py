"""``tunegate simulate``: write (and optionally ingest) the service-desk scenario."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for

__all__ = ["register"]


def simulate_cmd(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the output files.")],
    weeks: Annotated[int, typer.Option("--weeks", min=1, help="Production weeks.")] = 12,
    rollout_week: Annotated[
        int, typer.Option("--rollout-week", min=0, help="First week (0-based) with MFA.")
    ] = 6,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Random seed (part of every id).")] = 7,
    tickets_per_week: Annotated[
        int | None, typer.Option("--tickets-per-week", min=1, help="Mean production volume.")
    ] = None,
    ingest: Annotated[
        bool, typer.Option("--ingest", help="Also load the files into the store of -c.")
    ] = False,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Simulate a service desk with an MFA rollout; the pre-rollout zero-shot model serves it."""
    from tunegate.config import parse_workflow, starter_yaml
    from tunegate.simulate import SimConfig, ingest_simulation, simulate

    workflow = load(config) if (ingest or config.exists()) else parse_workflow(starter_yaml())
    extra = {"tickets_per_week": tickets_per_week} if tickets_per_week is not None else {}
    sim_config = SimConfig(weeks=weeks, rollout_week=rollout_week, seed=seed, **extra)
    result = simulate(sim_config, out_dir, workflow=workflow)
    payload: dict[str, object] = {
        "out_dir": str(out_dir),
        "champion_version": result.champion_version,
        "counts": result.counts,
        "files": {key: str(path) for key, path in result.files.items()},
        "summary": {k: v for k, v in result.summary.items() if k != "weekly"},
        "weekly_r2": [w["overrides"]["R2"] for w in result.summary["weekly"]],
    }
    if ingest:
        reports = ingest_simulation(store_for(workflow, config), out_dir, workflow=workflow)
        payload["ingested"] = [r.model_dump(mode="json") for r in reports]

    def human() -> None:
        s = result.summary
        out.print(f"wrote {out_dir}: {result.counts}")
        out.print(
            f"champion {result.champion_version}: pre-rollout accuracy "
            f"{s['accuracy_pre_rollout']}, MFA security-incident FNR "
            f"{s['mfa_security_incident_fnr']}"
        )
        out.print(f"weekly R2 overrides: {payload['weekly_r2']}")
        if ingest:
            out.print(
                "ingested into the store: "
                + ", ".join(f"{r.kind} {Path(r.file).name} +{r.added}" for r in reports)
            )

    emit(payload, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("simulate")(simulate_cmd)
