"""A small, thread-safe Prometheus registry with the text exposition format (version 0.0.4).

Only what the service needs: counters and histograms with labels. Written here rather than
depending on ``prometheus_client`` to keep the ``server`` extra small.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

__all__ = ["Counter", "Histogram", "MetricsRegistry"]

_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Sequence[str], values: Sequence[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class Counter:
    """A monotonically increasing count per label combination."""

    def __init__(self, name: str, help_text: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()

    def inc(self, *labelvalues: str, amount: float = 1.0) -> None:
        if amount < 0:
            raise ValueError(f"a counter only goes up; got amount={amount}")
        key = tuple(str(v) for v in labelvalues)
        if len(key) != len(self.labelnames):
            raise ValueError(f"{self.name}: expected labels {self.labelnames}, got {key}")
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, *labelvalues: str) -> float:
        with self._lock:
            return self._values.get(tuple(labelvalues), 0.0)

    def expose(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        with self._lock:
            items = sorted(self._values.items())
        lines += [f"{self.name}{_labels(self.labelnames, k)} {_num(v)}" for k, v in items]
        return lines


class Histogram:
    """Observations (e.g. seconds) in cumulative buckets, with their sum and count."""

    def __init__(
        self,
        name: str,
        help_text: str,
        labelnames: Sequence[str] = (),
        buckets: Sequence[float] = _DEFAULT_BUCKETS,
    ) -> None:
        self.name, self.help, self.labelnames = name, help_text, tuple(labelnames)
        self.buckets = (*tuple(sorted(buckets)), math.inf)
        self._data: dict[tuple[str, ...], tuple[list[int], float]] = {}
        self._lock = threading.Lock()

    def observe(self, value: float, *labelvalues: str) -> None:
        key = tuple(str(v) for v in labelvalues)
        with self._lock:
            counts, total = self._data.get(key, ([0] * len(self.buckets), 0.0))
            for i, upper in enumerate(self.buckets):
                if value <= upper:
                    counts[i] += 1
            self._data[key] = (counts, total + value)

    def expose(self) -> list[str]:
        lines = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        with self._lock:
            items = sorted((k, (list(c), s)) for k, (c, s) in self._data.items())
        for key, (counts, total) in items:
            for upper, count in zip(self.buckets, counts, strict=True):
                le = f'le="{_num(upper)}"'
                lines.append(f"{self.name}_bucket{_labels(self.labelnames, key, le)} {count}")
            lines.append(f"{self.name}_sum{_labels(self.labelnames, key)} {_num(total)}")
            lines.append(f"{self.name}_count{_labels(self.labelnames, key)} {counts[-1]}")
        return lines


class MetricsRegistry:
    """The service's metrics; :meth:`expose` renders them all in the text format."""

    def __init__(self) -> None:
        self.requests = Counter(
            "tunegate_http_requests_total",
            "HTTP requests by method, route and status.",
            ("method", "route", "status"),
        )
        self.latency = Histogram(
            "tunegate_http_request_duration_seconds",
            "HTTP request duration in seconds.",
            ("method", "route"),
        )
        self.decisions = Counter(
            "tunegate_decisions_total", "Decisions made by the service, by route.", ("route",)
        )
        self.overrides = Counter(
            "tunegate_overrides_total",
            "Overrides and confirmations recorded, by reason code and kind.",
            ("reason_code", "kind"),
        )
        self.auth_failures = Counter(
            "tunegate_auth_failures_total", "Rejected requests by status (401/403).", ("status",)
        )

    def expose(self) -> str:
        lines: list[str] = []
        for metric in (
            self.requests,
            self.latency,
            self.decisions,
            self.overrides,
            self.auth_failures,
        ):
            lines += metric.expose()
        return "\n".join(lines) + "\n"
