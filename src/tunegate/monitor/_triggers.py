"""Rollback triggers: production figures against the pre-promotion baseline.

Each trigger compares a window's :class:`~tunegate.monitor.Figures` with the baseline's (the
decisions served in ``rollback.baseline_days`` before the champion was promoted). A trigger
**fires** when both hold:

1. the change exceeds its threshold from ``workflow.rollback`` (strictly: "more than"), and
2. the change is statistically significant at ``rollback.significance`` (one-sided: a
   two-proportion z-test for rates, :func:`tunegate.metrics.one_sided_rate_increase_p`;
   Mann-Whitney U for latency),

so a threshold states the size of change that matters and the test keeps noise in small
windows from rolling a good model back. A window (or baseline) with fewer than
``rollback.min_decisions`` decisions is not judged.

Triggers: ``protected_fnr:<class>``, ``override_rate``, ``abstention_quality``, ``latency``,
``escalation_rising``.
"""

from __future__ import annotations

import itertools
import json
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats

from tunegate.config import RollbackPolicy
from tunegate.errors import InputError
from tunegate.metrics import one_sided_rate_increase_p
from tunegate.monitor._figures import Figures, PeriodFigures
from tunegate.records import utcnow

__all__ = [
    "Alert",
    "TriggerResult",
    "WindowTriggers",
    "check_triggers",
    "escalation_rising_trigger",
    "evaluate_windows",
    "one_sided_rate_increase_p",
    "post_webhook",
    "render_alert",
]

_EPS = 1e-12


@dataclass(frozen=True)
class TriggerResult:
    """One trigger judged on one window."""

    trigger: str
    fired: bool
    judged: bool
    baseline: float | None
    current: float | None
    change: float | None
    """current - baseline (a fraction of baseline for ``latency``)."""
    threshold: float
    p_value: float | None
    window: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class WindowTriggers:
    """All triggers judged on one window."""

    window: str
    results: list[TriggerResult]

    @property
    def fired(self) -> list[TriggerResult]:
        return [r for r in self.results if r.fired]


def _not_judged(name: str, threshold: float, window: str, why: str) -> TriggerResult:
    return TriggerResult(
        name, False, False, None, None, None, threshold, None, window, f"not judged: {why}"
    )


def _rate_trigger(
    name: str,
    *,
    x0: int,
    n0: int,
    x1: int,
    n1: int,
    threshold: float,
    alpha: float,
    window: str,
    what: str,
    higher_is_worse: bool = True,
) -> TriggerResult:
    if n0 == 0 or n1 == 0:
        return _not_judged(name, threshold, window, f"no {what} in the baseline or the window")
    r0, r1 = x0 / n0, x1 / n1
    if higher_is_worse:
        change = r1 - r0
        p = one_sided_rate_increase_p(x0, n0, x1, n1)
    else:  # a score (e.g. accuracy) whose fall is bad: test the increase of its complement
        change = r0 - r1
        p = one_sided_rate_increase_p(n0 - x0, n0, n1 - x1, n1)
    fired = change > threshold + _EPS and p < alpha
    worse = "up" if higher_is_worse else "down"
    msg = (
        f"{what} changed by {r1 - r0:+.2%} ({r0:.2%} -> {r1:.2%}; fires when {worse} by more "
        f"than {threshold:.2%} with p < {alpha}; p={p:.3g})"
    )
    return TriggerResult(
        name,
        fired,
        True,
        r0,
        r1,
        change if higher_is_worse else -change,
        threshold,
        p,
        window,
        ("FIRED: " if fired else "ok: ") + msg,
    )


