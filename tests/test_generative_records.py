"""Workflow kinds (answer, tool_call), generative records and suites, and the refusal of
classification-only commands on a generative workflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow
from tunegate.errors import ConfigError, InputError, LeakageError
from tunegate.evaluate import (
    freeze_generative_suite,
    freeze_suite,
    get_generative_suite,
    save_generative_suite,
)
from tunegate.records import (
    GenerativeExample,
    GenerativeOutput,
    GenerativeSuite,
    OutputCheck,
    SuiteSlice,
    ToolCall,
)
from tunegate.store import Store

TOOLS_YAML = (Path(__file__).parent / "data" / "generative" / "tunegate.tool_call.yaml").read_text(
    encoding="utf-8"
)


def answer_workflow(**extra: str) -> Workflow:
    text = "name: kb\nkind: answer\n" + "".join(f"{k}: {v}\n" for k, v in extra.items())
    return parse_workflow(text)


def tool_workflow() -> Workflow:
    return parse_workflow(TOOLS_YAML)


# -- config per kind --------------------------------------------------------------------


def test_classify_is_the_default_and_needs_labels() -> None:
    with pytest.raises(
        ConfigError, match=r"tunegate.yaml:1: labels: a classify workflow needs labels"
    ):
        parse_workflow("name: x\n")
    wf = parse_workflow("name: x\nlabels:\n  a: {description: A}\n  b: {description: B}\n")
    assert wf.kind == "classify" and wf.is_classify and wf.tools == []
    assert parse_workflow(wf.to_yaml()) == wf  # round trip, answer defaults included


def test_answer_workflow_needs_no_labels_and_refuses_them() -> None:
    wf = answer_workflow()
    assert wf.kind == "answer" and wf.labels == {} and not wf.is_classify
    assert parse_workflow(wf.to_yaml()) == wf
    text = "name: kb\nkind: answer\nlabels:\n  a: {description: A}\n  b: {description: B}\n"
    with pytest.raises(ConfigError, match=r"tunegate.yaml:3: labels: labels apply to classify"):
        parse_workflow(text)


def test_answer_settings_abstention() -> None:
    wf = parse_workflow(
        "name: kb\nkind: answer\nanswer:\n  abstention: I do not know.\n"
        "  abstention_patterns: ['not (in|covered by) the handbook']\n"
    )
    assert wf.answer.is_abstention("  i do NOT know. ")
    assert wf.answer.is_abstention("That is not covered by the handbook.")
    assert not wf.answer.is_abstention("Twenty-five days.")
    with pytest.raises(ConfigError, match=r":20: answer: answer: applies to answer workflows"):
        parse_workflow(TOOLS_YAML + "answer:\n  abstention: I do not know.\n")
    with pytest.raises(ConfigError, match=r":4: answer.abstention_patterns: bad regex"):
        parse_workflow("name: kb\nkind: answer\nanswer:\n  abstention_patterns: ['(']\n")


def test_tool_call_workflow_tools() -> None:
    wf = tool_workflow()
    assert [t.name for t in wf.tools] == ["reset_password", "open_ticket"]
    tool = wf.tool("open_ticket")
    assert tool is not None and wf.tool("nope") is None
    assert tool.argument_errors({"summary": "x", "priority": "low"}) == []
    assert tool.argument_errors({"summary": 3, "priority": "urgent"}) == [
        "arguments.priority: 'urgent' is not one of ['low', 'high']",
        "arguments.summary: 3 is not of type 'string'",
    ]
    assert parse_workflow(wf.to_yaml()) == wf
    with pytest.raises(ConfigError, match=r"a tool_call workflow needs tools:"):
        parse_workflow("name: x\nkind: tool_call\n")


def test_bad_tool_schema_names_the_tool_and_the_line() -> None:
    bad = TOOLS_YAML.replace("priority: {enum: [low, high]}", "priority: {type: urgent}")
    with pytest.raises(ConfigError) as info:
        parse_workflow(bad)
    message = str(info.value)
    assert message.startswith("tunegate.yaml:14: tools.1.parameters: tool 'open_ticket'")
    assert "not a valid JSON Schema" in message and "properties.priority.type" in message
    not_object = TOOLS_YAML.replace(
        "      type: object\n      properties:\n        summary",
        "      type: array\n      properties:\n        summary",
    )
    with pytest.raises(
        ConfigError,
        match=r":14: tools.1.parameters: tool 'open_ticket': parameters must describe a JSON",
    ):
        parse_workflow(not_object)
    twice = TOOLS_YAML.replace("name: open_ticket", "name: reset_password")
    with pytest.raises(ConfigError, match=r":3: tools: tool names must be unique"):
        parse_workflow(twice)
    with pytest.raises(ConfigError, match=r":3: tools: tools apply to tool_call workflows"):
        parse_workflow("name: x\nkind: answer\ntools:\n  - {name: t, description: d}\n")


def test_classify_only_keys_refused_on_generative_kinds() -> None:
    text = "name: kb\nkind: answer\nrules:\n  - {name: r, label: a, any_of: [x]}\n"
    with pytest.raises(ConfigError, match=r":3: rules: rules name labels"):
        parse_workflow(text)
    with pytest.raises(ConfigError, match=r"kind: Input should be 'classify', 'answer'"):
        parse_workflow("name: kb\nkind: chat\n")


def test_require_kind_message() -> None:
    with pytest.raises(
        ConfigError,
        match="tunegate eval zero-shot works on classify workflows; this workflow's kind is answer",
    ):
        answer_workflow().require_kind("tunegate eval zero-shot")
    answer_workflow().require_kind("x", "answer", "tool_call")


# -- records ----------------------------------------------------------------------------


def test_generative_example_rules() -> None:
    ok = GenerativeExample(kind="answer", input="How long is notice?", reference="One month.")
    assert ok.answerable and not ok.no_tool
    GenerativeExample(kind="answer", input="CEO's address?", answerable=False)
    with pytest.raises(ValueError, match="an answerable question needs a reference answer"):
        GenerativeExample(kind="answer", input="q")
    with pytest.raises(ValueError, match="expected_tool is for tool_call examples"):
        GenerativeExample(kind="answer", input="q", reference="a", expected_tool=ToolCall(name="t"))
    assert GenerativeExample(kind="tool_call", input="thanks!").no_tool
    with pytest.raises(ValueError, match="answerable applies to answer examples"):
        GenerativeExample(kind="tool_call", input="q", answerable=False)
    with pytest.raises(ValueError, match="more than the limit of 20,000"):
        GenerativeExample(kind="answer", input="x" * 20_001, answerable=False)
    with pytest.raises(ValueError, match="unpaired surrogate"):
        GenerativeExample(kind="answer", input="q", reference="a\ud800")
    with pytest.raises(ValueError, match="JSON cannot represent"):
        ToolCall(name="t", arguments={"n": float("nan")})


def test_output_checks() -> None:
    assert OutputCheck(type="icontains", value="25 DAYS").passes("You get 25 days.")
    assert OutputCheck(type="contains", value="I don't know", negate=True).passes("25 days")
    assert OutputCheck(type="contains-any", value=["free", "no charge"]).passes("it is free")
    assert not OutputCheck(type="contains-all", value=["free", "gate"]).passes("it is free")
    schema = {"type": "object", "required": ["a"]}
    assert OutputCheck(type="is-json", value=schema).passes('{"a": 1}')
    assert not OutputCheck(type="is-json", value=schema).passes('{"b": 1}')
    assert OutputCheck(type="regex", value=r"^\d+ days").passes("25 days")
    with pytest.raises(ValueError, match="needs a non-empty list of strings"):
        OutputCheck(type="contains-any", value="free")


def test_generative_output_record() -> None:
    out = GenerativeOutput(
        example_id="e1",
        model_version="m1",
        kind="answer",
        answer="25 days [hr-leave].",
        cited=[{"id": "hr-leave", "version": "2024-01"}],  # type: ignore[list-item]
        prompt_tokens=120,
        completion_tokens=9,
        latency_ms=310.5,
    )
    assert out.tokens == 129 and out.cited[0].version == "2024-01"
    assert GenerativeOutput.model_validate_json(out.model_dump_json()) == out
    with pytest.raises(ValueError, match="an output that abstained made no tool call"):
        GenerativeOutput(
            example_id="e",
            model_version="m",
            kind="tool_call",
            abstained=True,
            tool_call=ToolCall(name="t"),
        )


# -- suites ------------------------------------------------------------------------------


def _answers() -> list[GenerativeExample]:
    return [
        GenerativeExample(
            id="a1",
            kind="answer",
            input="How many leave days?",
            reference="25 days.",
            gold_documents=[{"id": "hr-leave", "version": "3"}],  # type: ignore[list-item]
        ),
        GenerativeExample(id="a2", kind="answer", input="CEO's home address?", answerable=False),
        GenerativeExample(
            id="a3",
            kind="answer",
            input="Who approves travel?",
            reference="The CFO.",
            metadata={"slice": "edge"},
        ),
    ]


def test_answer_suite_frozen_hash_stable_and_immutable(tmp_path: Path) -> None:
    wf = answer_workflow()
    with pytest.warns(UserWarning):
        suite = freeze_generative_suite("kb-core", _answers(), wf)
    with pytest.warns(UserWarning):
        again = freeze_generative_suite("kb-core", list(reversed(_answers())), wf)
    assert suite.hash == again.hash and len(suite.hash) == 64
    assert [e.slice for e in suite.examples] == [SuiteSlice.CORE, SuiteSlice.CORE, SuiteSlice.EDGE]
    # a pinned hash: a change to what is hashed must be deliberate (old suites would not load)
    assert suite.hash == PINNED_ANSWER_SUITE_HASH
    changed = suite.model_dump()
    changed["examples"][0]["reference"] = "30 days."
    with pytest.raises(ValueError, match="modified after freezing"):
        GenerativeSuite.model_validate(changed)
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    save_generative_suite(store, suite)
    save_generative_suite(store, suite)  # a no-op
    loaded = get_generative_suite(store, "kb-core")
    assert loaded == suite and get_generative_suite(store, suite.hash[:10]) == suite
    store.close()


PINNED_ANSWER_SUITE_HASH = "eee8fb8bb52c59453df2e4286751b9a4dff61cee575b8d0cd8a18e2987b097bb"


def test_generative_suite_leakage_on_inputs() -> None:
    wf = answer_workflow()
    with pytest.raises(LeakageError, match=r"1 exact duplicates \['a2'\]"):
        freeze_generative_suite(
            "kb", _answers(), wf, training_texts=["ceo's   HOME address?"], near_duplicates=False
        )
    with pytest.warns(UserWarning, match="left out 1 examples"):
        suite = freeze_generative_suite(
            "kb",
            _answers(),
            wf,
            training_texts=["CEO's home address?"],
            near_duplicates=False,
            drop_leaked=True,
        )
    assert [e.id for e in suite.examples] == ["a1", "a3"]


def test_suite_kinds_do_not_mix() -> None:
    with pytest.raises(ConfigError, match=r"a classification suite .* works on classify workflows"):
        freeze_suite("s", [{"text": "x", "label": "a"}], answer_workflow())
    tool = GenerativeExample(kind="tool_call", input="thanks")
    with pytest.raises(InputError, match=r"\['tool_call'\] examples in a answer workflow"):
        freeze_generative_suite("s", [tool], answer_workflow())


# -- classification-only commands refuse ------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (["eval", "zero-shot", "--suite", "s"], "tunegate eval"),
        (["compare", "r1", "r2"], "tunegate compare"),
        (["gate"], "tunegate gate"),
        (["try", "retrieval"], "tunegate try"),
        (["dataset", "build"], "tunegate dataset"),
        (["classify", "the printer is on fire"], "tunegate classify"),
    ],
)
def test_classification_only_commands_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], command: str
) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text("name: kb\nkind: answer\n", encoding="utf-8")
    code = main([*argv, "--config", str(config)])
    err = capsys.readouterr().err
    assert code == 2
    assert f"{command} works on classify workflows; this workflow's kind is answer" in " ".join(
        err.split()
    )
    pointer = {"eval": "gen eval", "compare": "gen compare", "gate": "gen gate", "try": "gen try"}
    if argv[0] in pointer:  # the answer/tool_call counterpart is named
        assert f"use `tunegate {pointer[argv[0]]}`" in " ".join(err.split())
    else:
        assert "tunegate gen" not in err
