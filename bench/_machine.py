"""Machine details recorded by every benchmark in ``bench/`` (one copy, shared).

The bench scripts run as ``python bench/<script>.py``, so Python puts ``bench/`` first on
``sys.path`` and they import this module as ``from _machine import machine_info``.
"""

from __future__ import annotations

import os
import platform
from datetime import UTC, datetime
from importlib import metadata as md
from pathlib import Path
from typing import Any

__all__ = ["machine_info"]


def _cpu_model() -> str:
    """CPU model name from /proc/cpuinfo, else ``platform.processor()``, else ``"unknown"``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gb() -> float | None:
    """Total RAM in GiB (MemTotal of /proc/meminfo, 1 decimal); None if unreadable."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def _version(name: str) -> str | None:
    """Installed version of ``name``, a distribution or an import name; None if absent.

    Import names that differ from their distribution (``sklearn`` -> ``scikit-learn``) are
    resolved through ``importlib.metadata.packages_distributions``.
    """
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        pass
    for dist in md.packages_distributions().get(name, []):
        try:
            return md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None


def _load_1m() -> float | None:
    """1-minute load average (runnable processes); None where the OS does not report it."""
    try:
        return os.getloadavg()[0]
    except (OSError, AttributeError):
        return None


def machine_info(
    *packages: str,
    load_key: str | None = "load_avg_1m",
    platform_key: str | None = None,
) -> dict[str, Any]:
    """Describe the machine and software a benchmark ran on.

    Args:
        *packages: distribution or import names (``"torch"``, ``"sklearn"``) whose installed
            version is recorded under that same name; None for a package that is not installed.
        load_key: key for the 1-minute load average at call time; None leaves it out.
        platform_key: key for ``platform.platform()`` (e.g. ``"platform"`` or ``"os"``); None
            (the default) leaves it out.

    Returns:
        A JSON-serialisable dict: ``cpu`` (model name), ``cores`` (``os.cpu_count()``),
        ``ram_gb`` (GiB, None if unreadable), ``python`` (version), one key per package, ``date``
        (ISO 8601 UTC, seconds) and, when asked for, the platform string and the load average.
    """
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram_gb": _ram_gb(),
    }
    if platform_key is not None:
        info[platform_key] = platform.platform()
    info["python"] = platform.python_version()
    for name in packages:
        info[name] = _version(name)
    info["date"] = datetime.now(UTC).isoformat(timespec="seconds")
    if load_key is not None:
        info[load_key] = _load_1m()
    return info
