"""tunegate.metrics is the one numeric core (issue #16, item 1).

Softmax, temperature fitting, normalized entropy, calibration error, macro-F1, seed spread, the
Mann-Kendall/Sen trend test and the two-proportion test are computed in ``tunegate.metrics`` and
nowhere else. Two checks keep it so:

* every module of the package outside ``metrics/`` is scanned (code only: comments and strings
  are dropped) for the tell-tale shapes of those formulas;
* the modules that need them import them from ``tunegate.metrics``.

The helpers take the package root as an argument, so the same checks can be pointed at another
tree (``violations(Path("/other/src/tunegate"))``). Only the standard library and the package's
location are imported here, so this file also runs against an older tree.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

import tunegate

ROOT = Path(tunegate.__file__).parent

FORBIDDEN: dict[str, list[str]] = {
    "softmax": [
        r"\blog_softmax\b",
        r"\blogsumexp\b",
        r"\bspecial\.softmax\b",
        r"\btorch\.softmax\b|\bfunctional\.softmax\b|\.softmax\(\s*dim\b",
        # the max-shift of a hand-written softmax: z - z.max(axis=1, keepdims=True)
        r"\.max\(\s*axis\s*=\s*-?1\s*,\s*keepdims\s*=\s*True\s*\)",
    ],
    "temperature fitting": [r"\bminimize_scalar\b"],
    "normalized entropy": [
        r"\b(\w+)\s*\*\s*np\.log2?\(\s*\1\s*\)",  # p * np.log(p)
        r"/\s*np\.log\(\s*(k|n_classes|len\(|\w+\.shape\[1\])",  # ... / np.log(k)
        r"\bstats\.entropy\b|\bspecial\.entr\b",
    ],
    "calibration bins / ECE": [
        r"\bnp\.digitize\(",
        r"linspace\(\s*0(\.0)?\s*,\s*1(\.0)?\s*,\s*(n_bins|_?ECE\w*)",
        r"\*\s*n_bins\b",
        r"abs\(\s*[\w\[\]\.]+\.mean\(\)\s*-\s*[\w\[\]\.]+\.mean\(\)\s*\)",
    ],
    "macro-F1": [r"\b2\s*\*\s*tp\b\s*/", r"\bf1_score\("],
    "seed spread": [r"\bddof\s*=\s*1\b"],
    "Mann-Kendall / Sen": [
        r"np\.sign\(\s*np\.triu\(",
        r"np\.sign\(\s*diff\b",
        r"\bkendalltau\b",
        r"np\.median\(\s*\(\s*x\[j\]",
    ],
    "two-proportion test": [
        r"\bpooled\s*\*\s*\(\s*1(\.0)?\s*-\s*pooled\s*\)",
        r"\bnorm\.sf\(|\bnorm\.cdf\(|\berfc\(",
        r"\bproportions_ztest\b",
    ],
}
"""Formula family -> regular expressions that match a hand-written copy of it in code."""

MUST_IMPORT_METRICS = (
    "routing.py",
    "models/_base.py",
    "models/_zeroshot.py",
    "models/_knn.py",
    "train/_calibration.py",
    "train/_seeds.py",
    "diagnose/_trend.py",
    "monitor/_triggers.py",
    "monitor/_figures.py",
)
"""Modules that use a core formula and must take it from tunegate.metrics."""

PENDING: dict[str, str] = {}
"""Modules known to hold a copy until a parallel change lands."""


def _code_lines(path: Path) -> dict[int, str]:
    """Line number -> the line's code with comments and string literals (docstrings) removed."""
    lines: dict[int, list[str]] = {}
    tokens = tokenize.generate_tokens(io.StringIO(path.read_text(encoding="utf-8")).readline)
    for tok in tokens:
        if tok.type in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE):
            continue
        if tok.type in (tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER):
            continue
        if tok.type == getattr(tokenize, "FSTRING_START", None):
            continue
        lines.setdefault(tok.start[0], []).append(tok.string)
    return {n: " ".join(parts) for n, parts in lines.items()}


def _normalize(code: str) -> str:
    # tokens were joined with spaces: glue attribute access and calls back together
    code = re.sub(r"\s*\.\s*", ".", code)
    code = re.sub(r"\s*\(\s*", "(", code)
    code = re.sub(r"\s*\)", ")", code)
    code = re.sub(r"\s*\[\s*", "[", code)
    return re.sub(r"\s*\]", "]", code)


