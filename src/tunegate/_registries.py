"""A named registry: a decorator adds an entry under a unique name, a duplicate is refused.

Verdict rules (:mod:`tunegate.evaluate`), gate conditions and triage rules
(:mod:`tunegate.diagnose`) each keep one. Entries are kept in registration order, which is
the order their findings are reported in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Generic, TypeVar

__all__ = ["NamedRegistry"]

T = TypeVar("T")


class NamedRegistry(Generic[T]):
    """Entries by name, in registration order; :meth:`add` refuses a name already taken."""

    def __init__(self, what: str) -> None:
        self.what = what
        """What the entries are (``"verdict rule"``), for error messages."""
        self._entries: dict[str, T] = {}

    def add(self, name: str, entry: T) -> T:
        """Register ``entry`` under ``name``; registering a name twice raises ValueError."""
        if not name:
            raise ValueError(f"a {self.what} needs a non-empty name")
        if name in self._entries:
            raise ValueError(f"a {self.what} named {name!r} is already registered")
        self._entries[name] = entry
        return entry

    def view(self) -> Mapping[str, T]:
        """A read-only view of the entries, by name, in registration order."""
        return MappingProxyType(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return iter(list(self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)
