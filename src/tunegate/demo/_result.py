"""What the demo produced (``result.json``), its step timer and its console lines."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.markup import escape

from tunegate.demo._table import KeyRow, render_key_table
from tunegate.records import Attempt, Verdict
from tunegate.report import counts_phrase

__all__ = [
    "DemoResult",
    "StepTiming",
    "Steps",
    "attempt_dict",
    "console_summary",
    "gap_headline",
    "latency_line",
    "override_lines",
    "share",
    "verdict_dict",
]


@dataclass
class StepTiming:
    name: str
    seconds: float


@dataclass
class DemoResult:
    """Everything the demo produced (also written to ``out_dir/result.json``)."""

    out_dir: Path
    champion_version: str
    candidate_version: str | None
    suite_hash: str
    baseline_run: str
    candidate_run: str | None
    trend: dict[str, Any]
    recommendation: dict[str, Any]
    findings: list[dict[str, Any]]
    highlights: list[dict[str, Any]]
    attempts: list[dict[str, Any]]
    gate: dict[str, Any]
    dataset: dict[str, Any]
    label_issues: dict[str, Any]
    sweep: dict[str, Any]
    verdict: dict[str, Any] | None
    promoted: bool
    monitor: dict[str, Any]
    shift: dict[str, Any]
    next_gap: dict[str, Any]
    table: list[KeyRow]
    timings: list[StepTiming] = field(default_factory=list)
    report_html: Path | None = None
    summary_md: Path | None = None
    latency: dict[str, Any] | None = None
    """Champion and candidate timed side by side in step 7c (``PairedLatency.to_dict()``)."""
    versus_cheap_fix: dict[str, Any] | None = None
    """The candidate against the best cheap fix (``CheapFixComparison.to_dict()``)."""
    promotion: dict[str, Any] | None = None
    """What was promoted and why (``PromotionChoice.to_dict()``): the fine-tune, the best
    cheap fix ("the cheap fix is enough"), or nothing."""

    @property
    def promoted_version(self) -> str | None:
        """The version made champion in step 8a (the fine-tune or the cheap fix), if any."""
        if not self.promoted:
            return None
        if self.promotion and self.promotion.get("version"):
            return str(self.promotion["version"])
        return self.candidate_version

    @property
    def outcome(self) -> str:
        """The verdict on the candidate (``pass``, ``fail`` or ``inconclusive``), or ``none``
        when no candidate was judged (the fine-tuning gate stayed closed)."""
        return str(self.verdict["outcome"]) if self.verdict else "none"

    def decision_lines(self) -> list[str]:
        """The decision in plain words, first in the console summary and the report: the
        verdict with the rules that did not pass, whether the candidate was promoted and why,
        and who is champion after the monitored weeks."""
        champ, cand = self.champion_version, self.candidate_version or "none"
        if not self.verdict:
            lines = [
                "Verdict: none; no candidate was trained because the fine-tuning gate stayed "
                f"closed ({self.gate.get('message', 'see the gate')})",
                f"Promotion: not promoted; {champ} stays champion",
            ]
        else:
            rules = self.verdict.get("rules", [])
            missed = [r for r in rules if r.get("outcome") != "pass"]
            why = (
                f"all {len(rules)} rules passed"
                if not missed
                else f"{len(missed)} of {len(rules)} rules did not pass: "
                + "; ".join(f"{r['rule']} {r['outcome']} ({r.get('message', '')})" for r in missed)
            )
            lines = [f"Verdict: {self.outcome.upper()} for {cand} against {champ}: {why}"]
            choice = (self.promotion or {}).get("choice")
            if self.promoted and choice == "cheap fix":
                lines.append(
                    f"Promotion: the fine-tune's verdict passed, but it did not beat the best "
                    f"cheap fix, so the cheap fix {self.promoted_version} was promoted instead "
                    f"({(self.promotion or {}).get('reason', '')}); {champ} kept for rollback"
                )
            elif self.promoted:
                lines.append(
                    f"Promotion: promoted {cand} to champion because the verdict passed and it "
                    f"beat the best cheap fix; {champ} kept for rollback"
                )
            elif choice == "keep champion" and self.outcome == "pass":
                lines.append(
                    f"Promotion: not promoted: {(self.promotion or {}).get('reason', '')}; "
                    f"{champ} stays champion"
                )
            else:
                reason = (
                    "only a passing verdict promotes"
                    if self.outcome != "pass"
                    else "the promotion was refused"
                )
                lines.append(
                    f"Promotion: not promoted: the verdict was {self.outcome.upper()} and "
                    f"{reason}; {champ} stays champion"
                )
        after = self.shift.get("champion_after") if self.shift else None
        alert = self.shift.get("alert") if self.shift else None
        if after and self.promoted and after != self.promoted_version:
            lines.append(
                f"After the VPN-client shift: a rollback trigger fired and {after} is champion "
                "again"
            )
        elif after and alert:
            lines.append(f"After the VPN-client shift: a trigger fired; {after} is still champion")
        elif after:
            lines.append(f"After the VPN-client shift: no trigger fired; {after} is still champion")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "decision": self.decision_lines(),
            "out_dir": str(self.out_dir),
            "champion_version": self.champion_version,
            "candidate_version": self.candidate_version,
            "suite_hash": self.suite_hash,
            "baseline_run": self.baseline_run,
            "candidate_run": self.candidate_run,
            "trend": self.trend,
            "recommendation": self.recommendation,
            "findings": self.findings,
            "highlights": self.highlights,
            "attempts": self.attempts,
            "gate": self.gate,
            "dataset": self.dataset,
            "label_issues": self.label_issues,
            "sweep": self.sweep,
            "verdict": self.verdict,
            "promoted": self.promoted,
            "promoted_version": self.promoted_version,
            "promotion": self.promotion,
            "monitor": self.monitor,
            "shift": self.shift,
            "next_gap": self.next_gap,
            "table": [r.to_dict() for r in self.table],
            "timings": [{"step": t.name, "seconds": round(t.seconds, 2)} for t in self.timings],
            "report_html": str(self.report_html) if self.report_html else None,
            "summary_md": str(self.summary_md) if self.summary_md else None,
            "latency": self.latency,
            "versus_cheap_fix": self.versus_cheap_fix,
        }


class Steps:
    """Prints each step's header and records its wall time."""

    def __init__(self, log: Callable[[str], None]) -> None:
        self.timings: list[StepTiming] = []
        self.log = log

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.log(f"[bold cyan]▶ {name}[/bold cyan]")
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.timings.append(StepTiming(name, took))
        self.log(f"  [dim]done in {took:.1f} s[/dim]")


