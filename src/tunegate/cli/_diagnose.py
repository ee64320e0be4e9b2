"""Diagnosis commands: ``overrides trend``, ``triage ...``, ``attribute``, ``try ...``, ``gate``."""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import rich.markup
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
from tunegate.errors import GateClosedError, InputError

if TYPE_CHECKING:
    from tunegate.records import EvalSuite
    from tunegate.store import Store

_DEFAULT_CONFIG = Path("tunegate.yaml")
_WIDE_KEYS = 8
"""More groups than this print one row per (week, group): a column each would not fit."""

overrides_app = typer.Typer(
    help="Override analytics: weekly counts, rates and the trend.", no_args_is_help=True
)
triage_app = typer.Typer(
    help="Error triage: suggest, export, import, confirm, recommend.", no_args_is_help=True
)
try_app = typer.Typer(
    help="Try a cheap fix against the champion (suite + recent overrides).", no_args_is_help=True
)

ReviewerOpt = Annotated[str, typer.Option("--reviewer", help="Who confirms (audit log).")]
SuiteOpt = Annotated[
    str | None, typer.Option("--suite", help="Suite name or hash (default: the newest).")
]
WeeksOpt = Annotated[
    int, typer.Option("--weeks", min=1, help="Recent weeks of missed-signal overrides scored.")
]


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InputError(f"--as-of must be an ISO date such as 2025-03-01, got {value!r}") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- overrides -------------------------------------------------------------------------------


@overrides_app.command("trend")
def overrides_trend(
    config: ConfigOpt = _DEFAULT_CONFIG,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Reason code (default: gate.reason_code).")
    ] = None,
    by: Annotated[str, typer.Option("--by", help="reason_code | class | slice")] = "reason_code",
    window: Annotated[
        int | None,
        typer.Option("--window", min=2, help="Weeks tested (default: gate.trend_weeks)."),
    ] = None,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Judge as of this date.")] = None,
    patterns: Annotated[
        int,
        typer.Option("--patterns", min=0, help="Show this many recurring missed-signal n-grams."),
    ] = 10,
    as_json: JsonOpt = False,
) -> None:
    """Weekly override counts and rates, the stable-or-increasing test, recurring patterns."""
    from tunegate.diagnose import (
        override_trend_from_store,
        patterns_from_store,
        weekly_override_counts,
    )

    if by not in ("reason_code", "class", "slice"):
        raise InputError(f"--by must be reason_code, class or slice, got {by!r}")
    workflow = load(config)
    store = store_for(workflow, config)
    when = _when(as_of)
    trend = override_trend_from_store(
        store, workflow, reason_code=reason, window=window, as_of=when
    )
    overrides = store.overrides(until=when)
    tickets = store.tickets(ids=sorted({o.ticket_id for o in overrides})) if by == "slice" else []
    rows = weekly_override_counts(
        overrides,
        store.decisions(until=when),
        by=by,  # type: ignore[arg-type]
        tickets=tickets,
        workflow=workflow,
    )
    found = (
        patterns_from_store(store, workflow, reason_code=reason, until=when, top=patterns)
        if patterns
        else []
    )
    payload = {
        "trend": trend.to_dict(),
        "weekly": [r.to_dict() for r in rows],
        "patterns": [p.to_dict() for p in found],
    }

    def human() -> None:
        keys = sorted({r.key for r in rows})
        weeks = sorted({r.week for r in rows})
        index = {(r.week, r.key): r for r in rows}
        if len(keys) > _WIDE_KEYS:
            # many groups (e.g. 150 classes): one row per week and group with overrides
            table = Table(title=f"weekly overrides by {by} (groups with overrides)")
            for name in ("week", by, "overrides", "rate", "decisions"):
                table.add_column(name, justify="left" if name in ("week", by) else "right")
            for r in sorted(rows, key=lambda r: (r.week, -r.overrides, r.key)):
                if r.overrides:
                    rate = "" if r.rate is None else f"{r.rate:.1%}"
                    week = r.week.isoformat()
                    table.add_row(week, r.key, str(r.overrides), rate, str(r.decisions))
            out.print(table)
        else:
            table = Table(title=f"weekly overrides by {by}")
            table.add_column("week")
            for k in keys:
                table.add_column(k, justify="right")
            table.add_column("decisions", justify="right")
            for w in weeks:
                cells = []
                for k in keys:
                    r = index[(w, k)]
                    rate = f" ({r.rate:.1%})" if r.rate is not None else ""
                    cells.append(f"{r.overrides}{rate}")
                table.add_row(w.isoformat(), *cells, str(index[(w, keys[0])].decisions))
            out.print(table)
        d = trend.decision
        verdict = "[green]stable or increasing[/green]" if d.passed else "[red]not shown[/red]"
        out.print(
            f"{trend.reason_code} over the last {d.weeks} complete weeks "
            f"{d.window}: {verdict}; Mann-Kendall S={d.test.s}, p(decrease)="
            f"{d.test.p_decrease:.3f}, Sen's slope {d.test.slope:+.2f}/week, "
            f"mean {d.mean:.1f}/week"
        )
        for reason_line in d.reasons:
            out.print(f"  - {reason_line}")
        if found:
            pt = Table(title="recurring missed-signal patterns")
            for col in ("n-gram", "z", "overrides", "correct", "model -> analyst"):
                pt.add_column(col)
            for p in found:
                pairs = ", ".join(f"{m}->{f} ({c})" for m, f, c in p.label_pairs[:2])
                pt.add_row(
                    p.ngram, f"{p.z:.1f}", str(p.overrides_with), str(p.reference_with), pairs
                )
            out.print(pt)

    emit(payload, as_json=as_json, human=human)


