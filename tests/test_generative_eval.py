"""The generative spine: prompts and output format, the chat generator (fake transport, tiny
knowledge base), scoring against hand-computed cases, runs, and the generative verdict; one
slow test runs an answer and a tool_call suite end to end against the real local LLM server."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import numpy as np
import pytest

from tunegate.config import GenerativeRules, Workflow, parse_workflow
from tunegate.errors import InputError
from tunegate.evaluate import (
    compare_generative,
    generative_metrics,
    load_generative_run,
    run_generative_eval,
)
from tunegate.generative import (
    PASSAGE_CHAR_BUDGET,
    ChatGenerator,
    Generator,
    build_generator,
    generation_messages,
    reference_match,
    register_generator,
    response_schema,
    score_outputs,
    target_output,
)
from tunegate.kb import KbDocument, KnowledgeBase
from tunegate.llm import ChatClient
from tunegate.records import (
    DocumentRef,
    ExampleScore,
    GenerativeOutput,
    GenerativeRun,
    GenerativeSuite,
    GenerativeSuiteExample,
    GeneratorConfig,
    ModelKind,
    OutputCheck,
    SuiteSlice,
    ToolCall,
    VerdictOutcome,
)
from tunegate.store import Store

ABSTAIN = "I cannot answer this from the handbook."


def d(y: int, m: int, day: int = 1) -> datetime:
    return datetime(y, m, day, tzinfo=UTC)


class HashEncoder:
    """Bag-of-words hashed into 64 dimensions, unit rows: a deterministic stand-in encoder."""

    path = "hash-encoder"
    backend = "stub"
    max_length = 128
    batch_size = 8
    truncated_total = 0
    dim = 64

    def embed(self, texts: Sequence[str], **_: object) -> np.ndarray:
        out = np.zeros((len(texts), self.dim))
        for i, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                out[i, sum(map(ord, word)) % self.dim] += 1.0
            out[i] /= max(np.linalg.norm(out[i]), 1e-9)
        return out


class SubstringChecker:
    """A claim is supported when it occurs (lowercased, without its final period) in a passage."""

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        hay = [p.lower() for p in passages]
        return [any(c.lower().rstrip(".") in p for p in hay) for c in claims]


class RefuseAll:
    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        return [False] * len(claims)


ANSWER_YAML = f"""
name: handbook
kind: answer
instructions: You answer questions about the IT handbook.
answer:
  abstention: "{ABSTAIN}"
"""

TOOL_YAML = """
name: desk
kind: tool_call
tools:
  - name: reset_password
    description: Reset a user's password in one system
    parameters:
      type: object
      properties:
        user: {type: string}
        system: {type: string, enum: [vpn, okta, email], default: okta}
      required: [user]
  - name: open_ticket
    description: Open a service-desk ticket
    parameters:
      type: object
      properties:
        summary: {type: string}
        priority: {enum: [low, high]}
      required: [summary, priority]
