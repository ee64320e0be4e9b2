"""The LLM judge (tunegate.generative.LlmJudgeChecker) and judge_agreement: the request it
sends, how it reads verdicts, judge errors counted (never silently "supported"), endpoint
errors raised; and its agreement with the hand-labelled sample against the REAL local
llama.cpp server (slow)."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tunegate.errors import InputError, LlmError, LlmUnavailableError
from tunegate.generative import (
    DEFAULT_RUBRIC,
    JUDGE_SCHEMA,
    Agreement,
    LabelledPair,
    LlmJudgeChecker,
    Passage,
    SupportChecker,
    assess_answer,
    judge_agreement,
    read_labelled_pairs,
)
from tunegate.llm import ChatClient, LocalLlmServer
from tunegate.metrics import cohen_kappa_score

SAMPLE = Path(__file__).parent / "data" / "support_sample.jsonl"


def completion(content: str | None, finish_reason: str = "stop") -> dict[str, Any]:
    return {
        "choices": [
            {"message": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
        ],
        "usage": {"prompt_tokens": 50, "completion_tokens": 6},
    }


def fake_client(
    answer: Callable[[dict[str, Any]], httpx.Response], seen: list[dict[str, Any]] | None = None
) -> ChatClient:
    """A ChatClient whose endpoint is ``answer(request body)`` (httpx MockTransport)."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if seen is not None:
            seen.append(body)
        return answer(body)

    client = ChatClient("http://judge.test/v1", transport=httpx.MockTransport(handler))
    client._sleep = lambda _s: None  # no real backoff in tests
    return client


def keyword_judge(body: dict[str, Any]) -> httpx.Response:
    """Supported exactly when the claim's last word occurs in the passages."""
    user = body["messages"][1]["content"]
    passages, claim = user.split("\n\nCLAIM: ")
    word = claim.rstrip(".").split()[-1].lower()
    return httpx.Response(200, json=completion(json.dumps({"supported": word in passages.lower()})))


def test_the_request_carries_the_rubric_the_schema_and_temperature_zero() -> None:
    seen: list[dict[str, Any]] = []
    judge = LlmJudgeChecker(fake_client(keyword_judge, seen), model="judge-7b")
    passages = ["Accounts lock after 5 failed attempts.", "Codes expire after 30 seconds."]
    assert judge.check(["Accounts lock after 5 failed attempts.", "Codes expire in 60s"], passages)
    assert judge.check(["They lock after five attempts."], passages) == [True]
    body = seen[0]
    assert body["model"] == "judge-7b"
    assert body["temperature"] == 0.0 and body["seed"] == 0
    assert body["response_format"] == {"type": "json_object", "schema": JUDGE_SCHEMA}
    assert body["messages"][0] == {"role": "system", "content": DEFAULT_RUBRIC}
    user = body["messages"][1]["content"]
    assert "[1] Accounts lock after 5 failed attempts.\n[2] Codes expire" in user
    assert user.endswith("CLAIM: Accounts lock after 5 failed attempts.")
    # one request per claim; no model field when none is named
    assert len(seen) == 3
    seen.clear()
    LlmJudgeChecker(fake_client(keyword_judge, seen)).check(["a b"], ["b"])
    assert "model" not in seen[0]
    assert isinstance(judge, SupportChecker)


def test_verdicts_are_read_from_the_json() -> None:
    judge = LlmJudgeChecker(fake_client(keyword_judge))
    verdicts = judge.assess(
        ["Passwords expire after 90 days.", "Passwords expire after ninety weeks."],
        ["Passwords expire after 90 days."],
    )
    assert [v.supported for v in verdicts] == [True, False]
    assert [v.error for v in verdicts] == [None, None]
    assert verdicts[0].raw == '{"supported": true}'
    # no claim, or no passage: no request and nothing supported
    assert judge.assess([], ["p"]) == []
    assert judge.check(["Anything."], []) == [False]
    assert judge.errors == 0


@pytest.mark.parametrize(
    ("content", "finish_reason", "error"),
    [
        ("supported: yes", "stop", "not JSON"),
        ('{"supported": "true"}', "stop", "not a boolean"),
        ('{"verdict": true}', "stop", 'no "supported" field'),
        ("[true]", "stop", 'no "supported" field'),
        ("", "stop", "no text"),
        (None, "stop", "no text"),
        ('{"supported": tr', "length", "cut off"),
    ],
)
def test_a_garbled_answer_is_a_judge_error_never_support(
    content: str | None, finish_reason: str, error: str
) -> None:
    judge = LlmJudgeChecker(
        fake_client(lambda _b: httpx.Response(200, json=completion(content, finish_reason)))
    )
    (verdict,) = judge.assess(["Codes expire after 30 seconds."], ["Codes expire after 30 s."])
    assert verdict.supported is False and verdict.error is not None and error in verdict.error
    assert verdict.raw == content
    assert judge.check(["Codes expire after 30 seconds."], ["x"]) == [False]
    assert judge.errors == 2
    # in assess_answer the claim counts as unsupported (it feeds the hallucination rate)
    result = assess_answer("Codes expire after 30 seconds [1].", [Passage("x")], judge)
    assert (result.n_claims, result.n_unsupported) == (1, 1)