def modules(root: Path) -> list[str]:
    """Every module of the package outside ``metrics/``, relative to ``root``."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*.py")
        if p.relative_to(root).parts[0] != "metrics"
    )


def copies_in(path: Path) -> list[str]:
    """``"line N: <family>: <code>"`` for every line of ``path`` that looks like a core
    formula written out by hand."""
    found = []
    for number, raw in sorted(_code_lines(path).items()):
        code = _normalize(raw)
        for family, patterns in FORBIDDEN.items():
            if any(re.search(p, code) for p in patterns):
                found.append(f"line {number}: {family}: {code.strip()}")
    return found


def imports_metrics(path: Path) -> bool:
    """True when ``path`` imports from ``tunegate.metrics`` (or imports that package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            if node.module == "tunegate.metrics" or node.module.startswith("tunegate.metrics."):
                return True
            if node.module == "tunegate" and any(a.name == "metrics" for a in node.names):
                return True
        if isinstance(node, ast.Import) and any(a.name == "tunegate.metrics" for a in node.names):
            return True
    return False


def violations(root: Path) -> list[str]:
    """Everything this file checks, over the package at ``root`` (PENDING modules included)."""
    out = [f"{rel}: {hit}" for rel in modules(root) for hit in copies_in(root / rel)]
    out += [
        f"{rel}: does not import from tunegate.metrics"
        for rel in MUST_IMPORT_METRICS
        if (root / rel).exists() and not imports_metrics(root / rel)
    ]
    return out


def _params() -> list[object]:
    return [
        pytest.param(
            rel, marks=pytest.mark.xfail(strict=True, reason=PENDING[rel]) if rel in PENDING else ()
        )
        for rel in modules(ROOT)
    ]


@pytest.mark.parametrize("rel", _params())
def test_no_copy_of_a_core_formula_outside_metrics(rel: str) -> None:
    hits = copies_in(ROOT / rel)
    assert not hits, (
        f"{rel} computes what tunegate.metrics computes; call the metrics function instead:\n"
        + "\n".join(hits)
    )


@pytest.mark.parametrize("rel", MUST_IMPORT_METRICS)
def test_users_of_the_core_import_it(rel: str) -> None:
    assert (ROOT / rel).exists(), f"{rel} moved: update MUST_IMPORT_METRICS"
    assert imports_metrics(ROOT / rel), f"{rel} must take its formulas from tunegate.metrics"


@pytest.mark.parametrize(
    ("family", "line"),
    [
        ("softmax", "z = z - z.max(axis=1, keepdims=True)"),
        ("softmax", "logp = log_softmax(z / t, axis=1)"),
        ("temperature fitting", "result = minimize_scalar(nll, bounds=b)"),
        ("normalized entropy", "terms = np.where(arr > 0.0, arr * np.log(arr), 0.0)"),
        ("normalized entropy", "h = -terms.sum(axis=1) / np.log(k)"),
        ("calibration bins / ECE", "edges = np.linspace(0.0, 1.0, _ECE_BINS + 1)"),
        ("calibration bins / ECE", "bins = np.minimum((conf * n_bins).astype(int), 9)"),
        ("calibration bins / ECE", "t += m.mean() * abs(correct[m].mean() - conf[m].mean())"),
        ("macro-F1", "scores.append(2 * tp / (2 * tp + fp + fn))"),
        ("seed spread", "std = float(values.std(ddof=1))"),
        ("Mann-Kendall / Sen", "return int(np.sign(np.triu(diff, k=1)).sum())"),
        ("two-proportion test", "var = pooled * (1.0 - pooled) * (1.0 / n0 + 1.0 / n1)"),
        ("two-proportion test", "return float(stats.norm.sf(diff / math.sqrt(var)))"),
    ],
)
def test_the_patterns_catch_the_copies_that_were_removed(
    family: str, line: str, tmp_path: Path
) -> None:
    path = tmp_path / "copy.py"
    path.write_text(f'"""softmax(z) * np.log(p), in a docstring, is fine."""\n{line}\n')
    hits = copies_in(path)
    assert hits and all(h.startswith("line 2: ") for h in hits), hits
    assert any(f": {family}: " in h for h in hits), hits


def test_pending_modules_are_the_only_known_copies() -> None:
    left = [v for v in violations(ROOT) if v.split(":", 1)[0] not in PENDING]
    assert left == []
