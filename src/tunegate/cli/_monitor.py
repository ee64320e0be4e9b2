"""``tunegate monitor`` and ``tunegate shadow``: production figures, triggers, shadow scoring."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

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
from tunegate.errors import InputError

_DEFAULT_CONFIG = Path("tunegate.yaml")


def _when(value: str | None, what: str) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(
            f"{what} must be an ISO date or time such as 2025-03-01, got {value!r}"
        ) from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _embedder(workflow: Any) -> Any:
    """The workflow's encoder as ``texts -> (n, d)``."""
    from tunegate.models import get_encoder

    encoder = get_encoder(workflow.model)
    return lambda texts: encoder.embed(list(texts))


def monitor(
    config: ConfigOpt = _DEFAULT_CONFIG,
    period: Annotated[str, typer.Option("--period", help="week (ISO weeks) or month.")] = "week",
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start of the figures (ISO date); default: the baseline start."
        ),
    ] = None,
    until: Annotated[str | None, typer.Option("--until", help="End (ISO date, exclusive).")] = None,
    auto_rollback: Annotated[
        bool, typer.Option("--auto-rollback", help="Roll the champion back when a trigger fires.")
    ] = False,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help="POST a JSON alert here when a trigger fires (default: rollback.webhook).",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="Write review.html and review.md into this folder."),
    ] = None,
    embeddings: Annotated[
        bool,
        typer.Option(
            "--embeddings/--no-embeddings", help="Measure embedding drift (loads the encoder)."
        ),
    ] = True,
    months: Annotated[
        list[str] | None,
        typer.Option(
            "--month",
            help="Answer/tool_call workflows: a month to report, YYYY-MM (repeatable; default: "
            "every month of the production log).",
        ),
    ] = None,
    reference_month: Annotated[
        str | None,
        typer.Option(
            "--reference-month",
            help="Answer workflows: the month the monthly triggers compare against (default: "
            "the month before the promotion, else the first month of the log).",
        ),
    ] = None,
    support_check: Annotated[
        bool,
        typer.Option(
            "--support-check/--no-support-check",
            help="Answer workflows: judge each answer's claims against the cited versions "
            "(loads the encoder).",
        ),
    ] = True,
    as_json: JsonOpt = False,
) -> None:
    """Weekly/monthly figures, input drift and rollback triggers; exit 1 when a trigger fires.

    On an answer/tool_call workflow: monthly figures of the production log (`tunegate ingest
    outputs`), weekly escalation and the generative rollback triggers.
    """
    from tunegate.monitor import act_on, next_gap_from_store, render_alert, run_monitor
    from tunegate.report import write_monitor_review as write

    if period not in ("week", "month"):
        raise InputError(f"--period must be 'week' or 'month', got {period!r}")
    workflow = load(config)
    if not workflow.is_classify:
        if since is not None or until is not None or report is not None:
            raise InputError(
                "--since, --until and --report apply to classify workflows; on an "
                f"{workflow.kind} workflow pick months with --month"
            )
        _monitor_generative(
            workflow,
            config,
            months=months,
            reference=reference_month,
            support_check=support_check,
            auto_rollback=auto_rollback,
            webhook=webhook,
            as_json=as_json,
        )
        return
    if months or reference_month is not None or not support_check:
        raise InputError(
            "--month, --reference-month and --no-support-check apply to answer and tool_call "
            "workflows; this workflow classifies (use --period, --since and --until)"
        )
    store = store_for(workflow, config)
    result = run_monitor(
        store,
        workflow,
        period=period,  # type: ignore[arg-type]
        since=_when(since, "--since"),
        until=_when(until, "--until"),
        embedder=_embedder(workflow) if embeddings else None,
    )
    alert = act_on(
        result, store, auto_rollback=auto_rollback, webhook=webhook or workflow.rollback.webhook
    )
    paths: list[str] = []
    if report is not None:
        gap = next_gap_from_store(
            store, workflow, model_version=result.champion, since=result.promoted_at
        )
        paths = [str(p) for p in write(result, report, gap=gap)]
    payload = result.to_dict() | {"report": paths}

    def human() -> None:
        table = Table(title=f"{workflow.name}: champion {result.champion}", header_style="bold")
        for col in (
            "period",
            "decisions",
            "override",
            "escalate",
            "clarify",
            "sel. acc.",
            "p50 ms",
            "drift",
        ):
            table.add_column(col)
        for p in result.periods:
            f = p.figures
            drift = ", ".join(
                f"{d.test}={d.score:.3g}{'!' if d.drifted else ''}"
                for d in result.drift.get(p.period, [])
            )
            table.add_row(
                p.period,
                str(f.n_decisions),
                _pct(f.override_rate),
                _pct(f.escalation_rate),
                _pct(f.clarify_rate),
                _pct(f.selective_accuracy),
                "-" if f.latency_p50 is None else f"{f.latency_p50:.1f}",
                drift,
            )
        out.print(table)
        for note in result.notes:
            out.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        if alert is not None:
            render_alert(alert, out)
        else:
            out.print("[green]no rollback trigger fired[/green]")
        for path in paths:
            out.print(f"wrote {path}")

    emit(payload, as_json=as_json, human=human)
    if alert is not None:
        raise typer.Exit(1)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _monitor_generative(
    workflow: Any,
    config: Path,
    *,
    months: list[str] | None,
    reference: str | None,
    support_check: bool,
    auto_rollback: bool,
    webhook: str | None,
    as_json: bool,
) -> None:
    """``tunegate monitor`` on an answer/tool_call workflow: a library call, then a table."""
    from tunegate.monitor import act_on, render_alert, run_generative_monitor

    store = store_for(workflow, config)
    try:
        result = run_generative_monitor(
            store, workflow, months=months, reference=reference, check_support=support_check
        )
        alert = act_on(
            result, store, auto_rollback=auto_rollback, webhook=webhook or workflow.rollback.webhook
        )
    finally:
        store.close()

    def human() -> None:
        table = Table(
            title=f"{workflow.name} ({workflow.kind}): {result.champion or 'no version'} "
            f"({result.champion_source})",
            header_style="bold",
        )
        answers = workflow.kind == "answer"
        cols = ["month", "outputs", "escalate"]
        if answers:
            cols += ["cite", "unsupported", "lag days", "lagging", "kb change"]
        cols += ["new cases"]
        for col in cols:
            table.add_column(col)
        for m in result.months:
            row = [m.month, str(m.n_outputs), _pct(m.escalation_rate)]
            if answers:
                row += [
                    _pct(m.citation_rate),
                    _pct(m.unsupported_rate),
                    "-" if m.freshness_lag_days is None else f"{m.freshness_lag_days:.1f}",
                    _pct(m.lagging_share),
                    _pct(m.kb_change_rate),
                ]
            row.append(
                f"{_pct(m.new_case_pass_rate)} ({m.n_new_passed}/{m.n_new_cases})"
                if m.n_new_cases
                else (m.new_cases_note or "-")
            )
            table.add_row(*row)
        out.print(table)
        weeks = Table(title="escalation by week", header_style="bold")
        for col in ("week", "outputs", "escalated", "rate"):
            weeks.add_column(col)
        for w in result.weeks:
            weeks.add_row(w.week, str(w.n_outputs), str(w.n_escalated), _pct(w.escalation_rate))
        out.print(weeks)
        for note in result.notes:
            out.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        if alert is not None:
            render_alert(alert, out)
        else:
            out.print("[green]no rollback trigger fired[/green]")

    emit(result.to_dict(), as_json=as_json, human=human)
    if alert is not None:
        raise typer.Exit(1)