def test_judge_errors_are_reported_by_judge_agreement() -> None:
    calls = {"n": 0}

    def sometimes_garbled(body: dict[str, Any]) -> httpx.Response:
        calls["n"] += 1
        if calls["n"] % 2 == 0:
            return httpx.Response(200, json=completion("I think so"))
        return keyword_judge(body)

    pairs = [
        LabelledPair("Backups run nightly.", "Backups run nightly.", True, "a"),
        LabelledPair("Backups run hourly.", "Backups run nightly.", False, "b"),
        LabelledPair("Laptops need BitLocker.", "Laptops need BitLocker.", True, "c"),
        LabelledPair("Laptops need FileVault.", "Laptops need BitLocker.", False, "d"),
    ]
    agreement = judge_agreement(LlmJudgeChecker(fake_client(sometimes_garbled)), pairs)
    # a: right (supported); b: garbled -> not supported (agrees by luck); c: right;
    # d: garbled -> not supported. Errors are reported, not hidden.
    assert agreement.errors == 2
    assert (agreement.true_positive, agreement.true_negative) == (2, 2)
    assert agreement.kappa == pytest.approx(1.0) and agreement.n == 4


def test_an_unreachable_or_refusing_endpoint_raises_the_clients_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    client = ChatClient("http://127.0.0.1:9/v1", transport=httpx.MockTransport(refuse))
    client.max_retries = 1
    client._sleep = lambda _s: None
    with pytest.raises(LlmUnavailableError, match=r"127\.0\.0\.1:9/v1.*tunegate llm serve"):
        LlmJudgeChecker(client).check(["A claim."], ["A passage."])
    bad = fake_client(lambda _b: httpx.Response(400, json={"error": "no such model"}))
    with pytest.raises(LlmError, match=r"HTTP 400.*no such model"):
        LlmJudgeChecker(bad, model="nope").check(["A claim."], ["A passage."])


def test_bad_arguments_are_refused() -> None:
    client = fake_client(keyword_judge)
    with pytest.raises(InputError, match="rubric is empty"):
        LlmJudgeChecker(client, rubric="  ")
    with pytest.raises(InputError, match="max_tokens"):
        LlmJudgeChecker(client, max_tokens=1)


class ListChecker:
    """A checker answering from a fixed list, one decision per call."""

    def __init__(self, decisions: list[bool]) -> None:
        self.decisions = iter(decisions)

    def check(self, claims: list[str], passages: list[str]) -> list[bool]:
        return [next(self.decisions) for _ in claims]


def test_judge_agreement_by_hand() -> None:
    human = [True, True, True, False, False, False, True, False]
    got = [True, True, False, False, False, True, True, False]
    pairs = [{"claim": f"c{i}", "passage": "p", "supported": h} for i, h in enumerate(human)]
    agreement = judge_agreement(ListChecker(got), pairs)
    # TP 3 (rows 0, 1, 6), FN 1 (row 2), FP 1 (row 5), TN 3; p_o = 6/8, p_e = 0.5 -> 0.5
    assert isinstance(agreement, Agreement)
    assert (agreement.true_positive, agreement.false_negative) == (3, 1)
    assert (agreement.false_positive, agreement.true_negative) == (1, 3)
    assert agreement.accuracy == pytest.approx(0.75)
    assert agreement.kappa == pytest.approx(0.5) == cohen_kappa_score(human, got)
    assert agreement.disagreements == ("2", "5") and agreement.errors == 0
    assert agreement.to_json()["kappa"] == pytest.approx(0.5)
    # one label everywhere from both raters: kappa undefined, reported as None in JSON
    same = judge_agreement(ListChecker([True]), [pairs[0]])
    assert math.isnan(same.kappa) and same.to_json()["kappa"] is None
    with pytest.raises(InputError, match="empty"):
        judge_agreement(ListChecker([]), [])
    with pytest.raises(InputError, match="labelled pair 0: missing supported"):
        judge_agreement(ListChecker([True]), [{"claim": "c", "passage": "p"}])
    with pytest.raises(InputError, match="supported must be true or false"):
        judge_agreement(ListChecker([True]), [{"claim": "c", "passage": "p", "supported": 1}])


def test_read_labelled_pairs(tmp_path: Path) -> None:
    pairs = read_labelled_pairs(SAMPLE)
    assert len(pairs) == 40 and sum(p.supported for p in pairs) == 20
    assert pairs[0].id == "1"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"claim": "c", "passage": "p", "supported": true}\n{oops\n', encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.jsonl:2: not JSON"):
        read_labelled_pairs(bad)
    with pytest.raises(InputError, match="cannot read"):
        read_labelled_pairs(tmp_path / "missing.jsonl")


@pytest.mark.slow
def test_llm_judge_agreement_with_the_hand_labelled_sample(llm_server: LocalLlmServer) -> None:
    """The LLM judge's kappa on the 40 hand-labelled pairs, through the real local server
    (SmolLM2-135M-Instruct). Recorded in docs/generative.md: kappa 0.00 (it answers
    "supported" to every pair: accuracy 0.50, no judge error). A 135M model is no judge; the
    test checks that the judge runs end to end and yields a defined kappa, not its quality."""
    client = ChatClient(llm_server.base_url, timeout_s=120, max_concurrency=1)
    judge = LlmJudgeChecker(client, model=llm_server.model)
    agreement = judge_agreement(judge, read_labelled_pairs(SAMPLE))
    print(f"\n[llm judge] SmolLM2-135M on the labelled sample: {agreement.to_json()}")
    assert agreement.n == 40
    assert math.isfinite(agreement.kappa) and -1.0 <= agreement.kappa <= 1.0
