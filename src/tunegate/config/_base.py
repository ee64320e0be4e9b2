"""The strict base of every workflow-config model (unknown keys are errors; frozen), and the
metadata condition shared by slices and retrieval filters."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class MetaCondition(_Strict):
    """A predicate over one metadata field; every condition given must hold."""

    eq: Any = None
    """The field equals this value."""
    in_: list[Any] | None = Field(default=None, alias="in")
    """The field is one of these values."""
    not_in: list[Any] | None = None
    """The field is none of these values."""
    gte: float | None = None
    """The field is a number >= this."""
    lt: float | None = None
    """The field is a number < this."""

    def holds(self, value: Any) -> bool:
        if value is None:
            return False
        if self.eq is not None and value != self.eq:
            return False
        if self.in_ is not None and value not in self.in_:
            return False
        if self.not_in is not None and value in self.not_in:
            return False
        if self.gte is not None or self.lt is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                return False
            if self.gte is not None and number < self.gte:
                return False
            if self.lt is not None and number >= self.lt:
                return False
        return True
