"""Every package's ``__all__`` is exact: every public name of the package is in it, every
entry exists, nothing private is listed (after httpx's tests/test_exported_members.py).

For each package ``P`` (``tunegate`` and every subpackage):

* every entry of ``P.__all__`` exists, is unique and does not start with ``_``;
* every public attribute of ``P`` (not a submodule, not ``annotations``) is in ``P.__all__``,
  so a name imported into a package for its own use must take a leading underscore;
* every module of ``P`` that declares ``__all__`` lists only names that exist, once, and
  nothing private (a private module's ``__all__`` may serve sibling modules only).

Dunder names (``__version__``) are not private.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

import pytest

import tunegate


def _modules() -> list[ModuleType]:
    found = [tunegate]
    for info in pkgutil.walk_packages(tunegate.__path__, "tunegate."):
        if ".migrations" in info.name:
            continue  # alembic scripts, not importable as modules
        found.append(importlib.import_module(info.name))
    return found


MODULES = _modules()
PACKAGES = [m for m in MODULES if hasattr(m, "__path__")]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _check_all(module: ModuleType, *, required: bool) -> list[str]:
    exported = getattr(module, "__all__", None)
    if exported is None:
        return [f"{module.__name__} has no __all__"] if required else []
    problems = []
    if len(set(exported)) != len(exported):
        problems.append(f"{module.__name__}.__all__ has duplicates")
    problems += [
        f"{module.__name__}.__all__ lists the private {n!r}" for n in exported if _is_private(n)
    ]
    problems += [
        f"{module.__name__}.__all__ lists {n!r}, which does not exist"
        for n in exported
        if not hasattr(module, n)
    ]
    return problems


def violations(package: ModuleType) -> list[str]:
    problems = _check_all(package, required=True)
    exported = set(getattr(package, "__all__", ()))
    for name, value in vars(package).items():
        if name.startswith("_") or name == "annotations" or isinstance(value, ModuleType):
            continue
        if name not in exported:
            problems.append(f"{package.__name__}.{name} is public but not in __all__")
    prefix = package.__name__ + "."
    for module in MODULES:
        if hasattr(module, "__path__") or not module.__name__.startswith(prefix):
            continue
        if "." in module.__name__[len(prefix) :]:
            continue  # a module of a subpackage: checked with that subpackage
        problems += _check_all(module, required=False)
    return problems


def test_every_package_is_checked() -> None:
    names = {p.__name__ for p in PACKAGES}
    assert {
        "tunegate",
        "tunegate.lora",
        "tunegate.monitor",
        "tunegate.report",
        "tunegate.serving",
        "tunegate.simulate",
        "tunegate.store",
    } <= names


def test_a_violation_is_reported() -> None:
    """The check itself can fail: a package with a stray public import and a private entry."""
    fake = ModuleType("fake_pkg")
    fake.__path__ = []  # type: ignore[attr-defined]
    fake.__all__ = ["_hidden", "missing"]  # type: ignore[attr-defined]
    fake.Sequence = list  # type: ignore[attr-defined]
    found = violations(fake)
    assert any("private '_hidden'" in p for p in found)
    assert any("'missing', which does not exist" in p for p in found)
    assert any("fake_pkg.Sequence is public" in p for p in found)


@pytest.mark.parametrize("package", PACKAGES, ids=lambda p: p.__name__)
def test_package_all_is_exact(package: ModuleType) -> None:
    problems = violations(package)
    assert not problems, "\n".join(problems)