"""


def answer_workflow() -> Workflow:
    return parse_workflow(ANSWER_YAML)


def tool_workflow() -> Workflow:
    return parse_workflow(TOOL_YAML)


def ask(eid: str, question: str, **kw: Any) -> GenerativeSuiteExample:
    kw.setdefault("reference", None)
    return GenerativeSuiteExample(id=eid, kind="answer", input=question, **kw)


def request(eid: str, text: str, tool: ToolCall | None, **kw: Any) -> GenerativeSuiteExample:
    return GenerativeSuiteExample(id=eid, kind="tool_call", input=text, expected_tool=tool, **kw)


class FakeServer:
    """An httpx MockTransport answering Chat Completions with ``reply(body) -> content``."""

    def __init__(self, reply: Callable[[dict[str, Any]], str]) -> None:
        self.reply = reply
        self.bodies: list[dict[str, Any]] = []

    def handler(self, req: httpx.Request) -> httpx.Response:
        body = json.loads(req.content)
        self.bodies.append(body)
        return httpx.Response(
            200,
            json={
                "choices": [{"message": {"content": self.reply(body)}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 100, "completion_tokens": 20},
            },
        )

    def client(self) -> ChatClient:
        return ChatClient(
            base_url="http://fake/v1", transport=httpx.MockTransport(self.handler), max_retries=0
        )


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'store.db'}")


@pytest.fixture
def kb(store: Store) -> KnowledgeBase:
    base = KnowledgeBase(store, answer_workflow().retrieval, encoder=HashEncoder())
    base.ingest(
        [
            KbDocument(
                doc_id="lockout",
                version="v1",
                title="Lockout",
                text="Accounts lock for 15 minutes after five failed attempts.",
                effective_from=d(2024, 1),
            ),
            KbDocument(
                doc_id="lockout",
                version="v2",
                title="Lockout",
                text="Accounts lock for 30 minutes after five failed attempts.",
                effective_from=d(2024, 6),
            ),
            KbDocument(
                doc_id="vpn",
                version="v1",
                title="VPN",
                text="The VPN client is GlobalProtect. Install it from the software portal.",
                effective_from=d(2024, 1),
            ),
        ]
    )
    return base


def config(**kw: Any) -> GeneratorConfig:
    return GeneratorConfig(model="fake-model", **kw)


# -- prompts -------------------------------------------------------------------------------


def test_answer_messages_number_and_label_passages_and_carry_the_abstention() -> None:
    wf = answer_workflow()
    example = ask("q1", "How long do accounts lock?", reference="30 minutes")
    passages = [
        {"doc_id": "lockout", "text": "Accounts lock for 30 minutes."},
        {"id": "vpn", "text": "x"},
    ]
    cfg = config(abstention_criteria="the passages do not name a duration")
    system, user = generation_messages(wf, cfg, example, passages, [])
    assert ABSTAIN in system["content"]
    assert "IT handbook" in system["content"]
    assert system["content"].endswith("Abstain when: the passages do not name a duration")
    assert "[1] [lockout] Accounts lock for 30 minutes." in user["content"]
    assert "[2] [vpn] x" in user["content"]
    assert user["content"].endswith("Question: How long do accounts lock?")


def test_long_passages_are_truncated_to_the_budget() -> None:
    wf = answer_workflow()
    long = " ".join(["word"] * 5000)
    passages = [{"id": f"d{i}", "text": long} for i in range(4)]
    _, user = generation_messages(wf, config(), ask("q", "?", reference="r"), passages, [])
    assert len(user["content"]) < PASSAGE_CHAR_BUDGET + 200
    assert user["content"].count(" ...") == 4


def test_tool_schema_has_one_branch_per_tool_and_none() -> None:
    wf = tool_workflow()
    schema = response_schema("tool_call", wf.tools, config())
    v = jsonschema.Draft202012Validator(schema)
    assert v.is_valid({"tool": "reset_password", "arguments": {"user": "ann"}})
    assert v.is_valid({"tool": "none", "arguments": {}})
    assert not v.is_valid({"tool": "none", "arguments": {"user": "ann"}})
    assert not v.is_valid({"tool": "open_ticket", "arguments": {"summary": "x"}})
    assert not v.is_valid({"tool": "delete_everything", "arguments": {}})
    system, user = generation_messages(wf, config(), request("r", "reset ann", None), [], wf.tools)
    assert "- reset_password: Reset a user's password in one system" in system["content"]
    assert user["content"] == "reset ann"


def test_target_outputs_follow_the_response_schema() -> None:
    wf, tools = answer_workflow(), tool_workflow().tools
    answer_schema = response_schema("answer", [], None)
    tool_schema = response_schema("tool_call", tools, None)
    answerable = ask(
        "a",
        "q?",
        reference="30 minutes.",
        gold_documents=[DocumentRef(id="lockout"), DocumentRef(id="other")],
    )
    out = json.loads(target_output(answerable, [{"id": "lockout", "text": "t"}]))
    assert out == {"answer": "30 minutes.", "citations": ["lockout"], "abstain": False}
    jsonschema.validate(out, answer_schema)
    none = json.loads(
        target_output(ask("u", "q?", answerable=False), [], abstention=wf.answer.abstention)
    )
    assert none == {"answer": ABSTAIN, "citations": [], "abstain": True}
    call = request("t", "reset", ToolCall(name="reset_password", arguments={"user": "ann"}))
    assert json.loads(target_output(call, [])) == {
        "tool": "reset_password",
        "arguments": {"user": "ann"},
    }
    jsonschema.validate(json.loads(target_output(call, [])), tool_schema)
    assert json.loads(target_output(request("n", "hi", None), [])) == {
        "tool": "none",
        "arguments": {},
    }
    with pytest.raises(InputError, match="no reference answer"):
        target_output(ask("c", "q?", checks=[OutputCheck(type="contains", value="x")]), [])


# -- the chat generator --------------------------------------------------------------------


def test_answer_generator_retrieves_as_of_the_question_and_cites_versions(
    store: Store, kb: KnowledgeBase
) -> None:
    server = FakeServer(
        lambda body: json.dumps(
            {"answer": "Accounts lock for 15 minutes.", "citations": ["lockout"], "abstain": False}
        )
    )
    gen = ChatGenerator(
        answer_workflow(), config(), version_id="gen-x", client=server.client(), kb=kb, store=store
    )
    assert isinstance(gen, Generator)
    example = ask(
        "q1",
        "How long do accounts lock after failed attempts?",
        reference="15 minutes",
        asked_at=d(2024, 3),
    )
    out = gen.generate(example)
    body = server.bodies[0]
    assert body["model"] == "fake-model"
    assert body["response_format"]["type"] == "json_object"
    assert body["response_format"]["schema"]["required"] == ["answer", "citations", "abstain"]
    # the decoder may cite only the passages shown (no placeholder, no made-up id)
    shown = list(dict.fromkeys(r["doc_id"] for r in out.metadata["retrieved"]))
    cite_items = body["response_format"]["schema"]["properties"]["citations"]["items"]
    assert cite_items == {"enum": shown} and "lockout" in shown
    lockouts = [r for r in out.metadata["retrieved"] if r["doc_id"] == "lockout"]
    assert [(r["version"], r["stale"]) for r in lockouts] == [("v1", False)]  # in force in March
    assert out.cited == [DocumentRef(id="lockout", version="v1")]
    assert out.answer == "Accounts lock for 15 minutes."
    assert not out.abstained
    assert out.metadata["format_valid"] is True
    assert (out.prompt_tokens, out.completion_tokens, out.tokens) == (100, 20, 120)
    assert out.latency_ms > 0

    # the response cache: the same request again sends nothing
    again = ChatGenerator(
        answer_workflow(), config(), version_id="gen-x", client=server.client(), kb=kb, store=store
    ).generate(example)
    assert len(server.bodies) == 1
    assert again.answer == out.answer


def test_without_freshness_superseded_versions_are_retrieved_and_marked_stale(
    store: Store, kb: KnowledgeBase
) -> None:
    server = FakeServer(lambda body: '{"answer": "x", "citations": [], "abstain": false}')
    example = ask("q", "How long do accounts lock?", reference="30 minutes", asked_at=d(2024, 8))
    fresh = ChatGenerator(
        answer_workflow(), config(), version_id="a", client=server.client(), kb=kb
    ).generate(example)
    stale = ChatGenerator(
        answer_workflow(), config(freshness=False), version_id="b", client=server.client(), kb=kb
    ).generate(example)

    def versions(o: GenerativeOutput) -> set[tuple[str, bool]]:
        shown = o.metadata["retrieved"]
        return {(r["version"], r["stale"]) for r in shown if r["doc_id"] == "lockout"}

    assert versions(fresh) == {("v2", False)}
    assert versions(stale) == {("v1", True), ("v2", False)}


def test_retrieval_overrides_change_top_k(store: Store, kb: KnowledgeBase) -> None:
    server = FakeServer(lambda body: '{"answer": "x", "citations": [], "abstain": false}')
    gen = ChatGenerator(
        answer_workflow(),
        config(retrieval={"top_k": 1}),
        version_id="k1",
        client=server.client(),
        kb=kb,
    )
    out = gen.generate(ask("q", "How long do accounts lock?", reference="30 minutes"))
    assert len(out.metadata["retrieved"]) == 1
    with pytest.raises(InputError, match="top_k"):
        ChatGenerator(
            answer_workflow(),
            config(retrieval={"top_k": 0}),
            version_id="z",
            client=server.client(),
        )


def test_free_text_is_read_leniently_and_is_not_format_valid() -> None:
    reply = (
        'Sure!\n```json\n{"answer": "Use GlobalProtect.", "citations": ["vpn"], '
        '"abstain": false}\n```'
    )
    server = FakeServer(lambda body: reply)
    gen = ChatGenerator(
        answer_workflow(), config(constrained=False), version_id="f", client=server.client()
    )
    example = ask(
        "q",
        "Which VPN client?",
        reference="GlobalProtect",
        metadata={"passages": [{"id": "vpn", "text": "The VPN client is GlobalProtect."}]},
    )
    out = gen.generate(example)
    assert "response_format" not in server.bodies[0]
    assert out.answer == "Use GlobalProtect."
    assert out.cited == [DocumentRef(id="vpn")]
    assert out.metadata["format_valid"] is False
    assert out.metadata["raw"] == reply


def test_abstention_wording_and_verification_abstain() -> None:
    passages = {"passages": [{"id": "vpn", "text": "The VPN client is GlobalProtect."}]}
    example = ask("q", "Which VPN client?", reference="GlobalProtect", metadata=passages)
    wording = FakeServer(
        lambda body: json.dumps({"answer": ABSTAIN, "citations": [], "abstain": False})
    )
    out = ChatGenerator(
        answer_workflow(), config(), version_id="w", client=wording.client()
    ).generate(example)
    assert out.abstained and out.cited == []

    made_up = FakeServer(
        lambda body: json.dumps(
            {"answer": "The VPN client is Cisco.", "citations": ["vpn"], "abstain": False}
        )
    )
    verified = ChatGenerator(
        answer_workflow(),
        config(verify=True),
        version_id="v",
        client=made_up.client(),
        checker=RefuseAll(),
    ).generate(example)
    assert verified.abstained
    assert verified.answer == ABSTAIN
    assert verified.metadata["verification"]["unsupported"] == ["The VPN client is Cisco."]
    kept = ChatGenerator(
        answer_workflow(),
        config(verify=True),
        version_id="v2",
        client=made_up.client(),
        checker=SubstringChecker(),
    ).generate(
        ask(
            "q",
            "Which VPN client?",
            reference="x",
            metadata={"passages": [{"id": "vpn", "text": "the vpn client is cisco."}]},
        )
    )
    assert not kept.abstained


def test_tool_generator_uses_the_example_tools_and_reads_the_call() -> None:
    wf = tool_workflow()
    server = FakeServer(
        lambda body: (
            json.dumps({"tool": "reset_password", "arguments": {"user": "ann"}})
            if "ann" in body["messages"][-1]["content"]
            else json.dumps({"tool": "none", "arguments": {}})
        )
    )
    gen = ChatGenerator(wf, config(), version_id="t", client=server.client())
    out = gen.generate(
        request(
            "r1", "reset ann's password", ToolCall(name="reset_password", arguments={"user": "ann"})
        )
    )
    assert out.tool_call == ToolCall(name="reset_password", arguments={"user": "ann"})
    assert out.metadata["format_valid"] is True
    anyof = server.bodies[0]["response_format"]["schema"]["anyOf"]
    assert [b["properties"]["tool"]["const"] for b in anyof] == [
        "reset_password",
        "open_ticket",
        "none",
    ]
    own = [{"name": "lookup", "description": "Look a word up", "parameters": {"type": "object"}}]
    none = gen.generate(request("r2", "hello there", None, metadata={"tools": own}))
    assert none.tool_call is None
    assert [
        b["properties"]["tool"]["const"]
        for b in server.bodies[1]["response_format"]["schema"]["anyOf"]
    ] == ["lookup", "none"]


def test_register_generator_is_idempotent_and_builds(store: Store) -> None:
    wf = tool_workflow()
    cfg = config(retrieval={"top_k": 3})
    first = register_generator(store, wf, cfg)
    assert first.id.startswith("gen-") and first.kind is ModelKind.GENERATOR
    assert register_generator(store, wf, cfg).id == first.id
    assert register_generator(store, wf, config(retrieval={"top_k": 4})).id != first.id
    child = register_generator(store, wf, config(verify=True), parent=first.id)
    assert store.get_model_version(child.id).parent == first.id
    gen = build_generator(wf, store.get_model_version(first.id), store)
    assert gen.version_id == first.id
    assert isinstance(gen, ChatGenerator) and gen.config == cfg


# -- scoring -------------------------------------------------------------------------------


def output(example_id: str, kind: str = "answer", **kw: Any) -> GenerativeOutput:
    return GenerativeOutput(example_id=example_id, model_version="m", kind=kind, **kw)  # type: ignore[arg-type]


RETRIEVED = [
    {
        "doc_id": "lockout",
        "version": "v1",
        "text": "Accounts lock for 15 minutes.",
        "stale": True,
        "current_version": "v2",
    },
    {
        "doc_id": "lockout",
        "version": "v2",
        "text": "Accounts lock for 30 minutes.",
        "stale": False,
        "current_version": "v2",
    },
    {
        "doc_id": "vpn",
        "version": "v1",
        "text": "The VPN client is GlobalProtect.",
        "stale": False,
        "current_version": "v1",
    },
]


def test_reference_match_needs_numbers_and_entities_or_overlap() -> None:
    assert reference_match("Accounts lock for 30 minutes.", "30 minutes")
    assert not reference_match("Accounts lock for 15 minutes.", "30 minutes")
    assert reference_match("Install GlobalProtect from the portal.", "GlobalProtect")
    assert not reference_match("Install Cisco AnyConnect.", "The client is GlobalProtect")
    assert reference_match("restart the client and retry", "Restart the client.")
    assert not reference_match("call the help desk", "Restart the client.")


def test_answer_scores_by_hand() -> None:
    examples = [
        ask("fresh", "lock?", reference="30 minutes", gold_documents=[DocumentRef(id="lockout")]),
        ask("stale", "lock?", reference="30 minutes", gold_documents=[DocumentRef(id="lockout")]),
        ask("mixed", "vpn?", reference="GlobalProtect", gold_documents=[DocumentRef(id="vpn")]),
        ask("unans", "cafeteria?", answerable=False, slice=SuiteSlice.EDGE),
        ask(
            "wrongabs",
            "vpn?",
            reference="GlobalProtect",
            checks=[OutputCheck(type="contains", value="GlobalProtect")],
        ),
    ]
    outs = [
        output(
            "fresh",
            answer="Accounts lock for 30 minutes.",
            cited=[DocumentRef(id="lockout", version="v2")],
            metadata={"retrieved": RETRIEVED},
        ),
        output(
            "stale",
            answer="Accounts lock for 15 minutes.",
            cited=[DocumentRef(id="lockout", version="v1")],
            metadata={"retrieved": RETRIEVED},
        ),
        output(
            "mixed",
            answer="The VPN client is GlobalProtect. It is free for everyone.",
            cited=[DocumentRef(id="vpn", version="v1"), DocumentRef(id="lockout", version="v2")],
            metadata={"retrieved": RETRIEVED, "format_valid": False},
        ),
        output("unans", answer=ABSTAIN, abstained=True, metadata={"retrieved": RETRIEVED[:1]}),
        output("wrongabs", answer=ABSTAIN, abstained=True, latency_ms=12.5, prompt_tokens=7),
    ]
    scores = score_outputs(answer_workflow(), examples, outs, checker=SubstringChecker())
    got = {s.example_id: s for s in scores}
    assert (got["fresh"].n_claims, got["fresh"].n_unsupported, got["fresh"].n_stale) == (1, 0, 0)
    assert got["fresh"].correct and got["fresh"].retrieved_gold is True
    assert (got["stale"].n_claims, got["stale"].n_unsupported, got["stale"].n_stale) == (1, 0, 1)
    assert not got["stale"].correct and "stale" in got["stale"].evidence
    assert (got["mixed"].n_claims, got["mixed"].n_unsupported) == (2, 1)
    assert got["mixed"].cited == ["vpn", "lockout"] and got["mixed"].gold == ["vpn"]
    assert got["mixed"].correct and not got["mixed"].format_valid
    assert got["unans"].correct and got["unans"].abstained and got["unans"].n_claims == 0
    assert got["unans"].slice is SuiteSlice.EDGE and got["unans"].retrieved_gold is None
    assert not got["wrongabs"].correct and got["wrongabs"].retrieved_gold is None
    assert (got["wrongabs"].latency_ms, got["wrongabs"].prompt_tokens) == (12.5, 7)

    m = generative_metrics(scores)["overall"]
    assert m["unsupported_claim_rate"] == pytest.approx(1 / 4)
    assert m["stale_claim_rate"] == pytest.approx(1 / 4)
    assert m["citation_score"] == 1.0  # 3 answered, all cite
    assert m["citation_precision_score"] == pytest.approx(3 / 4)
    assert m["citation_recall_score"] == 1.0
    assert m["abstention_recall_score"] == 1.0
    assert m["abstention_precision_score"] == pytest.approx(1 / 2)
    assert m["answer_correctness_score"] == pytest.approx(3 / 5)
    assert m["format_validity_score"] == pytest.approx(4 / 5)
    assert m["tool_call_accuracy_score"] is None  # no tool example: undefined, not 0
    assert m["n"] == 5
    assert generative_metrics(scores)["slices"]["edge"]["n"] == 1


def test_a_citation_without_version_reads_every_shown_version_of_its_document() -> None:
    example = ask("q", "lock?", reference="30 minutes", gold_documents=[DocumentRef(id="lockout")])
    out = output(
        "q",
        answer="Accounts lock for 15 minutes.",
        cited=[DocumentRef(id="lockout")],
        metadata={"retrieved": RETRIEVED},
    )
    [score] = score_outputs(answer_workflow(), [example], [out], checker=SubstringChecker())
    assert (score.n_claims, score.n_unsupported, score.n_stale) == (1, 0, 1)
    uncited = out.model_copy(update={"cited": [DocumentRef(id="vpn")]})
    [score] = score_outputs(answer_workflow(), [example], [uncited], checker=SubstringChecker())
    assert (score.n_claims, score.n_unsupported, score.n_stale) == (1, 1, 0)


def test_tool_scores_by_hand() -> None:
    wf = tool_workflow()
    examples = [
        request(
            "right",
            "reset ann",
            ToolCall(name="reset_password", arguments={"user": "ann", "system": "okta"}),
        ),
        request("args", "reset bob", ToolCall(name="reset_password", arguments={"user": "bob"})),
        request("none", "hi", None),
        request(
            "undeclared",
            "delete",
            ToolCall(name="open_ticket", arguments={"summary": "x", "priority": "low"}),
        ),
    ]
    outs = [
        output(
            "right",
            "tool_call",
            tool_call=ToolCall(name="reset_password", arguments={"user": "ann"}),
        ),
        output(
            "args",
            "tool_call",
            tool_call=ToolCall(name="reset_password", arguments={"user": "ann"}),
        ),
        output("none", "tool_call"),
        output("undeclared", "tool_call", tool_call=ToolCall(name="wipe", arguments={})),
    ]
    got = {s.example_id: s for s in score_outputs(wf, examples, outs)}
    assert got["right"].correct and got["right"].arguments_match and got["right"].arguments_valid
    assert (
        not got["args"].correct and got["args"].arguments_valid and not got["args"].arguments_match
    )
    assert got["none"].correct and got["none"].called_tool is None
    assert not got["undeclared"].correct and not got["undeclared"].arguments_valid
    m = generative_metrics(list(got.values()))["overall"]
    assert m["tool_selection_accuracy_score"] == pytest.approx(3 / 4)
    assert m["tool_call_accuracy_score"] == pytest.approx(2 / 4)
    assert m["argument_validity_score"] == pytest.approx(2 / 3)
    assert m["unsupported_claim_rate"] is None


def test_scoring_refuses_mismatched_outputs() -> None:
    with pytest.raises(InputError, match="not among"):
        score_outputs(tool_workflow(), [request("a", "x", None)], [output("b", "tool_call")])
    with pytest.raises(InputError, match="is a answer output"):
        score_outputs(tool_workflow(), [request("a", "x", None)], [output("a", "answer")])


# -- runs ----------------------------------------------------------------------------------


class FakeGenerator:
    version_id = "fake"

    def generate(self, example: Any) -> GenerativeOutput:
        call = example.expected_tool if "ok" in example.id else None
        return output(example.id, "tool_call", tool_call=call, latency_ms=5.0)


def test_run_generative_eval_stores_a_run(store: Store) -> None:
    wf = tool_workflow()
    suite = GenerativeSuite(
        name="desk",
        kind="tool_call",
        examples=[
            request("ok1", "reset ann", ToolCall(name="reset_password", arguments={"user": "ann"})),
            request("bad", "reset bob", ToolCall(name="reset_password", arguments={"user": "bob"})),
            request("ok2", "hi", None, slice=SuiteSlice.PRESERVATION, tags=["tool_use"]),
        ],
    ).frozen()
    seen: list[tuple[int, int]] = []
    run = run_generative_eval(
        store, wf, suite, FakeGenerator(), progress=lambda i, n: seen.append((i, n))
    )
    assert seen == [(1, 3), (2, 3), (3, 3)]
    assert run.metrics["overall"]["tool_call_accuracy_score"] == pytest.approx(2 / 3)
    assert run.metrics["slices"]["tag:tool_use"]["n"] == 1
    loaded = load_generative_run(store, run.id)
    assert loaded == run
    with pytest.raises(InputError, match="answer suite"):
        bad = GenerativeSuite(
            name="s", kind="answer", examples=[ask("a", "q", reference="r")]
        ).frozen()
        run_generative_eval(store, wf, bad, FakeGenerator())


# -- the verdict ---------------------------------------------------------------------------


def scores_run(
    n: int,
    unsupported: Callable[[int], int],
    *,
    correct: Callable[[int], bool] = lambda i: True,
    latency: Callable[[int], float] = lambda i: 100.0 + i % 7,
) -> GenerativeRun:
    scores = []
    for i in range(n):
        sl = SuiteSlice.PRESERVATION if i % 4 == 0 else SuiteSlice.CORE
        answerable = i % 10 != 0
        scores.append(
            ExampleScore(
                example_id=f"e{i}",
                kind="answer",
                slice=sl,
                n_claims=0 if not answerable else 1,
                n_unsupported=0 if not answerable else unsupported(i),
                answerable=answerable,
                abstained=not answerable,
                correct=correct(i),
                latency_ms=latency(i),
            )
        )
    outputs = [output(s.example_id) for s in scores]
    return GenerativeRun(
        model_version="m",
        suite_name="s",
        suite_hash="h" * 64,
        kind="answer",
        outputs=outputs,
        scores=scores,
    )


def outcomes(verdict: Any) -> dict[str, VerdictOutcome]:
    return {r.rule: r.outcome for r in verdict.rules}


def test_identical_runs_pass_every_rule() -> None:
    base = scores_run(400, lambda i: int(i % 13 == 0))
    verdict = compare_generative(base, base, n_resamples=300)
    assert verdict.outcome is VerdictOutcome.PASS, [r.message for r in verdict.rules]
    assert set(outcomes(verdict)) == {
        "hallucination",
        "abstention_recall",
        "abstention_precision",
        "latency",
        "core_correctness",
        "preservation",
    }


def test_five_points_more_hallucination_fails_that_rule() -> None:
    base = scores_run(400, lambda i: int(i % 13 == 0))
    # 18 more unsupported claims on 360 claims: +5 points
    extra = [i for i in range(400) if i % 10 != 0 and i % 13 != 0][:18]
    cand = scores_run(400, lambda i: int(i % 13 == 0 or i in extra))
    cand = cand.model_copy(update={"id": "cand"})
    verdict = compare_generative(base, cand, n_resamples=500)
    rule = next(r for r in verdict.rules if r.rule == "hallucination")
    assert rule.outcome is VerdictOutcome.FAIL
    assert rule.difference == pytest.approx(0.05)
    assert rule.ci_low is not None and rule.ci_low > 0
    assert "rose 5.00 points" in rule.message
    assert verdict.outcome is VerdictOutcome.FAIL
    assert outcomes(verdict)["preservation"] is VerdictOutcome.PASS


def test_a_small_noisy_difference_is_inconclusive() -> None:
    base = scores_run(120, lambda i: int(i % 9 == 0))
    # 3 claims gain support, 5 lose it: +2 of 108 claims (1.9 points), interval across 2 points
    gained = [i for i in range(120) if i % 9 == 0 and i % 10 != 0][:3]
    lost = [i for i in range(120) if i % 9 != 0 and i % 10 != 0][:5]
    cand = scores_run(120, lambda i: int((i % 9 == 0 and i not in gained) or i in lost))
    verdict = compare_generative(base, cand, n_resamples=500)
    rule = next(r for r in verdict.rules if r.rule == "hallucination")
    assert rule.outcome is VerdictOutcome.INCONCLUSIVE, rule.message
    assert rule.ci_low is not None and rule.ci_high is not None
    assert rule.ci_low <= 0.02 <= rule.ci_high


def test_preservation_drop_and_latency_rise_fail() -> None:
    base = scores_run(400, lambda i: 0)
    cand = scores_run(
        400,
        lambda i: 0,
        correct=lambda i: i % 4 != 0 or i % 8 == 0,
        latency=lambda i: 130.0 + i % 7,
    )
    got = outcomes(compare_generative(base, cand, n_resamples=300))
    assert got["preservation"] is VerdictOutcome.FAIL
    assert got["core_correctness"] is VerdictOutcome.PASS
    assert got["latency"] is VerdictOutcome.FAIL
    looser = GenerativeRules(max_latency_increase=0.5)
    assert (
        outcomes(compare_generative(base, cand, rules=looser, n_resamples=300))["latency"]
        is VerdictOutcome.PASS
    )


def test_compare_refuses_runs_on_other_suites() -> None:
    base = scores_run(20, lambda i: 0)
    other = base.model_copy(update={"suite_hash": "x" * 64})
    with pytest.raises(InputError, match="one suite"):
        compare_generative(base, other)


# -- against the real local model ----------------------------------------------------------


@pytest.mark.slow
def test_answer_and_tool_suites_end_to_end_on_the_local_model(
    tmp_path: Path, llm_server: Any
) -> None:
    llm = {
        "base_url": llm_server.base_url,
        "model": llm_server.model,
        "timeout_s": 180,
        "max_concurrency": 1,
    }
    store = Store(f"sqlite:///{tmp_path / 'store.db'}")
    answer_wf = parse_workflow(ANSWER_YAML + "llm: " + json.dumps(llm) + "\n")
    kb = KnowledgeBase.from_workflow(store, answer_wf)
    kb.ingest(
        [
            KbDocument(
                doc_id="lockout",
                version="v1",
                title="Lockout",
                text="Accounts lock for 30 minutes after five failed sign-in attempts.",
                effective_from=d(2024, 1),
            ),
            KbDocument(
                doc_id="vpn",
                version="v1",
                title="VPN",
                text="The VPN client is GlobalProtect. Install it from the software portal.",
                effective_from=d(2024, 1),
            ),
            KbDocument(
                doc_id="backup",
                version="v1",
                title="Backups",
                text="Laptops are backed up every night at 2 am to the cloud.",
                effective_from=d(2024, 1),
            ),
        ]
    )
    answer_suite = GenerativeSuite(
        name="handbook",
        kind="answer",
        examples=[
            ask(
                "a1",
                "How long do accounts lock after failed sign-ins?",
                reference="30 minutes",
                gold_documents=[DocumentRef(id="lockout")],
            ),
            ask(
                "a2",
                "Which VPN client do we use?",
                reference="GlobalProtect",
                gold_documents=[DocumentRef(id="vpn")],
            ),
            ask(
                "a3",
                "When are laptops backed up?",
                reference="Every night at 2 am",
                gold_documents=[DocumentRef(id="backup")],
            ),
            ask(
                "a4",
                "Where do I install the VPN client from?",
                reference="The software portal",
                gold_documents=[DocumentRef(id="vpn")],
            ),
            ask("a5", "What is on the cafeteria menu today?", answerable=False),
            ask(
                "a6", "Who is the CEO's assistant?", answerable=False, slice=SuiteSlice.PRESERVATION
            ),
        ],
    ).frozen()
    version = register_generator(
        store,
        answer_wf,
        GeneratorConfig(model=llm_server.model, max_tokens=128, retrieval={"top_k": 2}),
    )
    answer_run = run_generative_eval(
        store, answer_wf, answer_suite, build_generator(answer_wf, version, store)
    )

    tool_wf = parse_workflow(TOOL_YAML + "llm: " + json.dumps(llm) + "\n")
    tool_suite = GenerativeSuite(
        name="desk",
        kind="tool_call",
        examples=[
            request(
                "t1",
                "Please reset the okta password of ann",
                ToolCall(name="reset_password", arguments={"user": "ann", "system": "okta"}),
            ),
            request(
                "t2",
                "Reset bob's VPN password",
                ToolCall(name="reset_password", arguments={"user": "bob", "system": "vpn"}),
            ),
            request(
                "t3",
                "Open a high priority ticket: printer on fire",
                ToolCall(
                    name="open_ticket", arguments={"summary": "printer on fire", "priority": "high"}
                ),
            ),
            request(
                "t4",
                "Open a low priority ticket about a squeaky chair",
                ToolCall(
                    name="open_ticket", arguments={"summary": "squeaky chair", "priority": "low"}
                ),
            ),
            request("t5", "Thanks, that is all", None),
            request("t6", "Good morning!", None, slice=SuiteSlice.PRESERVATION),
        ],
    ).frozen()
    tool_version = register_generator(
        store, tool_wf, GeneratorConfig(model=llm_server.model, max_tokens=64)
    )
    tool_run = run_generative_eval(
        store, tool_wf, tool_suite, build_generator(tool_wf, tool_version, store)
    )

    for run, suite in ((answer_run, answer_suite), (tool_run, tool_suite)):
        assert load_generative_run(store, run.id) == run
        assert [o.example_id for o in run.outputs] == [e.id for e in suite.examples]
        assert all(o.completion_tokens > 0 and o.latency_ms > 0 for o in run.outputs)
        assert all(isinstance(o.metadata["raw"], str) for o in run.outputs)
        for value in run.metrics["overall"].values():
            assert value is None or math.isfinite(value)
        # constrained decoding: every output follows the schema unless cut at max_tokens
        for o in run.outputs:
            meta = o.metadata
            assert meta["format_valid"] or meta["finish_reason"] == "length", meta["raw"]
    for o in answer_run.outputs:
        assert 1 <= len(o.metadata["retrieved"]) <= 2
        shown = {r["doc_id"] for r in o.metadata["retrieved"]}
        assert all(ref.version == "v1" for ref in o.cited if ref.id in shown)
    verdict = compare_generative(answer_run, answer_run)
    assert verdict.outcome is not VerdictOutcome.FAIL


def test_decoding_schema_leaves_out_what_the_grammar_cannot_express() -> None:
    from tunegate.generative import decoding_schema

    tool_schema = {
        "type": "object",
        "properties": {
            "date": {"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}$", "format": "date"},
            "pattern": {"type": "string"},  # a property called "pattern" is kept
            "tags": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
        },
        "patternProperties": {"^x-": {"type": "string"}},
        "required": ["date"],
    }
    sent = decoding_schema({"anyOf": [tool_schema, {"type": "object"}]})
    first = sent["anyOf"][0]
    assert first["properties"]["date"] == {"type": "string"}
    assert first["properties"]["pattern"] == {"type": "string"}
    assert first["properties"]["tags"]["items"] == {"type": "string"}
    assert "patternProperties" not in first and first["required"] == ["date"]
    assert tool_schema["properties"]["date"]["pattern"]  # the original is untouched