def check_triggers(
    current: Figures,
    baseline: Figures,
    policy: RollbackPolicy,
    *,
    window: str = "",
    escalation_series: Sequence[Figures] = (),
) -> list[TriggerResult]:
    """Judge every trigger on ``current`` against ``baseline``.

    ``escalation_series`` is the weekly sequence ending with ``current`` over which "rising for
    N consecutive weeks" is judged: every step of its last N must rise, and the rise from the
    first of those N + 1 weeks to the last must be significant.
    """
    alpha = policy.significance
    small = [
        what
        for what, f in (("baseline", baseline), ("window", current))
        if f.n_decisions < policy.min_decisions
    ]
    names = [f"protected_fnr:{c}" for c in baseline.protected_fnr] + [
        "override_rate",
        "abstention_quality",
        "latency",
        "escalation_rising",
    ]
    if small:
        why = " and ".join(
            f"the {w} has fewer than {policy.min_decisions} decisions" for w in small
        )
        return [_not_judged(n, 0.0, window, why) for n in names]
    out: list[TriggerResult] = []
    for cls in baseline.protected_fnr:
        out.append(
            _rate_trigger(
                f"protected_fnr:{cls}",
                x0=baseline.protected_misses[cls],
                n0=baseline.protected_support[cls],
                x1=current.protected_misses.get(cls, 0),
                n1=current.protected_support.get(cls, 0),
                threshold=policy.protected_fnr_increase,
                alpha=alpha,
                window=window,
                what=f"estimated FNR of protected class {cls!r}",
            )
        )
    out.append(
        _rate_trigger(
            "override_rate",
            x0=baseline.n_overridden,
            n0=baseline.n_decisions,
            x1=current.n_overridden,
            n1=current.n_decisions,
            threshold=policy.override_rate_increase,
            alpha=alpha,
            window=window,
            what="override rate",
        )
    )
    out.append(
        _rate_trigger(
            "abstention_quality",
            x0=baseline.n_auto_correct,
            n0=baseline.n_auto,
            x1=current.n_auto_correct,
            n1=current.n_auto,
            threshold=policy.abstention_quality_drop,
            alpha=alpha,
            window=window,
            what="selective accuracy of auto-routed decisions",
            higher_is_worse=False,
        )
    )
    out.append(_latency_trigger(current, baseline, policy, window))
    out.append(_escalation_trigger(escalation_series, policy, window))
    return out


def _latency_trigger(
    current: Figures, baseline: Figures, policy: RollbackPolicy, window: str
) -> TriggerResult:
    name, threshold = "latency", policy.latency_increase
    b, c = baseline.latency_p50, current.latency_p50
    if b is None or c is None or b <= 0.0:
        return _not_judged(name, threshold, window, "no latency recorded in the baseline")
    change = c / b - 1.0
    # The test counts each distinct latency once: batch scoring (make_decisions, shadow
    # scoring) gives every ticket of a batch the batch's mean, and ~200 copies of a few
    # values are not ~200 independent measurements (they made p ~1e-50 out of host load).
    # Per-request latencies (the service) are practically all distinct, so nothing changes.
    cur_obs, base_obs = np.unique(current.latencies_ms), np.unique(baseline.latencies_ms)
    p = float(stats.mannwhitneyu(cur_obs, base_obs, alternative="greater").pvalue)
    fired = change > threshold + _EPS and p < policy.significance
    msg = (
        f"median latency changed by {change:+.1%} ({b:.1f} -> {c:.1f} ms; threshold "
        f"+{threshold:.0%}, p={p:.3g})"
    )
    return TriggerResult(
        name,
        fired,
        True,
        b,
        c,
        change,
        threshold,
        p,
        window,
        ("FIRED: " if fired else "ok: ") + msg,
    )


def _escalation_trigger(
    series: Sequence[Figures], policy: RollbackPolicy, window: str
) -> TriggerResult:
    return escalation_rising_trigger(
        [(f.n_escalated, f.n_decisions) for f in series], policy, window
    )


