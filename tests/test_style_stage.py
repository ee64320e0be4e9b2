"""Style as its own stage (tunegate.generative.StyleRewriter, rewrite_outputs) and the
style_similarity_score metric: the rewrite is a new version whose citations, abstentions and
tool calls are carried through unchanged, whose broken rewrites are refused, and whose facts
are judged again by the support checker (a rewrite that changes a number is caught)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import httpx
import numpy as np
import pytest

from tunegate.errors import InputError, LlmUnavailableError
from tunegate.generative import (
    REWRITE_SCHEMA,
    EmbeddingSupportChecker,
    Passage,
    StyledGenerator,
    StyleRewriter,
    assess_answer,
    citation_markers,
    rewrite_outputs,
    style_similarity,
)
from tunegate.llm import ChatClient
from tunegate.metrics import style_similarity_score, unsupported_claim_rate
from tunegate.records import DocumentRef, GenerativeOutput, ToolCall

PASSAGES = {
    "pw": "Network passwords expire after 90 days.",
    "vpn": "The VPN client must be version 4.2.1 or later.",
}


def fake_client(rewrite: Callable[[str], str | None], seen: list[dict[str, Any]]) -> ChatClient:
    """An endpoint answering ``{"text": rewrite(answer)}`` (raw content when it returns a
    string starting with '!')."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append(body)
        answer = body["messages"][1]["content"].removeprefix("ANSWER:\n")
        text = rewrite(answer)
        content = text[1:] if text and text.startswith("!") else json.dumps({"text": text})
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 40, "completion_tokens": 20},
            },
        )

    return ChatClient("http://style.test/v1", transport=httpx.MockTransport(handler))


def outputs() -> list[GenerativeOutput]:
    base = {"model_version": "task-v1", "kind": "answer", "latency_ms": 100.0}
    return [
        GenerativeOutput(
            example_id="e1",
            answer="Passwords expire after 90 days [pw].",
            cited=[DocumentRef(id="pw", version="2")],
            prompt_tokens=200,
            completion_tokens=10,
            metadata={"retrieved": [{"doc_id": "pw", "text": PASSAGES["pw"]}]},
            **base,
        ),
        GenerativeOutput(
            example_id="e2",
            answer="I don't know: the documents do not cover printers.",
            abstained=True,
            **base,
        ),
        GenerativeOutput(
            example_id="e3",
            answer="You need VPN 4.2.1 or later [vpn].",
            cited=[DocumentRef(id="vpn")],
            **base,
        ),
        GenerativeOutput(
            example_id="e4",
            model_version="task-v1",
            kind="tool_call",
            answer="Calling reset.",
            tool_call=ToolCall(name="reset_password", arguments={"user": "ana"}),
        ),
    ]


HOUSE = "Warm and plain; start with 'Good news:' and address the reader as you."


def friendly(answer: str) -> str:
    return "Good news: " + answer.replace("Passwords", "your passwords").replace("You", "you")


def test_rewrite_carries_citations_abstentions_and_tool_calls_through() -> None:
    seen: list[dict[str, Any]] = []
    rewriter = StyleRewriter(fake_client(friendly, seen), instructions=HOUSE, model="m")
    task = outputs()
    styled = rewrite_outputs(task, rewriter)
    # only the two answers were sent; the abstention and the tool call were not rewritten
    assert len(seen) == 2
    assert seen[0]["temperature"] == 0.0 and seen[0]["model"] == "m"
    assert seen[0]["response_format"] == {"type": "json_object", "schema": REWRITE_SCHEMA}
    assert HOUSE in seen[0]["messages"][0]["content"]
    assert [o.answer for o in styled] == [
        "Good news: your passwords expire after 90 days [pw].",
        task[1].answer,
        "Good news: you need VPN 4.2.1 or later [vpn].",
        task[3].answer,
    ]
    for old, new in zip(task, styled, strict=True):
        assert new.model_version == rewriter.version_id != old.model_version
        assert new.id != old.id and new.example_id == old.example_id
        assert new.metadata["rewritten_from"] == old.id
        assert new.metadata["parent_version"] == "task-v1"
        assert "style_error" not in new.metadata
        # what the gate measures is unchanged
        assert new.cited == old.cited and new.abstained == old.abstained
        assert new.tool_call == old.tool_call and new.kind == old.kind
        assert citation_markers(new.answer or "") == citation_markers(old.answer or "")
    assert styled[0].metadata["retrieved"] == task[0].metadata["retrieved"]
    # the style version pays for both stages
    assert styled[0].latency_ms >= task[0].latency_ms
    assert (styled[0].prompt_tokens, styled[0].completion_tokens) == (240, 30)
    assert (styled[1].prompt_tokens, styled[1].latency_ms) == (0, 100.0)
    # the task outputs are untouched, and the version id is stable for the same style
    assert task[0].answer == "Passwords expire after 90 days [pw]."
    again = StyleRewriter(fake_client(friendly, []), instructions=HOUSE, model="m")
    assert again.version_id == rewriter.version_id and rewriter.version_id.startswith("style-")
    other = StyleRewriter(fake_client(friendly, []), instructions="Terse.", model="m")
    assert other.version_id != rewriter.version_id
    named = StyleRewriter(fake_client(friendly, []), instructions=HOUSE, version_id="gen-abc")
    assert rewrite_outputs(task[:1], named)[0].model_version == "gen-abc"