def shadow(
    version: Annotated[str, typer.Argument(help="The candidate model version id.")],
    file: Annotated[
        Path | None,
        typer.Argument(
            help="Tickets to score (JSONL/CSV as `tunegate ingest` reads); default: the store's "
            "tickets since --since."
        ),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Score stored tickets since.")
    ] = None,
    executor: ExecutorOpt = None,
    config: ConfigOpt = _DEFAULT_CONFIG,
    as_json: JsonOpt = False,
) -> None:
    """Score the live stream with a candidate beside the champion, routing nothing."""
    from tunegate.execute import ModelRecipe, attach_recipe
    from tunegate.models import load_model_version
    from tunegate.monitor import shadow_figures, shadow_score
    from tunegate.records import ModelKind

    if (file is None) == (since is None):
        raise InputError("give either FILE or --since (which tickets to shadow-score)")
    workflow = load(config)
    store = store_for(workflow, config)
    mv = store.get_model_version(version)
    candidate = load_model_version(mv, workflow, store=store)
    if mv.kind in (ModelKind.LORA, ModelKind.ZERO_SHOT, ModelKind.RULES):
        # Ray workers rebuild the candidate from its version (tunegate.execute)
        attach_recipe(candidate, ModelRecipe(load_model_version, (mv, workflow)))
    if file is not None:
        from tunegate.io import read_records
        from tunegate.records import Ticket

        records, problems = read_records("tickets", file, workflow=workflow)
        if problems:
            first = "; ".join(f"line {p.line}: {p.reason}" for p in problems[:3])
            raise InputError(
                f"{file}: {len(problems)} ticket row(s) are invalid ({first}); "
                f"fix them or run `tunegate ingest tickets {file}` to quarantine"
            )
        tickets = [t for t in records if isinstance(t, Ticket)]
        store.add_tickets(tickets)
        start = min((t.created_at for t in tickets), default=None)
    else:
        start = _when(since, "--since")
        tickets = store.tickets(since=start)
    with closing(executor_for(workflow, config, executor)) as runner:
        scored = shadow_score(
            candidate, tickets, store, workflow=workflow, version=mv.id, executor=runner
        )
    figures = shadow_figures(store, mv.id, workflow=workflow, since=start)
    payload = {"scored": len(scored), "tickets": len(tickets), **figures.to_dict()}

    def human() -> None:
        out.print(
            f"shadow-scored {len(scored)} new of {len(tickets)} tickets with {mv.id} "
            f"(nothing routed)"
        )
        out.print(
            f"agreement with champion {_pct(figures.agreement)}, accuracy vs overrides "
            f"{_pct(figures.candidate_accuracy)} (champion {_pct(figures.champion_accuracy)})"
            f", fixes {figures.fixes}, breaks {figures.breaks}",
            highlight=False,
        )

    emit(payload, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("monitor")(monitor)
    app.command("shadow")(shadow)
