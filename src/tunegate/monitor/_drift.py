"""Input-drift tests: registered objects with a default threshold that return (score, drifted).

Two kinds of input are compared with the data a model was built on:

* ``embedding`` tests take two ``(n, d)`` float arrays of text embeddings;
* ``vocabulary`` tests take two sequences of texts (tokenized by :func:`tokenize`).

Each test is either a **p-value** test (``score`` is the p-value; drifted when
``score < threshold``) or a **distance** test (``score`` is the distance; drifted when
``score >= threshold``). Register a new one with :func:`register_drift_test`.

Registered tests (default thresholds, see docs/monitoring.md):

=================  ==========  ========  =========================================================
name               kind        score     drifted when
=================  ==========  ========  =========================================================
``mmd_rbf``        embedding   p-value   p < 0.05, permutation test of MMD² with an RBF kernel
``psi_pca``        embedding   PSI       max PSI over the top-5 principal components, less the
                                         small-sample bias 9 (1/n + 1/m), >= 0.2
``psi_tokens``     vocabulary  PSI       PSI over the 100 most frequent build tokens + other >= 0.2
``js_tokens``      vocabulary  p-value   p < 0.05, permutation test (over documents) of the
                                         Jensen-Shannon distance between token distributions
``new_vocabulary`` vocabulary  excess    share of tokens never seen in the build data, minus the
                                         same share for held-out build texts, >= 0.02
=================  ==========  ========  =========================================================
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from tunegate.errors import InputError
from tunegate.text import words

__all__ = [
    "DEFAULT_EMBEDDING_TESTS",
    "DEFAULT_VOCABULARY_TESTS",
    "DriftResult",
    "DriftTest",
    "drift_tests",
    "get_drift_test",
    "new_vocabulary_share",
    "psi_score",
    "register_drift_test",
    "tokenize",
]

DriftKind = Literal["embedding", "vocabulary"]
Direction = Literal["p_value", "distance"]
_RawResult = tuple[float, float | None, dict[str, Any]]

DEFAULT_EMBEDDING_TESTS: tuple[str, ...] = ("mmd_rbf",)
DEFAULT_VOCABULARY_TESTS: tuple[str, ...] = ("psi_tokens", "new_vocabulary")

_PSI_EPS = 1e-4


def tokenize(text: str) -> list[str]:
    """Lowercased NFKC word tokens (letters/digits, with an inner apostrophe)."""
    return words(text, pattern="vocabulary")


@dataclass(frozen=True)
class DriftResult:
    """The outcome of one drift test on one window."""

    test: str
    kind: DriftKind
    score: float
    """The p-value (p-value tests) or the distance (distance tests)."""
    threshold: float
    drifted: bool
    direction: Direction
    details: dict[str, Any] = field(default_factory=dict)
    """The statistic, sample sizes, and test-specific figures."""

    def as_tuple(self) -> tuple[float, bool]:
        return self.score, self.drifted

    def to_dict(self) -> dict[str, Any]:
        return {
            "test": self.test,
            "kind": self.kind,
            "score": self.score,
            "threshold": self.threshold,
            "drifted": self.drifted,
            "direction": self.direction,
            "details": self.details,
        }


@dataclass(frozen=True)
class DriftTest:
    """A registered drift test; call it as ``test(reference, current, threshold=None, seed=0)``."""

    name: str
    kind: DriftKind
    direction: Direction
    default_threshold: float
    description: str
    func: Callable[[Any, Any, np.random.Generator], _RawResult] = field(repr=False)

    def __call__(
        self, reference: Any, current: Any, *, threshold: float | None = None, seed: int = 0
    ) -> DriftResult:
        ref: Any
        cur: Any
        if self.kind == "embedding":
            ref = _check_embeddings(reference, "reference")
            cur = _check_embeddings(current, "current")
            if ref.shape[1] != cur.shape[1]:
                raise InputError(
                    f"{self.name}: reference has dimension {ref.shape[1]} but current "
                    f"has {cur.shape[1]}; embed both with the same encoder"
                )
        else:
            ref = _check_texts(reference, "reference")
            cur = _check_texts(current, "current")
        limit = self.default_threshold if threshold is None else float(threshold)
        score, _, details = self.func(ref, cur, np.random.default_rng(seed))
        drifted = score < limit if self.direction == "p_value" else score >= limit
        return DriftResult(
            self.name, self.kind, float(score), limit, bool(drifted), self.direction, details
        )


_REGISTRY: dict[str, DriftTest] = {}


def register_drift_test(
    name: str,
    *,
    kind: DriftKind,
    direction: Direction,
    default_threshold: float,
    description: str = "",
) -> Callable[[Callable[[Any, Any, np.random.Generator], _RawResult]], DriftTest]:
    """Decorator registering ``func(reference, current, rng) -> (score, statistic, details)``."""

    def wrap(func: Callable[[Any, Any, np.random.Generator], _RawResult]) -> DriftTest:
        if name in _REGISTRY:
            raise InputError(
                f"a drift test named {name!r} is already registered; pick another "
                f"name (registered: {sorted(_REGISTRY)})"
            )
        test = DriftTest(
            name,
            kind,
            direction,
            default_threshold,
            description or (func.__doc__ or "").strip().split("\n")[0],
            func,
        )
        _REGISTRY[name] = test
        return test

    return wrap


def get_drift_test(name: str) -> DriftTest:
    """The registered test called ``name``."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise InputError(f"unknown drift test {name!r}; registered: {sorted(_REGISTRY)}") from None