@pytest.mark.parametrize(
    ("rewrite", "error"),
    [
        (lambda a: a.replace(" [pw]", "").replace(" [vpn]", ""), "lost ['[pw]']"),
        (lambda a: a + " See also [doc-9].", "added ['[doc-9]']"),
        (lambda a: "!Sure! Here is the rewrite: " + a, "not JSON"),
        (lambda a: '!{"answer": "hi"}', 'no non-empty "text"'),
        (lambda a: "   ", 'no non-empty "text"'),
    ],
)
def test_a_rewrite_that_breaks_the_answer_is_not_used(
    rewrite: Callable[[str], str], error: str
) -> None:
    rewriter = StyleRewriter(fake_client(rewrite, []), instructions=HOUSE)
    task = outputs()
    styled = rewrite_outputs(task, rewriter)
    assert styled[0].answer == task[0].answer  # the task text is kept
    assert error in styled[0].metadata["style_error"]
    assert styled[0].model_version == rewriter.version_id


class SameEncoder:
    """Every text gets the same unit embedding: only the numbers/entities rule decides."""

    path = "same"
    backend = "stub"
    max_length = 128
    batch_size = 8
    truncated_total = 0
    dim = 2

    def embed(self, texts: Sequence[str], **_: object) -> np.ndarray:
        return np.tile(np.array([1.0, 0.0]), (len(texts), 1))


def hallucination_rate(outs: list[GenerativeOutput]) -> float:
    checker = EmbeddingSupportChecker(SameEncoder(), threshold=0.5)  # type: ignore[arg-type]
    supports = [
        assess_answer(o.answer or "", [Passage(PASSAGES[c.id]) for c in o.cited], checker)
        for o in outs
        if not o.abstained and o.tool_call is None
    ]
    return unsupported_claim_rate(
        [s.n_claims for s in supports], [s.n_unsupported for s in supports]
    )


def test_a_rewrite_that_changes_a_number_is_caught_by_the_support_checker() -> None:
    task = outputs()
    faithful = rewrite_outputs(task, StyleRewriter(fake_client(friendly, []), instructions=HOUSE))
    # the tone pass "rounds" 90 days to three months and drops a digit of the version
    sloppy = StyleRewriter(
        fake_client(
            lambda a: friendly(a).replace("90 days", "three months").replace("4.2.1", "4.2"), []
        ),
        instructions=HOUSE,
    )
    careless = rewrite_outputs(task, sloppy)
    assert "style_error" not in careless[0].metadata  # the stage itself does not guard facts
    assert hallucination_rate(task) == 0.0
    assert hallucination_rate(faithful) == 0.0  # the same metric does not get worse
    assert hallucination_rate(careless) == 1.0  # both rewritten claims are now unsupported


def test_an_unreachable_rewriter_raises() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    client = ChatClient("http://127.0.0.1:9/v1", transport=httpx.MockTransport(refuse))
    client.max_retries = 0
    with pytest.raises(LlmUnavailableError, match="could not be reached"):
        rewrite_outputs(outputs(), StyleRewriter(client, instructions=HOUSE))
    with pytest.raises(InputError, match="instructions is empty"):
        StyleRewriter(client, instructions=" ")


