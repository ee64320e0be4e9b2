"""Attribution: IG and occlusion on a tiny random encoder; the aggregation; findings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tests._tiny_models import make_tiny_encoder

from tunegate.config import Workflow
from tunegate.diagnose import (
    TextAttribution,
    ZeroShotScorer,
    attribute_texts,
    confirm_finding,
    underweighted_terms,
    word_lists,
)
from tunegate.documents import Finding
from tunegate.errors import InputError, NotFoundError
from tunegate.store import Store

pytest.importorskip("captum")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("tiny") / "enc")


@pytest.fixture
def scorer(tiny: str, workflow: Workflow) -> ZeroShotScorer:
    return ZeroShotScorer(workflow, encoder_path=tiny, max_length=32)


@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_word_attributions(scorer: ZeroShotScorer, method: str) -> None:
    texts = ["laptop keyboard broken", "vpn tunnel disconnect again please"]
    out = attribute_texts(
        scorer, texts, [["hardware", "vpn_issue"], ["vpn_issue"]], method=method, n_steps=8
    )  # type: ignore[arg-type]
    assert out[0].words == ["laptop", "keyboard", "broken"]  # "broken" = word pieces merged
    assert set(out[0].scores) == {"hardware", "vpn_issue"}
    for a in out:
        for scores in a.scores.values():
            assert len(scores) == len(a.words)
            assert np.abs(scores).sum() == pytest.approx(1.0)


def test_ig_completeness(scorer: ZeroShotScorer) -> None:
    """Unnormalized IG sums to score(input) - score(baseline) (up to the step error)."""
    import torch
    from captum.attr import LayerIntegratedGradients

    enc = scorer.tokenizer(["laptop keyboard broken"], return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    base = ids.clone()
    base[0, 1:-1] = scorer.tokenizer.pad_token_id
    target = torch.tensor([scorer.labels.index("hardware")])
    lig = LayerIntegratedGradients(scorer.score, scorer.embedding_layer())
    attr, delta = lig.attribute(
        ids,
        baselines=base,
        additional_forward_args=(mask, target),
        n_steps=64,
        return_convergence_delta=True,
    )
    gap = float(scorer.score(ids, mask, target) - scorer.score(base, mask, target))
    assert float(attr.sum()) == pytest.approx(gap, abs=max(0.05 * abs(gap), 1e-3))
    assert abs(float(delta)) < 0.05 * max(abs(gap), 1e-2) + 1e-3


def test_bad_class_and_lengths(scorer: ZeroShotScorer) -> None:
    with pytest.raises(InputError, match="not one of"):
        attribute_texts(scorer, ["x"], [["nope"]])
    with pytest.raises(InputError, match="class lists"):
        attribute_texts(scorer, ["x", "y"], [["hardware"]])


def test_word_lists_match_attribution_words(scorer: ZeroShotScorer) -> None:
    texts = ["Laptop keyboard, broken!"]
    words = word_lists(scorer.tokenizer, texts)
    attr = attribute_texts(scorer, texts, [["hardware"]], method="occlusion")
    assert words[0] == attr[0].words


def _ta(
    words: list[str],
    to_a: list[float],
    to_p: list[float] | None = None,
    a: str = "security_incident",
    p: str = "account_unlock",
) -> TextAttribution:
    scores = {a: to_a} if to_p is None else {a: to_a, p: to_p}
    return TextAttribution(" ".join(words), words, scores, p if to_p is not None else a, a)


def test_underweighted_terms_names_distinctive_weak_words() -> None:
    overrides = [
        _ta(["locked", "authenticator", "push"], [-0.2, 0.05, 0.05], [0.8, 0.1, 0.1])
        for _ in range(20)
    ]
    reference = [_ta(["phishing", "email", "clicked"], [0.7, 0.2, 0.1]) for _ in range(20)]
    reference += [_ta(["locked", "password"], [0.6, 0.4], a="account_unlock") for _ in range(20)]
    terms, level = underweighted_terms(overrides, reference)
    assert level == pytest.approx((0.7 * 20 + 0.6 * 20) / 40)
    names = [t.term for t in terms]
    assert set(names) == {"authenticator", "push"}  # "locked" is common in correct tickets
    t = terms[0]
    assert t.label == "security_incident" and t.overrides_with == 20 and t.reference_with == 0
    assert t.attr_analyst == pytest.approx(0.05) and t.cue == "misleading"
    # a word the model already weighs like its main cues is not under-weighted
    strong = [_ta(["authenticator", "push"], [0.9, 0.1], [0.0, 0.0]) for _ in range(20)]
    assert [t.term for t in underweighted_terms(strong, reference)[0]] == ["push"]


def test_confirm_finding(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'x.db'}")
    docs = store.documents(Finding)
    docs.put("fnd_1", Finding(id="fnd_1", reason_code="R2", label="security_incident"))
    payload = confirm_finding(store, "fnd_1", reviewer="lead")
    assert payload["confirmed"] is True and payload["confirmed_by"] == "lead"
    stored = docs.get("fnd_1")
    assert stored is not None and stored.confirmed is True and stored.confirmed_by == "lead"
    with pytest.raises(NotFoundError, match="fnd_1"):
        confirm_finding(store, "fnd_2")
