"""The training set of a generative fine-tune (tunegate.train.build_generative_dataset):
review rules, duplicates and leakage against frozen suites, exact and near."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from tunegate.config import parse_workflow
from tunegate.errors import ConfigError, InputError, LeakageError
from tunegate.evaluate import freeze_generative_suite
from tunegate.records import GenerativeExample, ReviewStatus, ToolCall
from tunegate.train import build_generative_dataset, generative_dataset_hash

ANSWER = parse_workflow("name: kb\nkind: answer\n")


class WordEncoder:
    """Bag-of-words vectors: 'near' means the same words in another order or case."""

    def __init__(self) -> None:
        self.vocab: dict[str, int] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            words = [w.strip("?.,!").lower() for w in text.split()]
            for w in words:
                self.vocab.setdefault(w, len(self.vocab))
            rows.append(words)
        out = np.zeros((len(texts), 256), dtype=np.float32)
        for i, words in enumerate(rows):
            for w in words:
                out[i, self.vocab[w] % 256] += 1.0
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def _ex(
    i: str, text: str, *, status: ReviewStatus = ReviewStatus.REVIEWED, **kw: object
) -> GenerativeExample:
    fields: dict[str, object] = {"reference": f"answer {i}", **kw}
    return GenerativeExample(
        id=i, kind="answer", input=text, review_status=status, reviewer="ana", **fields
    )


def test_reviewed_examples_deduplicated_and_hashed() -> None:
    examples = [
        _ex("b", "How do I reset MFA?"),
        _ex("a", "how do I  reset mfa?"),  # the same input once normalized
        _ex("c", "Which VPN client is current?"),
        _ex("d", "Wi-Fi guest password?", answerable=False, reference=None),
        _ex("e", "Rejected one?", status=ReviewStatus.REJECTED),
    ]
    data = build_generative_dataset(examples, ANSWER, near_threshold=None)
    assert [e.id for e in data.examples] == ["a", "c", "d"]
    assert (
        data.dedup_report["exact"][0]["id"] == "b"
        and data.dedup_report["exact"][0]["same_as"] == "a"
    )
    assert data.manifest["per_target"] == {"abstain": 1, "answer": 2}
    assert data.manifest["rejected_dropped"] == 1
    assert data.hash == generative_dataset_hash(data.examples)
    # the hash follows the content: another reference, another hash
    changed = [e.model_copy(update={"reference": "other"}) if e.id == "c" else e for e in examples]
    assert build_generative_dataset(changed, ANSWER, near_threshold=None).hash != data.hash


def test_unreviewed_refused_unless_asked() -> None:
    examples = [_ex("a", "q one?"), _ex("p", "q two?", status=ReviewStatus.PENDING)]
    with pytest.raises(InputError, match=r"1 generative examples are not reviewed \(e.g. p\)"):
        build_generative_dataset(examples, ANSWER, near_threshold=None)
    data = build_generative_dataset(examples, ANSWER, include_unreviewed=True, near_threshold=None)
    assert data.manifest["unreviewed_included"] == 1


def test_answerable_without_reference_refused() -> None:
    bad = GenerativeExample(
        id="g",
        kind="answer",
        input="q?",
        gold_documents=[{"id": "d1"}],
        review_status=ReviewStatus.REVIEWED,
    )
    with pytest.raises(InputError, match="no reference answer"):
        build_generative_dataset([bad], ANSWER, near_threshold=None)


def test_leakage_exact_and_near_excluded_or_refused() -> None:
    suite = freeze_generative_suite(
        "frozen",
        [_ex("s1", "How do I reset MFA on my phone?"), _ex("s2", "Where is the VPN guide?")],
        ANSWER,
    )
    train = [
        _ex("t1", "how do i reset mfa on my phone?"),  # exact once normalized
        _ex("t2", "Where is the guide VPN"),  # the same words: near
        _ex("t3", "Who approves new laptops?"),
    ]
    data = build_generative_dataset(train, ANSWER, suites=[suite], encoder=WordEncoder())
    assert [e.id for e in data.examples] == ["t3"]
    how = {leak["id"]: leak["how"] for leak in data.leakage_report["excluded"]}
    assert how["t1"] == "exact" and how["t2"].startswith("near")
    assert data.leakage_report["per_suite"] == {"frozen": 2}
    with pytest.raises(LeakageError, match="t1 is exact to s1 of suite 'frozen'"):
        build_generative_dataset(
            train, ANSWER, suites=[suite], on_leak="raise", encoder=WordEncoder()
        )
    only = build_generative_dataset(train, ANSWER, suites=[suite], near_threshold=None)
    assert [e.id for e in only.examples] == ["t2", "t3"]  # exact check alone misses t2


def test_tool_call_targets_and_kind_checks() -> None:
    tools = parse_workflow(
        "name: t\nkind: tool_call\ntools:\n  - name: unlock\n    description: Unlock an account\n"
    )
    examples = [
        GenerativeExample(
            id="x",
            kind="tool_call",
            input="unlock bob",
            reviewer="r",
            review_status=ReviewStatus.REVIEWED,
            expected_tool=ToolCall(name="unlock", arguments={"user": "bob"}),
        ),
        GenerativeExample(
            id="y",
            kind="tool_call",
            input="hello",
            reviewer="r",
            review_status=ReviewStatus.REVIEWED,
        ),
        _ex("z", "an answer example in a tool workflow"),
    ]
    data = build_generative_dataset(examples, tools, near_threshold=None)
    assert data.manifest["per_target"] == {"no_tool": 1, "tool:unlock": 1}
    assert data.manifest["other_kind_ignored"] == 1
    classify = parse_workflow("name: c\nlabels:\n  a: {description: A}\n  b: {description: B}\n")
    with pytest.raises(ConfigError, match="a generative training set works on"):
        build_generative_dataset(examples, classify)
    with pytest.raises(InputError, match="no generative examples left"):
        build_generative_dataset([], ANSWER)