def test_style_similarity_score_by_hand() -> None:
    house = np.array([[1.0, 0.0], [0.0, 1.0]])
    # text 0 matches house 0 (cos 1); text 1 at 45 degrees (cos 0.7071 to both); text 2 is
    # (-1, 0): cos -1 and 0, best 0; unnormalised rows are normalised first
    texts = np.array([[3.0, 0.0], [1.0, 1.0], [-2.0, 0.0]])
    expected = (1.0 + np.sqrt(0.5) + 0.0) / 3
    assert style_similarity_score(texts, house) == pytest.approx(expected)
    # order of texts and of house examples does not matter
    assert style_similarity_score(texts[::-1], house[::-1]) == pytest.approx(expected)
    assert style_similarity_score(house, house) == pytest.approx(1.0)
    with pytest.raises(InputError, match="dimension 2 and house_embeddings 3"):
        style_similarity_score(texts, np.ones((1, 3)))
    with pytest.raises(InputError, match=r"text_embeddings\[1\] is a zero vector"):
        style_similarity_score([[1.0, 0.0], [0.0, 0.0]], house)
    with pytest.raises(InputError, match="non-empty"):
        style_similarity_score(np.zeros((0, 2)), house)
    with pytest.raises(InputError, match="non-finite"):
        style_similarity_score([[np.nan, 1.0]], house)


class KeywordEncoder(SameEncoder):
    """'Good news' texts point one way, the rest the other."""

    def embed(self, texts: Sequence[str], **_: object) -> np.ndarray:
        return np.array([[1.0, 0.0] if "Good news" in t else [0.0, 1.0] for t in texts])


def test_style_similarity_encodes_and_scores() -> None:
    house = ["Good news: your laptop is ready."]
    task = outputs()
    styled = rewrite_outputs(task, StyleRewriter(fake_client(friendly, []), instructions=HOUSE))
    answers = [0, 2]
    before = style_similarity([task[i].answer or "" for i in answers], house, KeywordEncoder())  # type: ignore[arg-type]
    after = style_similarity([styled[i].answer or "" for i in answers], house, KeywordEncoder())  # type: ignore[arg-type]
    assert (before, after) == (pytest.approx(0.0), pytest.approx(1.0))
    with pytest.raises(InputError, match="at least one text"):
        style_similarity([], house, KeywordEncoder())  # type: ignore[arg-type]


class FakeTaskGenerator:
    """A task version answering every example with its canned output."""

    version_id = "task-v1"

    def __init__(self) -> None:
        self.by_example = {o.example_id: o for o in outputs()}

    def generate(self, example: Any) -> GenerativeOutput:
        return self.by_example[example.id]


def test_the_style_version_is_a_generator_of_its_own() -> None:
    rewriter = StyleRewriter(fake_client(friendly, []), instructions=HOUSE)
    generator = StyledGenerator(FakeTaskGenerator(), rewriter)
    assert generator.version_id == rewriter.version_id

    class Example:
        id = "e1"

    out = generator.generate(Example())
    assert out.answer == "Good news: your passwords expire after 90 days [pw]."
    assert out.model_version == rewriter.version_id
    assert out.metadata["parent_version"] == "task-v1"
    same = StyleRewriter(fake_client(friendly, []), instructions=HOUSE, version_id="task-v1")
    with pytest.raises(InputError, match="its own id"):
        StyledGenerator(FakeTaskGenerator(), same)


def test_a_registered_style_version_builds_on_its_task_version(tmp_path: Any) -> None:
    from tunegate.config import parse_workflow
    from tunegate.generative import (
        ChatGenerator,
        StyledGenerator,
        build_generator,
        register_generator,
    )
    from tunegate.records import GeneratorConfig
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    workflow = parse_workflow("name: kb\nkind: answer\n")
    task = register_generator(store, workflow, GeneratorConfig(model="smol"))
    style = register_generator(
        store,
        workflow,
        GeneratorConfig(model="smol", stage="style", parent=task.id, system_prompt="Be warm."),
    )
    built = build_generator(workflow, style, store)
    assert isinstance(built, StyledGenerator) and built.version_id == style.id
    assert isinstance(built.task, ChatGenerator) and built.task.version_id == task.id
    assert built.rewriter.instructions == "Be warm."
    orphan = register_generator(
        store, workflow, GeneratorConfig(model="smol", stage="style", system_prompt="Be warm.")
    )
    with pytest.raises(InputError, match="without a task version"):
        build_generator(workflow, orphan, store)
    mute = register_generator(
        store, workflow, GeneratorConfig(model="smol", stage="style", parent=task.id)
    )
    with pytest.raises(InputError, match="without instructions"):
        build_generator(workflow, mute, store)
