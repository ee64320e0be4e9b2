"""``tunegate models list|show|history``, ``promote``, ``rollback`` and ``aliases``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for
from tunegate.config import Workflow
from tunegate.errors import InputError

if TYPE_CHECKING:
    from tunegate.registry import Registry
    from tunegate.store import Store

__all__ = ["register"]

models_app = typer.Typer(help="Registered model versions and their lineage.", no_args_is_help=True)


def _registry(config: Path) -> tuple[Workflow, Registry]:
    from tunegate.registry import Registry

    workflow = load(config)
    return workflow, Registry(store_for(workflow, config))


@models_app.command("list")
def models_list(config: ConfigOpt = Path("tunegate.yaml"), as_json: JsonOpt = False) -> None:
    """Every registered version, oldest first, with its aliases."""
    _, reg = _registry(config)
    aliases = reg.aliases()
    rows = [
        {
            "id": mv.id,
            "kind": mv.kind.value,
            "status": mv.status.value,
            "parent": mv.parent,
            "dataset": mv.training_data_hash,
            "aliases": [a for a, v in aliases.items() if v == mv.id],
            "created_at": mv.created_at.isoformat(),
        }
        for mv in reg.versions()
    ]

    def human() -> None:
        for r in rows:
            tag = f" [bold]({', '.join(r['aliases'])})[/bold]" if r["aliases"] else ""
            out.print(f"{r['id']}{tag}  {r['kind']}  {r['status']}  parent={r['parent']}")

    emit(rows, as_json=as_json, human=human)


@models_app.command("show")
def models_show(
    version: Annotated[str, typer.Argument(help="Model version id.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """One version with its lineage (parent chain) and configuration."""
    _, reg = _registry(config)
    chain = reg.lineage(version)
    payload = {"version": chain[0].model_dump(mode="json"), "lineage": [mv.id for mv in chain]}

    def human() -> None:
        mv = chain[0]
        out.print(f"{mv.id}  {mv.kind.value}  {mv.status.value}")
        out.print(f"  artifact: {mv.artifact_path}  dataset: {mv.training_data_hash}")
        out.print(f"  lineage: {' <- '.join(payload['lineage'])}")

    emit(payload, as_json=as_json, human=human)


@models_app.command("history")
def models_history(
    alias: Annotated[str | None, typer.Option("--alias", help="Only this alias.")] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """The full alias history: who pointed which alias where, when and why."""
    _, reg = _registry(config)
    rows = [
        {
            "alias": e.alias,
            "version": e.version_id,
            "previous": e.previous,
            "actor": e.actor,
            "reason": e.reason,
            "at": e.at.isoformat(),
        }
        for e in reg.history(alias)
    ]

    def human() -> None:
        for r in rows:
            out.print(
                f"{r['at']}  {r['alias']}: {r['previous']} -> {r['version']}  "
                f"by {r['actor']}  {r['reason']}"
            )

    emit(rows, as_json=as_json, human=human)


def aliases_cmd(config: ConfigOpt = Path("tunegate.yaml"), as_json: JsonOpt = False) -> None:
    """Where champion and candidate point now."""
    _, reg = _registry(config)
    aliases = reg.aliases()

    def human() -> None:
        for name, version in aliases.items():
            out.print(f"{name}: {version}")

    emit(aliases, as_json=as_json, human=human)


def _mlflow_alias(workflow: Workflow, store: Store, version: str) -> None:
    if not workflow.mlflow_tracking_uri:
        return
    from tunegate.documents import MlflowRun

    exported = store.documents(MlflowRun).get(version)
    if exported is not None:
        from tunegate.mlflow_export import set_alias

        set_alias(workflow, "champion", exported.run_id)


def promote_cmd(
    version: Annotated[str, typer.Argument(help="Model version to make champion.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    force: Annotated[bool, typer.Option("--force", help="Override a non-passing Verdict.")] = False,
    reason: Annotated[str, typer.Option("--reason", help="Why (required with --force).")] = "",
    actor: Annotated[str, typer.Option("--actor", help="Who is promoting.")] = "cli",
    from_attempt: Annotated[
        str | None,
        typer.Option(
            "--from-attempt",
            metavar="ATTEMPT",
            help="Register the cheap fix of this Attempt (instructions or retrieval) as VERSION "
            "first: what `tunegate finetune` suggests when the cheap fix is enough.",
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Point champion at VERSION; refused unless its Verdict against the champion passed."""
    workflow, reg = _registry(config)
    if from_attempt is not None:
        from tunegate.diagnose import register_cheap_fix

        found = [a for a in reg.store.attempts() if a.id == from_attempt]
        if not found:
            raise InputError(
                f"no attempt {from_attempt!r} in the store; `tunegate runs` and "
                "`tunegate gate --json` list the attempts"
            )
        attempt = found[0]
        if attempt.candidate_version != version:
            raise InputError(
                f"attempt {from_attempt} evaluated {attempt.candidate_version}, not {version}; "
                f"run `tunegate promote {attempt.candidate_version} --from-attempt {from_attempt}`"
            )
        if workflow.is_classify:  # a generative fix's version was registered when tried
            register_cheap_fix(reg.store, workflow, attempt, actor=actor)
    result = reg.promote(version, actor=actor, force=force, reason=reason)
    _mlflow_alias(workflow, reg.store, version)
    emit(
        result.to_dict(),
        as_json=as_json,
        human=lambda: out.print(
            f"champion: {result.previous} -> [bold]{result.version_id}[/bold] ({result.reason})"
        ),
    )


def rollback_cmd(
    config: ConfigOpt = Path("tunegate.yaml"),
    reason: Annotated[str, typer.Option("--reason", help="Why (recorded).")] = "",
    actor: Annotated[str, typer.Option("--actor", help="Who is rolling back.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Restore the previous champion in one step (artifacts are not touched)."""
    workflow, reg = _registry(config)
    result = reg.rollback(actor=actor, reason=reason)
    _mlflow_alias(workflow, reg.store, result.version_id)
    emit(
        result.to_dict(),
        as_json=as_json,
        human=lambda: out.print(
            f"champion rolled back: {result.previous} -> [bold]{result.version_id}[/bold]"
        ),
    )


def register(app: typer.Typer) -> None:
    app.add_typer(models_app, name="models")
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("aliases")(aliases_cmd)
