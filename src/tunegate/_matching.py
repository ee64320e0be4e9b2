"""Matching a deterministic rule (:class:`~tunegate.config.RuleSpec`) against a text.

The one matcher behind the rules backend (:mod:`tunegate.models._rules`) and the triage rule
``contradicts_rule`` (:mod:`tunegate.diagnose`). It sits low in the dependency flow (it needs
only the config) so both can import it without the models package.
"""

from __future__ import annotations

import re

from tunegate.config import RuleSpec

__all__ = ["RuleMatcher"]


class RuleMatcher:
    """A rule's patterns compiled once (case-insensitive).

    The rule fires when every ``all_of`` pattern matches, at least one ``any_of`` pattern
    matches (when there are any), and no ``none_of`` pattern matches.
    """

    def __init__(self, spec: RuleSpec) -> None:
        self.spec = spec
        self.all_of = [re.compile(p, re.IGNORECASE) for p in spec.all_of]
        self.any_of = [re.compile(p, re.IGNORECASE) for p in spec.any_of]
        self.none_of = [re.compile(p, re.IGNORECASE) for p in spec.none_of]

    def match(self, text: str) -> list[str] | None:
        """The matched fragments (``all_of`` then ``any_of``, in pattern order) when the rule
        fires, else None."""
        matched: list[str] = []
        for pattern in self.all_of:
            m = pattern.search(text)
            if m is None:
                return None
            matched.append(m.group(0))
        if self.any_of:
            found = [m.group(0) for p in self.any_of if (m := p.search(text)) is not None]
            if not found:
                return None
            matched.extend(found)
        if any(p.search(text) for p in self.none_of):
            return None
        return matched

    def fires(self, text: str) -> bool:
        """Whether the rule fires on ``text``."""
        return self.match(text) is not None
