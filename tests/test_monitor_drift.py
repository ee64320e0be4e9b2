"""Drift tests on constructed distributions: same -> not drifted (most seeds),
shifted -> drifted.
"""

from __future__ import annotations

import numpy as np
import pytest

from tunegate.errors import InputError
from tunegate.monitor import (
    DriftResult,
    drift_tests,
    get_drift_test,
    new_vocabulary_share,
    psi_score,
    register_drift_test,
    tokenize,
)

EMBEDDING = sorted(n for n, t in drift_tests().items() if t.kind == "embedding")
VOCABULARY = sorted(n for n, t in drift_tests().items() if t.kind == "vocabulary")
SEEDS = range(12)

WORDS = [f"w{i}" for i in range(300)]
ZIPF = 1.0 / np.arange(1, 301)
ZIPF /= ZIPF.sum()


# Embedding-like data: a few directions carry most of the variance (as in sentence embeddings).
SCALE = np.sqrt(np.r_[4.0, 3.0, 2.5, 2.0, np.full(12, 0.5)])


def gaussian(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    x = rng.normal(size=(n, 16)) * SCALE
    x[:, :4] += shift
    return x


def texts(
    rng: np.random.Generator, n: int, *, new_words: float = 0.0, tilt: float = 0.0
) -> list[str]:
    """Documents of 8-20 Zipf-distributed words; ``tilt`` reweights towards rarer words,
    ``new_words`` is the share of tokens drawn from a vocabulary the reference never used."""
    p = ZIPF ** (1.0 - tilt)
    p /= p.sum()
    out = []
    for _ in range(n):
        k = int(rng.integers(8, 21))
        words = list(rng.choice(WORDS, size=k, p=p))
        for i in range(k):
            if rng.random() < new_words:
                words[i] = f"novel{int(rng.integers(0, 40))}"
        out.append(" ".join(words))
    return out


def test_registry_lists_every_documented_test() -> None:
    assert set(drift_tests()) >= {"mmd_rbf", "psi_pca", "psi_tokens", "js_tokens", "new_vocabulary"}
    for test in drift_tests().values():
        assert test.default_threshold > 0 and test.description


@pytest.mark.parametrize("name", EMBEDDING)
def test_embedding_tests_same_distribution_mostly_not_drifted(name: str) -> None:
    test = get_drift_test(name)
    drifted = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        r = test(gaussian(rng, 300), gaussian(rng, 150), seed=seed)
        drifted += r.drifted
    assert drifted <= 2, f"{name}: {drifted}/{len(SEEDS)} false alarms"


@pytest.mark.parametrize("name", EMBEDDING)
def test_embedding_tests_detect_a_shift(name: str) -> None:
    test = get_drift_test(name)
    for seed in range(4):
        rng = np.random.default_rng(100 + seed)
        r = test(gaussian(rng, 300), gaussian(rng, 150, shift=1.0), seed=seed)
        assert r.drifted, (name, r)


@pytest.mark.parametrize("name", VOCABULARY)
def test_vocabulary_tests_same_distribution_mostly_not_drifted(name: str) -> None:
    test = get_drift_test(name)
    drifted = 0
    for seed in SEEDS:
        rng = np.random.default_rng(seed)
        drifted += test(texts(rng, 600), texts(rng, 150), seed=seed).drifted
    assert drifted <= 2, f"{name}: {drifted}/{len(SEEDS)} false alarms"


@pytest.mark.parametrize("name", VOCABULARY)
def test_vocabulary_tests_detect_new_words_and_reweighting(name: str) -> None:
    test = get_drift_test(name)
    for seed in range(3):
        rng = np.random.default_rng(200 + seed)
        r = test(texts(rng, 600), texts(rng, 150, new_words=0.15, tilt=0.5), seed=seed)
        assert r.drifted, (name, r)


def test_result_is_score_and_drifted_and_threshold_is_respected() -> None:
    rng = np.random.default_rng(0)
    ref, cur = texts(rng, 300), texts(rng, 100, new_words=0.2)
    test = get_drift_test("new_vocabulary")
    r = test(ref, cur)
    assert isinstance(r, DriftResult) and r.as_tuple() == (r.score, r.drifted)
    assert r.threshold == test.default_threshold
    assert not test(ref, cur, threshold=r.score + 0.01).drifted
    assert r.details["top_new_tokens"] and all(
        t.startswith("novel") for t in r.details["top_new_tokens"]
    )


def test_new_vocabulary_share_counts_occurrences() -> None:
    assert new_vocabulary_share(["vpn drops"], ["vpn zscaler zscaler drops"]) == 0.5
    assert new_vocabulary_share(["a"], ["!!!"]) == 0.0
    assert tokenize("Can't connect to VPN-2!") == ["can't", "connect", "to", "vpn", "2"]


def test_psi_score_properties() -> None:
    e = np.array([10, 20, 30, 40])
    assert psi_score(e, e * 3) == pytest.approx(0.0)
    assert psi_score(e, e * 3, pseudo_count=0.5) == pytest.approx(0.0, abs=1e-3)
    assert psi_score(e, np.array([0, 20, 30, 40])) > psi_score(
        e, np.array([0, 20, 30, 40]), pseudo_count=0.5
    )
    assert psi_score(e, e[::-1]) > 0.25
    assert psi_score(e, e[::-1]) == pytest.approx(psi_score(e[::-1], e))
    with pytest.raises(InputError, match="count vectors"):
        psi_score(e, np.array([1, 2]))


def test_bad_inputs_and_duplicate_registration_are_refused() -> None:
    with pytest.raises(InputError, match="dimension"):
        get_drift_test("mmd_rbf")(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(InputError, match=r"\(n, d\)"):
        get_drift_test("psi_pca")(np.zeros(5), np.zeros((5, 4)))
    with pytest.raises(InputError, match="sequence of texts"):
        get_drift_test("psi_tokens")("one string", ["a"])
    with pytest.raises(InputError, match="unknown drift test"):
        get_drift_test("nope")
    with pytest.raises(InputError, match="already registered"):
        register_drift_test(
            "mmd_rbf", kind="embedding", direction="p_value", default_threshold=0.05
        )(lambda a, b, rng: (0.0, None, {}))