# -- triage ------------------------------------------------------------------------------------


def _suggestions(config: Path) -> tuple[Any, Any, list[Any], list[Any]]:
    from tunegate.diagnose import failures_from_store, suggest, triage_context_from_store

    workflow = load(config)
    store = store_for(workflow, config)
    cases = failures_from_store(store)
    ctx = triage_context_from_store(store, workflow, cases)
    return workflow, store, cases, suggest(cases, ctx)


@triage_app.command("suggest")
def triage_suggest(config: ConfigOpt = _DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Suggest a category for every correcting override (nothing is stored)."""
    from collections import Counter

    from tunegate.documents import TriageLabel

    _, store, cases, sugg = _suggestions(config)
    confirmed = {k for k, v in store.documents(TriageLabel).items() if v.confirmed}
    counts = Counter(s.category.value for s in sugg)
    payload = {
        "failures": len(cases),
        "confirmed": len(confirmed & {c.id for c in cases}),
        "suggested": dict(counts),
        "suggestions": [
            {
                "failure_id": s.failure_id,
                "category": s.category.value,
                "rule": s.rule,
                "evidence": s.evidence,
            }
            for s in sugg
        ],
    }

    def human() -> None:
        table = Table(title=f"{len(cases)} failures, suggested categories")
        table.add_column("category")
        table.add_column("count", justify="right")
        for cat, n in counts.most_common():
            table.add_row(cat, str(n))
        out.print(table)
        out.print(
            f"{payload['confirmed']} already confirmed; review the rest with "
            f"`tunegate triage export triage.csv` and `tunegate triage import triage.csv`"
        )

    emit(payload, as_json=as_json, human=human)


@triage_app.command("export")
def triage_export(
    path: Annotated[Path, typer.Argument(help="CSV (or .jsonl) file to write.")],
    config: ConfigOpt = _DEFAULT_CONFIG,
    include_confirmed: Annotated[
        bool, typer.Option("--include-confirmed", help="Also export failures already confirmed.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write failures with suggested categories for a person to confirm or correct."""
    from tunegate.diagnose import export_triage
    from tunegate.documents import TriageLabel

    _, store, cases, sugg = _suggestions(config)
    if not include_confirmed:
        done = {k for k, v in store.documents(TriageLabel).items() if v.confirmed}
        cases = [c for c in cases if c.id not in done]
    n = export_triage(path, cases, sugg)
    emit(
        {"written": str(path), "rows": n},
        as_json=as_json,
        human=lambda: out.print(
            f"wrote {n} rows to {path}; fill the `category` column, then "
            f"`tunegate triage import {path}`"
        ),
    )


@triage_app.command("import")
def triage_import(
    path: Annotated[Path, typer.Argument(help="The edited export.")],
    config: ConfigOpt = _DEFAULT_CONFIG,
    reviewer: ReviewerOpt = "unknown",
    as_json: JsonOpt = False,
) -> None:
    """Import confirmed/corrected categories (all rows validated; errors name the line)."""
    from tunegate.diagnose import failures_from_store, import_triage

    workflow = load(config)
    store = store_for(workflow, config)
    known = {c.id for c in failures_from_store(store)}
    report = import_triage(path, store, reviewer=reviewer, known_ids=known)
    emit(
        report.to_dict(),
        as_json=as_json,
        human=lambda: out.print(
            f"confirmed {report.confirmed} ({report.corrected} corrected), skipped "
            f"{report.skipped} rows without a category"
        ),
    )


@triage_app.command("confirm")
def triage_confirm(
    failure_id: Annotated[str, typer.Argument(help="Override id (or run:example id).")],
    category: Annotated[str, typer.Argument(help="One of the triage categories.")],
    config: ConfigOpt = _DEFAULT_CONFIG,
    reviewer: ReviewerOpt = "unknown",
    note: Annotated[str, typer.Option("--note", help="Why.")] = "",
    as_json: JsonOpt = False,
) -> None:
    """Confirm or correct one failure's category."""
    from tunegate.diagnose import confirm_triage

    workflow = load(config)
    store = store_for(workflow, config)
    payload = confirm_triage(store, failure_id, category, reviewer=reviewer, note=note)
    emit(
        {"failure_id": failure_id, **payload},
        as_json=as_json,
        human=lambda: out.print(f"{failure_id}: {payload['category']} (confirmed)"),
    )


@triage_app.command("recommend")
def triage_recommend(config: ConfigOpt = _DEFAULT_CONFIG, as_json: JsonOpt = False) -> None:
    """Recommend a fix from the confirmed categories (thresholds in workflow.triage)."""
    from tunegate.diagnose import recommend_from_store

    workflow = load(config)
    rec = recommend_from_store(store_for(workflow, config), workflow)

    def human() -> None:
        out.print(f"[bold]{rec.action}[/bold] ({rec.total} confirmed triaged failures)")
        for line in rec.reasons:
            out.print(f"  - {line}")
        shares = ", ".join(f"{k} {v:.0%}" for k, v in rec.shares.items() if v)
        if shares:
            out.print(f"  shares: {shares}")

    emit(rec.to_dict(), as_json=as_json, human=human)


# -- attribution -------------------------------------------------------------------------------


def attribute(
    config: ConfigOpt = _DEFAULT_CONFIG,
    confirm: Annotated[
        str | None,
        typer.Option(
            "--confirm", help="Confirm this finding id (gate condition 2) instead of attributing."
        ),
    ] = None,
    reviewer: ReviewerOpt = "unknown",
    method: Annotated[
        str,
        typer.Option(
            "--method",
            help="contrast (overridden vs correctly handled tickets of the same predicted "
            "class: terms and term pairs with counts and FDR-controlled tests) | ig | occlusion "
            "(the champion's word attributions).",
        ),
    ] = "contrast",
    steps: Annotated[int, typer.Option("--steps", min=2, help="Integrated-gradients steps.")] = 20,
    max_per_side: Annotated[
        int, typer.Option("--max", min=1, help="Tickets per side (ig/occlusion only).")
    ] = 100,
    min_support: Annotated[
        int,
        typer.Option(
            "--min-support", min=1, help="Fewest overridden tickets a term needs (contrast)."
        ),
    ] = 5,
    alpha: Annotated[
        float,
        typer.Option(
            "--alpha", min=0.0, max=1.0, help="False discovery rate for terms (contrast)."
        ),
    ] = 0.05,
    reason: Annotated[
        str | None, typer.Option("--reason", help="Reason code (default: gate.reason_code).")
    ] = None,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Name what separates missed-signal overrides from correctly handled tickets; record
    findings (confirm one with --confirm for gate condition 2)."""
    from tunegate.diagnose import (
        attribute_overrides,
        confirm_finding,
        contrast_overrides,
        finding_phrases,
    )

    workflow = load(config)
    store = store_for(workflow, config)
    if confirm is not None:
        payload = confirm_finding(store, confirm, reviewer=reviewer)
        emit(
            payload,
            as_json=as_json,
            human=lambda: out.print(
                f"finding {confirm} confirmed by {reviewer}; gate condition (2) holds"
            ),
        )
        return
    if method not in ("contrast", "ig", "occlusion"):
        raise InputError(f"--method must be contrast, ig or occlusion, got {method!r}")
    if method == "contrast":
        findings = contrast_overrides(
            store, workflow, reason_code=reason, min_support=min_support, alpha=alpha
        )
    else:
        with closing(executor_for(workflow, config, executor)) as runner:
            findings = attribute_overrides(
                store,
                workflow,
                method=method,  # type: ignore[arg-type]
                n_steps=steps,
                max_per_side=max_per_side,
                reason_code=reason,
                executor=runner,
            )

    def human() -> None:
        if not findings:
            out.print("no finding: no term passed the tests")
        for f in findings:
            terms = "; ".join(finding_phrases(f, 8))
            if f.get("kind") == "contrast":
                out.print(
                    f"[bold]{f['id']}[/bold] {f['predicted_label']} -> {f['label']} "
                    f"({f['n_overrides']} overrides vs {f['n_reference']} correctly handled; "
                    f"counts overridden vs correct): {terms}"
                )
            else:
                out.print(
                    f"[bold]{f['id']}[/bold] {f['label']} ({f['n_overrides']} overrides; "
                    f"model said {f['model_labels']}): under-weighted {terms}"
                )
        if findings:
            out.print(f"confirm after review: `tunegate attribute --confirm {findings[0]['id']}`")

    emit(findings, as_json=as_json, human=human)


# -- cheap fixes -------------------------------------------------------------------------------


def _suite(store: Store, name: str | None) -> EvalSuite:
    if name:
        return store.get_suite(name)
    suites = store.suites()
    if not suites:
        raise InputError(
            "no evaluation suite in the store; freeze one first (`tunegate suite freeze ...`)"
        )
    return max(suites, key=lambda s: s.created_at)


def _print_attempt(attempt: Any) -> None:
    d = attempt.details
    verdict = attempt.verdict.outcome.value if attempt.verdict else "none"
    out.print(f"[bold]{attempt.id}[/bold] {rich.markup.escape(attempt.description)}")
    out.print(f"  suite verdict vs champion: {verdict}")
    if d.get("prompt_version"):
        base = attempt.baseline_version
        if d.get("baseline_is_configured_prompt"):
            out.print(
                f"  no champion registered: compared with the workflow's configured prompt "
                f"({base}); `tunegate promote {base}` first to be able to roll back to it"
            )
        version = d["prompt_version"]
        out.print(f"  registered as {version}: `tunegate promote {version}` ships it")
    share = d.get("fixed_share")
    out.print(
        f"  missed-signal overrides (last {d.get('weeks')} weeks): "
        f"{d.get('missed_signal_total')}; champion right {d.get('baseline_right')}, "
        f"candidate right {d.get('candidate_right')}, fixed {d.get('fixed')} "
        f"({'n/a' if share is None else f'{share:.0%}'})"
    )
    if attempt.verdict:
        for r in attempt.verdict.rules:
            if r.outcome.value != "pass":
                out.print(f"  - {r.rule}: {r.outcome.value} {r.message}")


def _finish_attempt(attempt: Any, *, as_json: bool) -> None:
    """Print the stored Attempt; exit as `tunegate compare` does (0 pass, 1 fail,
    2 inconclusive) so a script can tell a failed cheap fix from a working one."""
    emit(attempt, as_json=as_json, human=lambda: _print_attempt(attempt))
    if attempt.verdict is not None and attempt.verdict.exit_code:
        raise typer.Exit(attempt.verdict.exit_code)


@try_app.command("instructions")
def try_instructions_cmd(
    text: Annotated[str | None, typer.Argument(help="The new instructions.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read them from a file.")] = None,
    config: ConfigOpt = _DEFAULT_CONFIG,
    suite: SuiteOpt = None,
    weeks: WeeksOpt = 4,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate new zero-shot instructions against the champion; store the Attempt.

    Exit code: the verdict's (0 pass, 1 fail, 2 inconclusive), as `tunegate compare`.
    """
    from tunegate.diagnose import try_instructions

    if (text is None) == (file is None):
        raise InputError("give the new instructions as an argument or with --file (one of them)")
    new = text if text is not None else Path(file).read_text(encoding="utf-8")  # type: ignore[arg-type]
    workflow = load(config)
    store = store_for(workflow, config)
    with closing(executor_for(workflow, config, executor)) as runner:
        attempt = try_instructions(
            workflow, new, store, _suite(store, suite), weeks=weeks, executor=runner
        )
    _finish_attempt(attempt, as_json=as_json)


@try_app.command("rules")
def try_rules_cmd(
    rules_file: Annotated[Path, typer.Argument(help="YAML list of rules (tunegate.yaml form).")],
    config: ConfigOpt = _DEFAULT_CONFIG,
    suite: SuiteOpt = None,
    weeks: WeeksOpt = 4,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate rules applied before the champion; store the Attempt.

    Exit code: the verdict's (0 pass, 1 fail, 2 inconclusive), as `tunegate compare`.
    """
    from tunegate.diagnose import try_rules

    if not rules_file.exists():
        raise InputError(f"{rules_file}: no such file")
    workflow = load(config)
    store = store_for(workflow, config)
    with closing(executor_for(workflow, config, executor)) as runner:
        attempt = try_rules(
            workflow,
            rules_file.read_text(encoding="utf-8"),
            store,
            _suite(store, suite),
            weeks=weeks,
            executor=runner,
        )
    _finish_attempt(attempt, as_json=as_json)


@try_app.command("retrieval")
def try_retrieval_cmd(
    config: ConfigOpt = _DEFAULT_CONFIG,
    suite: SuiteOpt = None,
    k: Annotated[int, typer.Option("--k", min=1, help="Neighbours.")] = 10,
    weeks: WeeksOpt = 4,
    executor: ExecutorOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a kNN retriever over reviewed examples; store the Attempt.

    Exit code: the verdict's (0 pass, 1 fail, 2 inconclusive), as `tunegate compare`.
    """
    from tunegate.diagnose import try_retrieval

    workflow = load(config)
    store = store_for(workflow, config)
    with closing(executor_for(workflow, config, executor)) as runner:
        attempt = try_retrieval(
            workflow, store, _suite(store, suite), k=k, weeks=weeks, executor=runner
        )
    _finish_attempt(attempt, as_json=as_json)


@try_app.command("prompt")
def try_prompt_cmd(
    file: Annotated[
        Path,
        typer.Argument(
            help="The new system prompt template (placeholders {instructions}, {labels}, "
            "{label_names}; {{ and }} for literal braces)."
        ),
    ],
    backend: Annotated[
        str | None,
        typer.Option(
            "--backend",
            help="Backend that runs the prompt: llm | llm-local (default: the champion's "
            "when it is a prompt version, else llm).",
        ),
    ] = None,
    config: ConfigOpt = _DEFAULT_CONFIG,
    suite: SuiteOpt = None,
    weeks: WeeksOpt = 4,
    measure_latency: Annotated[
        bool,
        typer.Option(
            "--measure-latency/--no-measure-latency",
            help="Time the champion and the prompt side by side for the verdict's latency "
            "rule (repeated calls: on a paid endpoint this costs tokens).",
        ),
    ] = True,
    actor: Annotated[str, typer.Option("--actor", help="Who registers the version.")] = "cli",
    as_json: JsonOpt = False,
) -> None:
    """Evaluate a new system prompt for a prompted LLM against the champion; store the Attempt
    and register the prompt as a version (`tunegate promote VERSION` ships it).

    Exit code: the verdict's (0 pass, 1 fail, 2 inconclusive), as `tunegate compare`.
    """
    from tunegate.diagnose import try_prompt

    template = _read_prompt_file(file)
    workflow = load(config)
    store = store_for(workflow, config)
    attempt = try_prompt(
        workflow,
        template,
        store,
        _suite(store, suite),
        backend=backend,
        source=str(file),
        weeks=weeks,
        measure_latency=measure_latency,
        actor=actor,
    )
    _finish_attempt(attempt, as_json=as_json)


def _read_prompt_file(file: Path) -> str:
    """The template text of ``file``; a missing, unreadable or non-UTF-8 file is an
    InputError naming it (an empty one is refused by the library, naming it too)."""
    if not file.exists():
        raise InputError(f"{file}: no such file; pass the path of a system prompt template")
    if not file.is_file():
        raise InputError(f"{file}: not a file; pass the path of a system prompt template")
    try:
        return file.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise InputError(f"{file}: cannot be read ({exc.strerror})") from None


# -- the gate ----------------------------------------------------------------------------------


def gate(
    config: ConfigOpt = _DEFAULT_CONFIG,
    as_of: Annotated[str | None, typer.Option("--as-of", help="Judge as of this date.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Check the five fine-tuning conditions; exit 0 when open, non-zero when closed."""
    from tunegate.diagnose import evaluate_gate

    workflow = load(config)
    report = evaluate_gate(store_for(workflow, config), workflow, as_of=_when(as_of))

    def human() -> None:
        for c in report.conditions:
            mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
            out.print(f"{mark} ({c.number}) {c.name}: {c.summary}")
            out.print(f"       next: {c.next_step}")
        out.print(f"[bold]{report.message}[/bold]")

    emit(report.to_dict(), as_json=as_json, human=human)
    if not report.open:
        raise typer.Exit(GateClosedError.exit_code)


def register(app: typer.Typer) -> None:
    app.add_typer(overrides_app, name="overrides")
    app.add_typer(triage_app, name="triage")
    app.add_typer(try_app, name="try")
    app.command("attribute")(attribute)
    app.command("gate")(gate)
