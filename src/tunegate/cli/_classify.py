"""``tunegate classify``: score tickets, route them, write Decisions to JSONL and the store.

Input (a file, or ``-`` for stdin) is either JSONL of tickets or plain text, one ticket per
line, read by :func:`tunegate.io.parse_tickets` (formats and defaults documented there). Every
row is validated before any model runs; bad rows stop the command with their line numbers, or
are skipped and listed with ``--skip-invalid``. Texts longer than ``model.max_length`` tokens are
truncated, counted and warned about once. Decisions are written batch by batch (JSONL
appended and flushed, store committed), so a failure in the middle keeps every finished batch.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import numpy as np
import typer
from rich.markup import escape

from tunegate.cli._common import (
    ConfigOpt,
    ExecutorOpt,
    JsonOpt,
    buildable,
    emit,
    err,
    executor_for,
    existing_store,
    load,
    out,
    store_for,
)
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.records import Decision

if TYPE_CHECKING:
    from tunegate.models import Classifier
    from tunegate.store import Store

__all__ = ["register"]

_SHOWN = 10


def _build(
    model: str | None, workflow: Workflow, store: Store | None
) -> tuple[Classifier, str | None, str]:
    """(classifier, registered version id or None, description)."""
    from tunegate.models import build_classifier
    from tunegate.serving import load_champion

    if model in (None, "champion"):
        serving = load_champion(workflow, store, fallback=model is None)
        if serving.version_id is not None and store is not None:
            from tunegate.execute import ModelRecipe, attach_recipe
            from tunegate.models import load_model_version

            mv = store.get_model_version(serving.version_id)
            attach_recipe(serving.classifier, ModelRecipe(load_model_version, (mv, workflow)))
        return serving.classifier, serving.version_id, serving.description
    if model == "knn":
        if store is None:
            raise InputError(
                "--model knn reads reviewed examples from the store, and there is none yet; "
                "ingest examples first (`tunegate ingest examples FILE`)"
            )
        clf = build_classifier("knn", workflow, store=store)
        return clf, None, "knn"
    return buildable(model, workflow), None, model


def _truncated(clf: Any) -> int:
    total = 0
    for part in [clf, getattr(clf, "encoder", None)]:
        total += int(getattr(part, "truncated_total", 0) or 0)
    return total


def _explain(decision: Decision, workflow: Workflow) -> dict[str, Any]:
    from tunegate.routing import explain_route

    labels = workflow.label_names
    row = np.array(decision.proba_vector(labels))
    top = np.argsort(-row, kind="stable")[:3]
    why = explain_route(row, labels, workflow.routing)
    if decision.rule_hits:
        hit = decision.rule_hits[0]
        why = f"rule {hit.rule!r} matched {hit.matched} -> {hit.label}; {why}"
    return {
        "ticket_id": decision.ticket_id,
        "label": decision.label,
        "top": [(labels[i], round(float(row[i]), 4)) for i in top],
        "h_norm": round(decision.h_norm, 4),
        "route": decision.route.value,
        "why": why,
    }


def classify(
    source: Annotated[
        str, typer.Argument(metavar="FILE|-", help="JSONL of tickets or plain lines; - for stdin.")
    ],
    config: ConfigOpt = Path("tunegate.yaml"),
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="zero-shot | knn | rules | lora:PATH | champion (default: the champion if one is "
            "registered, else zero-shot).",
        ),
    ] = None,
    out_path: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", help="Write Decisions here as JSONL (appended batch by batch)."
        ),
    ] = None,
    use_store: Annotated[
        bool,
        typer.Option(
            "--store/--no-store",
            help="Also save tickets and decisions in the store (--no-store still reads the "
            "registry's champion from it).",
        ),
    ] = True,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Show top classes, entropy and why each route was chosen."),
    ] = False,
    skip_invalid: Annotated[
        bool,
        typer.Option("--skip-invalid", help="Skip (and list) invalid rows instead of stopping."),
    ] = False,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Tickets per write.")] = 256,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Classify and route tickets; write Decisions to JSONL and the store."""
    from tunegate._progress import track
    from tunegate.io import parse_tickets
    from tunegate.serving import TicketClassifier

    workflow = load(config)
    tickets, problems, blank = parse_tickets(source, id_prefix=workflow.id_prefix)
    if problems and not skip_invalid:
        shown = "; ".join(f"line {n}: {why}" for n, why in problems[:_SHOWN])
        more = f" (and {len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise InputError(
            f"{source}: {len(problems)} invalid rows: {shown}{more}; fix them or "
            f"pass --skip-invalid to classify the rest"
        )
    if not tickets:
        raise InputError(f"{source}: no tickets to classify (blank lines: {blank})")
    # --no-store means "do not write": the registry (champion) and the reviewed examples (knn)
    # are still read from the store when it exists.
    store = store_for(workflow, config) if use_store else existing_store(workflow, config)
    clf, version_id, described = _build(model, workflow, store)
    classifier = TicketClassifier(
        workflow, clf, version=version_id, store=store if use_store else None
    )
    if out_path is not None:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text("", encoding="utf-8")
    routes: Counter[str] = Counter()
    explanations: list[dict[str, Any]] = []
    decisions_all: list[Decision] = []
    written = 0
    chunks = [tickets[i : i + batch] for i in range(0, len(tickets), batch)]
    with closing(executor_for(workflow, config, executor)) as runner:
        decided = classifier.decide_batches(chunks, runner)
        for chunk in track(chunks, description="classifying"):
            decisions = next(decided)
            if out_path is not None:
                with out_path.open("a", encoding="utf-8") as handle:
                    for d in decisions:
                        handle.write(d.model_dump_json() + "\n")
                    handle.flush()
            classifier.log(chunk, decisions)
            written += len(decisions)
            routes.update(d.route.value for d in decisions)
            if explain:
                explanations.extend(_explain(d, workflow) for d in decisions)
            if out_path is None:
                decisions_all.extend(decisions)
    summary: dict[str, Any] = {
        "model": described,
        "model_version": classifier.version,
        "decisions": written,
        "routes": dict(routes),
        "truncated": _truncated(clf),
        "skipped_invalid": len(problems),
        "blank_lines": blank,
        "out": str(out_path) if out_path else None,
        "stored": use_store,
    }
    if problems:
        summary["invalid_rows"] = [{"line": n, "reason": why} for n, why in problems]
    if explain:
        summary["explanations"] = explanations
    if out_path is None:
        summary["decision_records"] = decisions_all

    def human() -> None:
        if explain:
            for e in explanations:
                tops = ", ".join(f"{y} {p:.2f}" for y, p in e["top"])
                out.print(
                    f"[bold]{escape(e['ticket_id'])}[/bold] -> {e['label']} \\[{e['route']}] "
                    f"H_norm={e['h_norm']:.3f} | {tops}\n    {escape(e['why'])}",
                    highlight=False,
                )
        elif out_path is None:
            for d in decisions_all:
                out.print(
                    f"{d.ticket_id}\t{d.label}\t{d.confidence:.3f}\t{d.route.value}",
                    highlight=False,
                    markup=False,
                )
        for n, why in problems[:_SHOWN]:
            err.print(f"skipped line {n}: {why}", highlight=False, markup=False)
        parts = ", ".join(f"{k} {v}" for k, v in sorted(routes.items()))
        where = f" -> {out_path}" if out_path else ""
        stored = " (and the store)" if store is not None else ""
        err.print(
            f"{written} decisions by {described} [{classifier.version}]{where}{stored}: "
            f"{parts}; truncated {summary['truncated']}",
            highlight=False,
            markup=False,
        )

    emit(summary, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("classify")(classify)