def escalation_rising_trigger(
    counts: Sequence[tuple[int, int]],
    policy: RollbackPolicy,
    window: str,
    *,
    what: str = "decisions",
    since: str = "since the promotion",
) -> TriggerResult:
    """ "Escalation rising for ``policy.escalation_rising_weeks`` (k) consecutive weeks" over
    weekly ``(escalated, total)`` counts ending with the window judged.

    Fires when each of the last k + 1 weeks has at least ``policy.min_decisions`` ``what``
    (the minimum count that makes each step's rate worth comparing), every step of the last
    k rises, and the rise from the first of those weeks to the last is significant at
    ``policy.significance`` (:func:`tunegate.metrics.one_sided_rate_increase_p`).
    """
    name, k = "escalation_rising", policy.escalation_rising_weeks
    tail = list(counts)[-(k + 1) :]
    if len(tail) < k + 1:
        return _not_judged(
            name,
            float(k),
            window,
            f"fewer than {k + 1} weeks {since} to judge {k} consecutive rises",
        )
    if any(n < policy.min_decisions for _, n in tail):
        return _not_judged(
            name,
            float(k),
            window,
            f"a week among the last {k + 1} has fewer than {policy.min_decisions} {what}",
        )
    rates = [x / n for x, n in tail]
    rising = all(b > a + _EPS for a, b in itertools.pairwise(rates))
    (x0, n0), (x1, n1) = tail[0], tail[-1]
    p = one_sided_rate_increase_p(x0, n0, x1, n1)
    fired = rising and p < policy.significance
    path = " -> ".join(f"{r:.1%}" for r in rates)
    msg = (
        f"escalation rate {'rose' if rising else 'did not rise'} for {k} consecutive weeks "
        f"({path}; overall rise p={p:.3g})"
    )
    return TriggerResult(
        name,
        fired,
        True,
        rates[0],
        rates[-1],
        rates[-1] - rates[0],
        float(k),
        p,
        window,
        ("FIRED: " if fired else "ok: ") + msg,
    )


def evaluate_windows(
    windows: Sequence[PeriodFigures], baseline: Figures, policy: RollbackPolicy
) -> list[WindowTriggers]:
    """Judge each window in turn against the baseline.

    "Escalation rising" is judged over the post-promotion windows only: a new champion whose
    escalation rate is simply *higher* than its predecessor's (a level, not a trend) is caught
    by nothing here, by design; a rate that keeps climbing week after week is.
    """
    out = []
    for i, w in enumerate(windows):
        series = [x.figures for x in windows[: i + 1]]
        out.append(
            WindowTriggers(
                w.period,
                check_triggers(
                    w.figures, baseline, policy, window=w.period, escalation_series=series
                ),
            )
        )
    return out


@dataclass(frozen=True)
class Alert:
    """What is sent when triggers fire."""

    workflow: str
    champion: str | None
    promoted_at: datetime | None
    fired: list[TriggerResult]
    created_at: datetime = field(default_factory=utcnow)
    rollback: dict[str, Any] | None = None
    """Filled when ``--auto-rollback`` restored a previous champion."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": "tunegate.rollback_trigger",
            "workflow": self.workflow,
            "champion": self.champion,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "created_at": self.created_at.isoformat(),
            "fired": [r.to_dict() for r in self.fired],
            "rollback": self.rollback,
            "summary": self.summary(),
        }

    def summary(self) -> str:
        names = sorted({r.trigger for r in self.fired})
        return (
            f"{len(names)} rollback trigger(s) fired for {self.workflow} champion "
            f"{self.champion}: {', '.join(names)}"
        )


def render_alert(alert: Alert, console: Console) -> None:
    """Print the alert as a red table on ``console``."""
    console.print(f"[bold red]ALERT[/bold red] {alert.summary()}", highlight=False)
    table = Table(show_header=True, header_style="bold")
    for col in ("window", "trigger", "baseline", "current", "p", "detail"):
        table.add_column(col)
    for r in alert.fired:
        table.add_row(
            r.window,
            r.trigger,
            _fmt(r.baseline),
            _fmt(r.current),
            f"{r.p_value:.3g}" if r.p_value is not None else "-",
            r.message,
        )
    console.print(table)
    if alert.rollback:
        console.print(
            f"[bold]rolled back[/bold]: champion {alert.rollback.get('from')} -> "
            f"{alert.rollback.get('to')}",
            highlight=False,
        )


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def post_webhook(url: str, payload: dict[str, Any], *, timeout: float = 10.0) -> int:
    """POST ``payload`` as JSON to ``url``; returns the HTTP status.

    Raises :class:`InputError` when the URL is not http(s) or the receiver cannot be reached.
    """
    if not url.startswith(("http://", "https://")):
        raise InputError(f"webhook must be an http(s) URL, got {url!r}")
    body = json.dumps(payload, default=str).encode("utf-8")
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "tunegate-monitor"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except OSError as exc:
        raise InputError(
            f"could not deliver the alert to webhook {url}: {exc}; check the URL "
            f"(rollback.webhook / --webhook) and that the receiver is up"
        ) from exc
