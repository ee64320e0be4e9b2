"""The packaged capability-preservation set: deterministic, every capability present, every
answer known and checkable (recomputed here from the texts, not read from the generator), and
wired into freezing a generative suite (library and CLI)."""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import ToolSpec, parse_workflow
from tunegate.errors import InputError
from tunegate.evaluate import freeze_generative_suite, get_generative_suite
from tunegate.generative import (
    PRESERVATION_CAPABILITIES,
    arguments_valid,
    preservation_examples,
)
from tunegate.records import GenerativeExample, GenerativeSuite, SuiteSlice
from tunegate.store import Store

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]


def _by_tag(per_slice: int = 6, seed: int = 0) -> dict[str, list]:  # type: ignore[type-arg]
    found: dict[str, list] = {t: [] for t in PRESERVATION_CAPABILITIES}  # type: ignore[type-arg]
    for e in preservation_examples(seed=seed, per_slice=per_slice):
        found[e.tags[0]].append(e)
    return found


def _passage_texts(example) -> list[str]:  # type: ignore[no-untyped-def]
    return [p["text"] for p in example.metadata["passages"]]


def test_deterministic_and_extends_as_a_prefix() -> None:
    a = preservation_examples(seed=3, per_slice=6)
    b = preservation_examples(seed=3, per_slice=6)
    assert [e.model_dump(mode="json") for e in a] == [e.model_dump(mode="json") for e in b]
    other = preservation_examples(seed=4, per_slice=6)
    assert [e.input for e in a] != [e.input for e in other]
    longer = {e.id: e for e in preservation_examples(seed=3, per_slice=9)}
    assert all(longer[e.id] == e for e in a)  # per_slice=6 is a prefix of per_slice=9


def test_every_capability_per_slice_times_with_stable_ids() -> None:
    examples = preservation_examples(per_slice=6)
    assert Counter(e.tags[0] for e in examples) == dict.fromkeys(PRESERVATION_CAPABILITIES, 6)
    assert PRESERVATION_CAPABILITIES == (
        "tool_use",
        "citation",
        "summarisation",
        "abstention",
        "reasoning",
    )
    for e in examples:
        assert e.slice is SuiteSlice.PRESERVATION and len(e.tags) == 1
        n = int(e.id.rsplit("-", 1)[1])
        assert e.id == f"pres-{e.tags[0]}-{n}" and 0 <= n < 6
        assert e.kind == ("tool_call" if e.tags[0] == "tool_use" else "answer")
        assert len(e.input) < 200  # short enough for a 135M model with n_ctx 2048
    assert len({e.id for e in examples}) == len(examples)


def test_the_largest_set_has_no_repeated_example() -> None:
    examples = preservation_examples(per_slice=50)
    assert len(examples) == 250
    keys = [(e.input, json.dumps(e.metadata.get("passages"))) for e in examples]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("bad", [0, 51, -1, 2.0, True])
def test_per_slice_out_of_range_is_refused(bad: object) -> None:
    with pytest.raises(InputError, match="per_slice"):
        preservation_examples(per_slice=bad)  # type: ignore[arg-type]


def test_tool_use_calls_validate_and_come_from_the_request() -> None:
    tool_examples = _by_tag(per_slice=20)["tool_use"]
    no_tool = [e for e in tool_examples if e.expected_tool is None]
    assert 0 < len(no_tool) < len(tool_examples)  # some requests need no tool
    called = Counter(e.expected_tool.name for e in tool_examples if e.expected_tool)
    assert set(called) == {"get_weather", "convert_currency", "create_reminder"}
    for e in tool_examples:
        specs = {t["name"]: ToolSpec(**t) for t in e.metadata["tools"]}  # valid ToolSpecs
        assert len(specs) == 3
        if e.expected_tool is None:
            continue
        call = e.expected_tool
        schema = specs[call.name].parameters
        assert arguments_valid(call.arguments, schema), (e.id, call)
        assert specs[call.name].argument_errors(call.arguments) == []
        for value in call.arguments.values():  # every argument is stated in the request
            assert str(value) in e.input, (e.id, value)
    # the schemas do refuse bad arguments (the check above can fail)
    schemas = {t["name"]: t["parameters"] for t in tool_examples[0].metadata["tools"]}
    assert not arguments_valid({"amount": 5, "from": "USD"}, schemas["convert_currency"])
    assert not arguments_valid({"text": "x", "date": "14 March"}, schemas["create_reminder"])