def drift_tests() -> dict[str, DriftTest]:
    """All registered tests by name."""
    return dict(_REGISTRY)


def _check_embeddings(value: Any, what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2 or not np.isfinite(arr).all():
        raise InputError(
            f"{what} embeddings must be a finite (n, d) array with n >= 2; got shape {arr.shape}"
        )
    return arr


def _check_texts(value: Any, what: str) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) == 0:
        raise InputError(
            f"{what} must be a non-empty sequence of texts; got {type(value).__name__}"
        )
    return [str(v) for v in value]


def psi_score(
    expected: np.ndarray, actual: np.ndarray, *, pseudo_count: float = 0.0, eps: float = _PSI_EPS
) -> float:
    """Population-stability index between two bin-count (or share) vectors of one binning.

    PSI = sum((a - e) * ln(a / e)) over bins of shares, after adding ``pseudo_count`` to every
    bin's count, with shares floored at ``eps``. Common reading: < 0.1 stable, 0.1-0.25
    moderate shift, > 0.25 large shift.
    """
    e = np.asarray(expected, dtype=np.float64)
    a = np.asarray(actual, dtype=np.float64)
    if e.shape != a.shape or e.sum() <= 0 or a.sum() <= 0:
        raise InputError(
            f"psi_score needs two non-empty count vectors of one shape; got "
            f"{e.shape} (sum {e.sum()}) and {a.shape} (sum {a.sum()})"
        )
    e, a = e + pseudo_count, a + pseudo_count
    e = np.maximum(e / e.sum(), eps)
    a = np.maximum(a / a.sum(), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def _subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    if x.shape[0] <= limit:
        return x
    return x[rng.choice(x.shape[0], size=limit, replace=False)]


_MMD_MAX_N = 400
_MMD_PERMUTATIONS = 200


@register_drift_test("mmd_rbf", kind="embedding", direction="p_value", default_threshold=0.05)
def _mmd_rbf(ref: np.ndarray, cur: np.ndarray, rng: np.random.Generator) -> _RawResult:
    """Permutation test of the unbiased MMD² with an RBF kernel (median-heuristic bandwidth).

    Each side is subsampled to at most 400 rows; 200 permutations; p = (1 + #{perm >= obs}) /
    (1 + 200).
    """
    x = _subsample(ref, _MMD_MAX_N, rng)
    y = _subsample(cur, _MMD_MAX_N, rng)
    z = np.vstack([x, y])
    sq = np.sum(z * z, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
    off = d2[np.triu_indices_from(d2, k=1)]
    bandwidth = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    k = np.exp(-d2 / bandwidth)
    np.fill_diagonal(k, 0.0)
    n, m = x.shape[0], y.shape[0]

    def mmd2(masks: np.ndarray) -> np.ndarray:
        a = masks.astype(np.float64)
        b = 1.0 - a
        ka = a @ k
        kb = b @ k
        sxx = np.sum(ka * a, axis=1)
        syy = np.sum(kb * b, axis=1)
        sxy = np.sum(ka * b, axis=1)
        out: np.ndarray = sxx / (n * (n - 1)) + syy / (m * (m - 1)) - 2.0 * sxy / (n * m)
        return out

    observed_mask = np.zeros((1, n + m), dtype=bool)
    observed_mask[0, :n] = True
    observed = float(mmd2(observed_mask)[0])
    perms = np.zeros((_MMD_PERMUTATIONS, n + m), dtype=bool)
    for i in range(_MMD_PERMUTATIONS):
        perms[i, rng.choice(n + m, size=n, replace=False)] = True
    null = mmd2(perms)
    p = (1.0 + float(np.sum(null >= observed))) / (1.0 + _MMD_PERMUTATIONS)
    return (
        p,
        observed,
        {
            "mmd2": observed,
            "bandwidth": bandwidth,
            "n_reference": n,
            "n_current": m,
            "permutations": _MMD_PERMUTATIONS,
        },
    )


_PCA_COMPONENTS = 5
_PSI_BINS = 10


@register_drift_test("psi_pca", kind="embedding", direction="distance", default_threshold=0.2)
def _psi_pca(ref: np.ndarray, cur: np.ndarray, rng: np.random.Generator) -> _RawResult:
    """Max PSI over projections onto the reference's top-5 principal components, less its
    small-sample bias (10 quantile bins of the reference)."""
    # Components fitted on one half of the reference, bins and expected shares from the other:
    # projecting the fitting sample itself would overstate its spread along the components.
    order = rng.permutation(ref.shape[0])
    half = ref.shape[0] // 2
    fit, ref = ref[order[:half]], ref[order[half:]]
    mean = fit.mean(axis=0)
    centred = fit - mean
    _, vectors = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues, (d, d)
    c = min(_PCA_COMPONENTS, vectors.shape[1], max(fit.shape[0] - 1, 1))
    top = vectors[:, ::-1][:, :c]
    pr = (ref - mean) @ top
    pc = (cur - mean) @ top
    values = []
    for j in range(c):
        edges = np.unique(np.quantile(pr[:, j], np.linspace(0, 1, _PSI_BINS + 1)[1:-1]))
        e = np.bincount(np.searchsorted(edges, pr[:, j]), minlength=edges.size + 1)
        a = np.bincount(np.searchsorted(edges, pc[:, j]), minlength=edges.size + 1)
        values.append(psi_score(e, a, pseudo_count=0.5))
    # Under no drift E[PSI] ~ (bins - 1) * (1/n + 1/m) (its chi-square limit): subtract it so
    # that the threshold means the same for a small weekly window as for a large one.
    bias = (_PSI_BINS - 1) * (1.0 / ref.shape[0] + 1.0 / cur.shape[0])
    score = max(values) - bias
    return (
        score,
        score,
        {
            "psi_per_component": values,
            "small_sample_bias": bias,
            "n_reference": int(ref.shape[0]),
            "n_current": int(cur.shape[0]),
        },
    )


_TOP_TOKENS = 100


@register_drift_test("psi_tokens", kind="vocabulary", direction="distance", default_threshold=0.2)
def _psi_tokens(ref: list[str], cur: list[str], rng: np.random.Generator) -> _RawResult:
    """PSI of token shares over the 100 most frequent build tokens plus one 'other' bin."""
    rc = Counter(t for text in ref for t in tokenize(text))
    cc = Counter(t for text in cur for t in tokenize(text))
    top = [t for t, _ in rc.most_common(_TOP_TOKENS)]
    if not top or not cc:
        return 0.0, 0.0, {"note": "no tokens"}
    e = np.array([rc[t] for t in top] + [sum(rc.values()) - sum(rc[t] for t in top)], float)
    a = np.array([cc[t] for t in top] + [sum(cc.values()) - sum(cc[t] for t in top)], float)
    score = psi_score(e, a, pseudo_count=0.5)
    ea, aa = e / e.sum(), a / a.sum()
    contrib = (np.maximum(aa, _PSI_EPS) - np.maximum(ea, _PSI_EPS)) * np.log(
        np.maximum(aa, _PSI_EPS) / np.maximum(ea, _PSI_EPS)
    )
    names = [*top, "<other>"]
    order = np.argsort(-contrib)[:5]
    return (
        score,
        score,
        {
            "top_contributors": {names[i]: float(contrib[i]) for i in order},
            "other_share_reference": float(ea[-1]),
            "other_share_current": float(aa[-1]),
        },
    )


def _js_distance(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Row-wise Jensen-Shannon distance (base 2, in [0, 1]) between count rows."""
    p = p / np.maximum(p.sum(axis=-1, keepdims=True), 1e-12)
    q = q / np.maximum(q.sum(axis=-1, keepdims=True), 1e-12)
    mid = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / mid), 0.0).sum(axis=-1)
        kq = np.where(q > 0, q * np.log2(q / mid), 0.0).sum(axis=-1)
    out: np.ndarray = np.sqrt(np.maximum(0.5 * (kp + kq), 0.0))
    return out


_JS_MAX_DOCS = 400
_JS_PERMUTATIONS = 100


@register_drift_test("js_tokens", kind="vocabulary", direction="p_value", default_threshold=0.05)
def _js_tokens(ref: list[str], cur: list[str], rng: np.random.Generator) -> _RawResult:
    """Permutation test (over documents) of the Jensen-Shannon distance of token distributions.

    Each side is subsampled to at most 400 documents; 100 permutations.
    """
    ri = rng.permutation(len(ref))[:_JS_MAX_DOCS]
    ci = rng.permutation(len(cur))[:_JS_MAX_DOCS]
    docs = [Counter(tokenize(ref[i])) for i in ri] + [Counter(tokenize(cur[i])) for i in ci]
    vocab = {t: j for j, t in enumerate(sorted({t for d in docs for t in d}))}
    counts = np.zeros((len(docs), max(len(vocab), 1)))
    for i, d in enumerate(docs):
        for t, c in d.items():
            counts[i, vocab[t]] = c
    n = len(ri)
    mask = np.zeros((_JS_PERMUTATIONS + 1, len(docs)))
    mask[0, :n] = 1.0
    for i in range(1, _JS_PERMUTATIONS + 1):
        mask[i, rng.choice(len(docs), size=n, replace=False)] = 1.0
    dist = _js_distance(mask @ counts, (1.0 - mask) @ counts)
    observed = float(dist[0])
    p = (1.0 + float(np.sum(dist[1:] >= observed))) / (1.0 + _JS_PERMUTATIONS)
    return (
        p,
        observed,
        {
            "js_distance": observed,
            "n_reference": n,
            "n_current": len(ci),
            "permutations": _JS_PERMUTATIONS,
        },
    )


def new_vocabulary_share(reference: Sequence[str], current: Sequence[str]) -> float:
    """Share of ``current``'s token occurrences whose token never occurs in ``reference``."""
    vocab = {t for text in reference for t in tokenize(text)}
    tokens = [t for text in current for t in tokenize(text)]
    if not tokens:
        return 0.0
    return sum(t not in vocab for t in tokens) / len(tokens)


@register_drift_test(
    "new_vocabulary", kind="vocabulary", direction="distance", default_threshold=0.02
)
def _new_vocabulary(ref: list[str], cur: list[str], rng: np.random.Generator) -> _RawResult:
    """Share of tokens never seen in the build data, in excess of the build data's own rate.

    The baseline rate holds out ``min(len(current), len(reference) // 2)`` reference texts and
    measures their share of tokens unseen in the rest, so typos and rare words that are normal
    for the domain do not count as drift.
    """
    share = new_vocabulary_share(ref, cur)
    hold = min(len(cur), len(ref) // 2)
    baseline = 0.0
    if hold >= 1:
        order = rng.permutation(len(ref))
        held = [ref[i] for i in order[:hold]]
        rest = [ref[i] for i in order[hold:]]
        baseline = new_vocabulary_share(rest, held)
    vocab = {t for text in ref for t in tokenize(text)}
    new = Counter(t for text in cur for t in tokenize(text) if t not in vocab)
    score = share - baseline
    return (
        score,
        score,
        {
            "new_share": share,
            "baseline_share": baseline,
            "top_new_tokens": dict(new.most_common(10)),
        },
    )