def verdict_dict(verdict: Verdict | None) -> dict[str, Any] | None:
    return None if verdict is None else verdict.model_dump(mode="json")


def attempt_dict(attempt: Attempt) -> dict[str, Any]:
    return {
        "id": attempt.id,
        "kind": attempt.kind.value,
        "description": attempt.description,
        "outcome": attempt.verdict.outcome.value if attempt.verdict else None,
        "candidate_version": attempt.candidate_version,
        # the pinned example ids of a retrieval fix stay in the store (``examples`` counts them)
        "details": {k: v for k, v in attempt.details.items() if k != "example_ids"},
    }


def gap_headline(gap: dict[str, Any]) -> str:
    """One sentence naming what is still being corrected after the deployment."""
    n, k = gap.get("n_decisions", 0), gap.get("n_overridden", 0)
    if not n:
        return "no decisions since the deployment"
    pairs = ", ".join(
        f"{p['model_label']} -> {p['final_label']} ({p['count']})"
        for p in gap.get("top_pairs", [])[:3]
    )
    grams = ", ".join(str(g.get("ngram", g.get("term", ""))) for g in gap.get("r2_ngrams", [])[:5])
    return (
        f"{k} of {n} decisions still corrected ({k / n:.1%}); by reason "
        f"{counts_phrase(gap.get('by_reason'))}; most common: {pairs or 'none'}"
        + (f"; over-represented in remaining R2 overrides: {grams}" if grams else "")
    )


def console_summary(demo: DemoResult) -> list[str]:
    """The demo's final console summary: the decision first (verdict, promotion, champion
    after monitoring), then the before/after table, then where the reports are."""
    out = ["", "[bold]Decision[/bold]", *(f"  {escape(line)}" for line in demo.decision_lines())]
    if demo.table:
        out += ["", render_key_table(demo.table)]
    out += ["", f"report: {demo.report_html}", f"summary: {demo.summary_md}"]
    return out


def latency_line(latency: dict[str, Any] | None) -> str:
    """One line for a paired latency measurement (``PairedLatency.to_dict()``)."""
    if latency is None:
        return "latency not judged"
    w, c = latency["wall_ratio"], latency["cpu_ratio"]

    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{x - 1.0:+.1%}"

    return (
        f"latency side by side ({latency['n_pairs']} paired rounds, "
        f"{latency['seconds']:.1f} s): CPU time {latency['baseline_cpu_ms']:.2f} -> "
        f"{latency['candidate_cpu_ms']:.2f} ms per example, {pct(c['estimate'])} "
        f"(CI {pct(c['low'])} to {pct(c['high'])}); wall time "
        f"{latency['baseline_wall_ms']:.2f} -> {latency['candidate_wall_ms']:.2f} ms, "
        f"{pct(w['estimate'])}"
    )


def share(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.0%}"


def override_lines(result: Any, *, last: int | None = None) -> list[str]:
    """One line per judged window (the last ``last`` ones): override rate against the
    baseline and the trigger's p-value (steps 8b and 8c)."""
    windows = result.windows[-last:] if last else result.windows
    out = []
    for w in windows:
        r = next((r for r in w.results if r.trigger == "override_rate"), None)
        if r is None or not r.judged:
            out.append(f"  {w.window}: not judged")
            continue
        out.append(
            f"  {w.window}: override rate {r.current:.1%} vs baseline {r.baseline:.1%} "
            f"(p={r.p_value:.2g}){' FIRED' if r.fired else ''}"
        )
    return out