def test_citation_gold_passage_holds_the_reference_and_only_it() -> None:
    for e in _by_tag(per_slice=12)["citation"]:
        passages = {p["id"]: p["text"] for p in e.metadata["passages"]}
        assert 2 <= len(passages) <= 3 and e.answerable
        assert [d.id for d in e.gold_documents] in ([pid] for pid in passages)
        gold = e.gold_documents[0].id
        assert e.reference and e.reference in passages[gold]
        for pid, text in passages.items():
            if pid != gold:
                assert e.reference not in text, (e.id, pid)
        assert all(c.passes(e.reference) for c in e.checks)
        assert not all(c.passes("I cannot answer this.") for c in e.checks)
        # the question's subject (a name, an item, a club) is in the gold passage only
        subject = re.findall(r"\b[A-Z][a-z]+\b|\b[a-z]+(?= club| cost)", e.input)[-1]
        assert subject in passages[gold]
        assert sum(subject in text for text in passages.values()) == 1, (e.id, subject)


def test_summaries_check_facts_of_their_passage() -> None:
    for e in _by_tag(per_slice=9)["summarisation"]:
        (text,) = _passage_texts(e)
        assert "in one sentence" in e.input and e.input.startswith("Summarise")
        assert [d.id for d in e.gold_documents] == [e.metadata["passages"][0]["id"]]
        (check,) = e.checks
        assert check.type == "icontains-all"
        assert all(fact.lower() in text.lower() for fact in check.value)
        assert check.passes(e.reference)
        assert not check.passes(text.split(".")[-2])  # the last sentence alone is not enough
        assert len(re.findall(r"[.!?](\s|$)", e.reference)) == 1  # one sentence


def test_abstention_passages_lack_the_answer() -> None:
    examples = _by_tag(per_slice=9)["abstention"]
    for e in examples:
        texts = _passage_texts(e)
        assert not e.answerable and e.reference is None and not e.gold_documents
        missing = e.metadata["missing"]
        assert missing in e.input
        assert all(missing not in t for t in texts), e.id
        if e.metadata["template"] == "not_stated":  # a phone number: no digit anywhere
            assert not any(ch.isdigit() for t in texts for ch in t)
    assert {e.metadata["template"] for e in examples} == {
        "other_person",
        "other_item",
        "not_stated",
    }


def _recompute(question: str) -> str:
    """The answer of a reasoning question, worked out from its text alone."""
    numbers = [int(n) for n in re.findall(r"\d+", question)]
    if "buys" in question:
        return str(numbers[0] + numbers[1])
    if "takes" in question:
        return str(numbers[0] - numbers[1])
    if "rows" in question:
        return str(numbers[0] * numbers[1])
    order = re.match(r"(\w+) is taller than (\w+), and \2 is taller than (\w+)\.", question)
    if order:
        return order.group(3)
    day = re.match(r"Today is (\w+)\. .* in (\d+) days", question)
    assert day, question
    return WEEKDAYS[(WEEKDAYS.index(day.group(1)) + int(day.group(2))) % 7]


def test_reasoning_answers_are_recomputed_and_checkable() -> None:
    examples = _by_tag(per_slice=20)["reasoning"]
    assert {e.metadata["template"] for e in examples} == {
        "add",
        "subtract",
        "multiply",
        "order",
        "weekday",
    }
    for e in examples:
        assert e.metadata["passages"] == [] and not e.gold_documents
        assert e.reference == _recompute(e.input), e.id
        assert all(c.passes(f"The answer is {e.reference}.") for c in e.checks), e.id
        if e.reference.isdigit():
            wrong = str(int(e.reference) + 1)
            assert not all(c.passes(f"The answer is {wrong}.") for c in e.checks)
            assert not all(c.passes(f"The answer is 1{e.reference}.") for c in e.checks)
        else:
            assert not all(c.passes(e.input) for c in e.checks)  # echoing all names fails


def test_records_accept_them_as_generative_examples() -> None:
    for e in preservation_examples(per_slice=3, seed=7):
        data = e.model_dump(exclude={"slice", "tags"})
        GenerativeExample.model_validate(data)  # the validators of plain examples too


# -- freezing --------------------------------------------------------------------------------


def _answer_workflow():  # type: ignore[no-untyped-def]
    return parse_workflow("name: kb\nkind: answer\n")


def _core() -> list[GenerativeExample]:
    return [
        GenerativeExample(id="q1", kind="answer", input="How long is the leave?", reference="25"),
        GenerativeExample(id="q2", kind="answer", input="Who approves leave?", reference="HR"),
    ]


def _freeze(**kw: object) -> GenerativeSuite:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # slice sizes below the recommended ranges
        return freeze_generative_suite("kb", _core(), _answer_workflow(), **kw)  # type: ignore[arg-type]


