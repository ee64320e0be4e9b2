"""Production tickets that match a known attack pattern: injected instructions.

The patterns are the robustness slice's (:data:`tunegate.evaluate.INJECTION_PATTERNS`: "ignore
the above", "disregard previous instructions", a line starting ``system:``, "classify this
ticket as", "new instruction", "note to the assistant"), so what the verdict tests is what
monitoring counts. A match is a signal to read the ticket, not proof of an attack: a user can
quote an error that says "ignore previous warnings". Keyword stuffing has no pattern of its
own (a stuffed term is an ordinary word), so it is measured on the suite, not counted here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tunegate.evaluate import INJECTION_PATTERNS, match_attack_patterns
from tunegate.monitor._figures import Period, period_key
from tunegate.records import Ticket

__all__ = ["AttackPatternCounts", "attack_pattern_counts"]


@dataclass(frozen=True)
class AttackPatternCounts:
    """How many tickets matched an attack pattern, overall, by pattern and by period."""

    n_tickets: int
    """Tickets scanned."""
    n_matched: int
    """Tickets matching at least one pattern."""
    by_pattern: dict[str, int] = field(default_factory=dict)
    """Pattern (its regular expression) -> tickets matching it."""
    by_period: dict[str, int] = field(default_factory=dict)
    """Period key (``2026-W07`` / ``2026-02``) -> matching tickets, periods with a match."""
    example_ids: list[str] = field(default_factory=list)
    """Up to ten matching ticket ids, oldest first, to read."""

    @property
    def rate(self) -> float:
        """The share of scanned tickets that matched (0 when none was scanned)."""
        return self.n_matched / self.n_tickets if self.n_tickets else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_tickets": self.n_tickets,
            "n_matched": self.n_matched,
            "rate": self.rate,
            "by_pattern": dict(self.by_pattern),
            "by_period": dict(self.by_period),
            "example_ids": list(self.example_ids),
        }


def attack_pattern_counts(
    tickets: Sequence[Ticket],
    *,
    period: Period = "week",
    patterns: Sequence[re.Pattern[str]] = INJECTION_PATTERNS,
) -> AttackPatternCounts:
    """Count ``tickets`` whose text matches any of ``patterns``, by pattern and period."""
    ordered = sorted(tickets, key=lambda t: (t.created_at, t.id))
    hits = match_attack_patterns((t.text for t in ordered), patterns=patterns)
    by_pattern = {p.pattern: 0 for p in patterns}
    by_period: dict[str, int] = {}
    matched: list[str] = []
    for ticket, found in zip(ordered, hits, strict=True):
        if not found:
            continue
        matched.append(ticket.id)
        for i in found:
            by_pattern[patterns[i].pattern] += 1
        key = period_key(ticket.created_at, period)
        by_period[key] = by_period.get(key, 0) + 1
    return AttackPatternCounts(
        n_tickets=len(ordered),
        n_matched=len(matched),
        by_pattern=by_pattern,
        by_period=by_period,
        example_ids=matched[:10],
    )