def test_freeze_with_and_without_preservation() -> None:
    plain = _freeze()
    assert [e.id for e in plain.examples] == ["q1", "q2"]
    assert plain.slice_examples(SuiteSlice.PRESERVATION) == []
    with_pres = _freeze(preservation=True, preservation_per_slice=4)
    pres = with_pres.slice_examples(SuiteSlice.PRESERVATION)
    assert len(pres) == 20 and {e.kind for e in pres} == {"answer", "tool_call"}
    assert with_pres.kind == "answer" and with_pres.hash != plain.hash
    assert with_pres.examples[2:] == preservation_examples(per_slice=4)
    # the same seed gives the same hash; another seed or size another one
    assert _freeze(preservation=True, preservation_per_slice=4).hash == with_pres.hash
    assert _freeze(preservation=True, preservation_per_slice=4, preservation_seed=1).hash != (
        with_pres.hash
    )
    assert _freeze(preservation=True, preservation_per_slice=5).hash != with_pres.hash
    # the stored form round-trips and its hash still checks
    again = GenerativeSuite.model_validate_json(with_pres.model_dump_json())
    assert again.hash == with_pres.hash == again.compute_hash()


def test_the_hash_covers_the_passages_and_tools() -> None:
    suite = _freeze(preservation=True, preservation_per_slice=2)
    citation = next(e for e in suite.examples if e.tags == ["citation"])
    passages = [dict(p) for p in citation.metadata["passages"]]
    passages[0]["text"] += " Also in Oslo."
    edited = citation.model_copy(update={"metadata": {**citation.metadata, "passages": passages}})
    assert edited.target_key() != citation.target_key()
    tool = next(e for e in suite.examples if e.tags == ["tool_use"])
    fewer = tool.model_copy(
        update={"metadata": {**tool.metadata, "tools": tool.metadata["tools"][:1]}}
    )
    assert fewer.target_key() != tool.target_key()
    swapped = [edited if e.id == citation.id else e for e in suite.examples]
    with pytest.raises(ValueError, match="hash"):
        GenerativeSuite(name=suite.name, kind=suite.kind, examples=swapped, hash=suite.hash)
    # an example without passages or tools hashes as before (stored suites still load)
    plain = GenerativeExample(id="q", kind="answer", input="Who?", reference="HR")
    assert len(plain.target_key()) == 9


def test_preservation_ids_clash_and_leakage_like_any_example() -> None:
    clash = GenerativeExample(id="pres-citation-0", kind="answer", input="Q?", reference="A")
    with pytest.raises(InputError, match="duplicate example ids"):
        freeze_generative_suite("kb", [clash], _answer_workflow(), preservation=True)
    leaked = preservation_examples(per_slice=1)[0].input
    with pytest.raises(Exception, match="overlaps training data"):
        _freeze(preservation=True, training_texts=[leaked], near_duplicates=False)


def test_preservation_alone_makes_a_suite_on_a_tool_call_workflow() -> None:
    workflow = parse_workflow(
        (Path(__file__).parent / "data" / "generative" / "tunegate.tool_call.yaml").read_text()
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        suite = freeze_generative_suite("tools", [], workflow, preservation=True)
    assert suite.kind == "tool_call" and len(suite.examples) == 50  # 10 per capability
    with pytest.raises(InputError, match="no examples"):
        freeze_generative_suite("tools", [], workflow)


def test_cli_suite_freeze_preservation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text("name: kb\nkind: answer\nstore:\n  url: sqlite:///kb.db\n", encoding="utf-8")
    rows = tmp_path / "suite.jsonl"
    rows.write_text(
        '{"id": "q1", "input": "How long is the leave?", "reference": "25 days"}\n',
        encoding="utf-8",
    )
    args = ["suite", "freeze", str(rows), "-c", str(config), "--json", "--exact-only"]
    assert main([*args, "--name", "plain"]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["slices"]["preservation"] == 0
    code = main([*args, "--name", "pres", "--preservation", "--preservation-per-slice", "3"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["examples"] == 16 and summary["slices"]["preservation"] == 15
    store = Store(f"sqlite:///{tmp_path / 'kb.db'}")
    stored = get_generative_suite(store, "pres")
    store.close()
    assert stored.hash == summary["hash"]
    assert stored.hash == _freeze_like(stored).hash  # the library call gives the same hash
    # a classification workflow refuses the flag with one clear line
    classify = tmp_path / "classify.yaml"
    classify.write_text(
        "name: c\nlabels:\n  a: {description: first}\n  b: {description: second}\n"
        "store:\n  url: sqlite:///c.db\n",
        encoding="utf-8",
    )
    csv = tmp_path / "s.csv"
    csv.write_text("text,label\nhello there,a\n", encoding="utf-8")
    code = main(["suite", "freeze", str(csv), "--name", "s", "-c", str(classify), "--preservation"])
    assert code == 2 and "--preservation applies to answer and tool_call" in capsys.readouterr().err


def _freeze_like(suite: GenerativeSuite) -> GenerativeSuite:
    core = [e for e in suite.examples if e.slice is not SuiteSlice.PRESERVATION]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return freeze_generative_suite(
            suite.name, core, _answer_workflow(), preservation=True, preservation_per_slice=3
        )
