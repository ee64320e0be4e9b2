"""Ingestion of generative examples in the shapes users have: DeepEval, promptfoo, Inspect,
OpenAI Evals and native; per-row quarantine with file, line and reason; the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow
from tunegate.errors import InputError
from tunegate.io import (
    detect_generative_shape,
    ingest_file,
    read_generative,
    read_records,
    stored_generative_examples,
)
from tunegate.io._shapes import RowError
from tunegate.store import Store

DATA = Path(__file__).parent / "data" / "generative"
TOOLS_YAML = (DATA / "tunegate.tool_call.yaml").read_text(encoding="utf-8")


def answer() -> Workflow:
    return parse_workflow("name: kb\nkind: answer\n")


def tools() -> Workflow:
    return parse_workflow(TOOLS_YAML)


def _reasons(problems: list) -> dict[int, str]:  # type: ignore[type-arg]
    return {p.line: p.reason for p in problems}


def test_detect_shape_by_fields() -> None:
    assert detect_generative_shape({"vars": {}, "assert": []}) == "promptfoo"
    assert detect_generative_shape({"__expected": "x", "question": "q"}) == "promptfoo"
    assert detect_generative_shape({"input": "q", "expected_output": "a"}) == "deepeval"
    assert detect_generative_shape({"input": "q", "ideal": "a"}) == "openai-evals"
    assert detect_generative_shape({"input": "q", "target": "a"}) == "inspect"
    assert detect_generative_shape({"input": "q", "reference": "a"}) == "native"
    with pytest.raises(RowError, match=r"cannot tell the shape .* pass --shape"):
        detect_generative_shape({"question": "q"})


def test_deepeval_json_array() -> None:
    examples, problems = read_generative(DATA / "deepeval_answer.json", workflow=answer())
    first, unanswerable = examples
    assert first.reference == "25 days per year, from the first month."
    assert [d.id for d in first.gold_documents] == ["hr-leave"]
    assert first.context == ["New employees are entitled to 25 days of paid annual leave per year."]
    assert first.metadata["observed"]["actual_output"].startswith("New employees get 25 days")
    assert first.metadata["slice"] == "core"
    assert not unanswerable.answerable and unanswerable.reference is None
    assert _reasons(problems) == {
        15: "missing field 'input' (DeepEval test case)",
        18: "input is empty or whitespace only",
    }


def test_deepeval_tool_calls() -> None:
    examples, problems = read_generative(DATA / "deepeval_tools.jsonl", workflow=tools())
    reset, thanks = examples
    assert reset.expected_tool is not None
    assert reset.expected_tool.model_dump() == {
        "name": "reset_password",
        "arguments": {"user": "ana", "system": "vpn"},
    }
    assert thanks.no_tool
    reasons = _reasons(problems)
    assert "expects 2 tool calls ['open_ticket', 'page_oncall']" in reasons[3]
    assert (
        "unknown tool 'reset_pasword' in expected_tool; did you mean 'reset_password'?"
        in (reasons[4])
    )
    assert "arguments.priority: 'urgent' is not one of ['low', 'high']" in reasons[5]
    assert reasons[6].startswith("missing field 'expected_tool'")


def test_promptfoo_yaml_asserts() -> None:
    examples, problems = read_generative(DATA / "promptfoo_tests.yaml", workflow=answer())
    leave, parking = examples
    assert leave.input == "How many days of annual leave do new employees get?"
    assert leave.reference == "25 days per year."
    assert [(c.type, c.value, c.negate) for c in leave.checks] == [
        ("icontains", "25 days", False),
        ("contains", "I don't know", True),
    ]
    assert leave.metadata["vars"] == {"team": "hr"}
    assert leave.metadata["description"] == "leave question"
    assert [d.id for d in leave.gold_documents] == ["hr-leave"]
    assert parking.checks[0].passes("Parking is free for staff.")
    reasons = _reasons(problems)
    assert sorted(reasons) == [16, 21, 31]  # the line of each test in the YAML file
    assert "assert type 'javascript' is not supported: it runs JavaScript" in reasons[16]
    assert "assert type 'llm-rubric' is not supported: it needs a grading model" in reasons[21]
    assert reasons[31].startswith("missing field 'vars'")


def test_promptfoo_json_and_csv(tmp_path: Path) -> None:
    tests = {
        "tests": [
            {
                "vars": {"query": "Is parking free?"},
                "assert": [{"type": "equals", "value": "Yes."}],
            },
            {
                "vars": {"query": "x"},
                "assert": [{"type": "python", "value": "file://check.py"}],
            },
            {"vars": {"a": "1", "b": "2"}, "assert": [{"type": "contains", "value": "3"}]},
        ]
    }
    path = tmp_path / "promptfooconfig.json"
    path.write_text(json.dumps(tests, indent=2), encoding="utf-8")
    examples, problems = read_generative(path, workflow=answer())
    assert [e.reference for e in examples] == ["Yes."]
    reasons = _reasons(problems)
    assert sorted(reasons) == [14, 25]
    assert "reads its value from file://check.py" in reasons[14]
    assert "cannot tell which of vars ['a', 'b'] is the input" in reasons[25]
    csv_path = tmp_path / "tests.csv"
    csv_path.write_text(
        "question,__expected\nIs parking free?,icontains: free\nWho?,javascript: 1\n",
        encoding="utf-8",
    )
    examples, problems = read_generative(csv_path, workflow=answer(), shape="promptfoo")
    assert [(c.type, c.value) for c in examples[0].checks] == [("icontains", "free")]
    assert "'javascript' is not supported" in problems[0].reason and problems[0].line == 3


def test_inspect_and_openai_evals() -> None:
    examples, problems = read_generative(DATA / "inspect_answer.jsonl", workflow=answer())
    cfo, wifi = examples
    assert cfo.id == "insp-1" and cfo.reference == "The CFO approves it."
    assert cfo.alternatives == ["the CFO"]
    assert cfo.gold_documents[0].version == "2024-03"
    assert wifi.input == "What is the Wi-Fi password for guests?" and not wifi.answerable
    assert _reasons(problems)[3].startswith("an answerable question needs a reference answer")
    examples, problems = read_generative(DATA / "openai_evals_answer.jsonl", workflow=answer())
    assert examples[0].input == "How long is the notice period?"
    assert examples[0].metadata["system"].startswith("Answer from the handbook")
    assert _reasons(problems) == {2: "'input' is a chat list without a 'user' message"}


def test_forced_shape_and_wrong_shapes() -> None:
    _, problems = read_generative(
        DATA / "inspect_answer.jsonl", workflow=answer(), shape="openai-evals"
    )
    assert len(problems) == 1  # insp-1 has no 'ideal' and no reference: quarantined
    with pytest.raises(InputError, match="unknown shape 'hf' for a answer workflow"):
        read_generative(DATA / "inspect_answer.jsonl", workflow=answer(), shape="hf")
    classify = parse_workflow("name: x\nlabels:\n  a: {description: A}\n  b: {description: B}\n")
    with pytest.raises(InputError, match="shape 'deepeval' reads answer and tool_call examples"):
        read_records("examples", DATA / "deepeval_answer.json", workflow=classify, shape="deepeval")
    with pytest.raises(Exception, match="ingesting overrides works on classify workflows"):
        read_records("overrides", DATA / "native_tool_call.jsonl", workflow=tools())


def test_ingest_quarantine_and_idempotence(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    path = DATA / "native_tool_call.jsonl"
    report = ingest_file(store, "examples", path, workflow=tools(), quarantine_dir=tmp_path)
    assert (report.rows, report.added, report.quarantined, report.shape) == (4, 3, 1, "auto")
    assert report.problems[0].line == 4 and "'summary' is a required property" in (
        report.problems[0].reason
    )
    entry = json.loads(Path(report.quarantine_file or "").read_text().splitlines()[0])
    assert entry["file"] == str(path) and entry["line"] == 4 and entry["kind"] == "examples"
    again = ingest_file(store, "examples", path, workflow=tools(), quarantine_dir=tmp_path)
    assert (again.added, again.existing, again.quarantined) == (0, 3, 1)
    stored = {e.id: e for e in stored_generative_examples(store)}
    assert sorted(stored) == ["tc-1", "tc-2", "tc-3"] and stored["tc-2"].no_tool
    changed = tmp_path / "changed.jsonl"
    changed.write_text(
        '{"id": "tc-2", "input": "What is the weather like today?", "expected_tool": null}\n',
        encoding="utf-8",
    )
    clash = ingest_file(store, "examples", changed, workflow=tools(), quarantine_dir=tmp_path)
    assert clash.problems[0].reason == "id 'tc-2' is already in the store with different content"
    store.close()


def test_cli_ingest_and_suite_freeze(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text("name: kb\nkind: answer\nstore:\n  url: sqlite:///kb.db\n", encoding="utf-8")
    code = main(
        ["ingest", "examples", str(DATA / "promptfoo_tests.yaml"), "-c", str(config), "--json"]
    )
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["added"] == 2 and report["quarantined"] == 3
    # the suite: the Inspect file's good rows (its bad row refuses the whole suite)
    code = main(
        ["suite", "freeze", str(DATA / "inspect_answer.jsonl"), "--name", "kb", "-c", str(config)]
    )
    assert code == 2 and "1 rows cannot become suite examples" in capsys.readouterr().err
    good = tmp_path / "suite.jsonl"
    good.write_text(
        "\n".join((DATA / "inspect_answer.jsonl").read_text().splitlines()[:2]) + "\n",
        encoding="utf-8",
    )
    code = main(["suite", "freeze", str(good), "--name", "kb", "-c", str(config), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0 and summary["kind"] == "answer" and summary["examples"] == 2
    assert main(["suite", "show", "kb", "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["hash"] == summary["hash"]
    leaked = tmp_path / "leaked.jsonl"
    leaked.write_text(
        '{"input": "How many days of annual leave do new employees get?", "target": "25"}\n',
        encoding="utf-8",
    )
    code = main(["suite", "freeze", str(leaked), "--name", "x", "-c", str(config), "--exact-only"])
    assert code != 0 and "overlaps training data" in capsys.readouterr().err


def test_asked_at_native_and_in_metadata(tmp_path: Path) -> None:
    rows = [
        {"input": "VPN client version?", "reference": "5.2", "asked_at": "2026-03-01T09:00:00Z"},
        {
            "input": "MFA reset?",
            "reference": "Call the desk",
            "metadata": {"asked_at": "2026-04-02"},
        },
        {"input": "No time?", "reference": "x", "asked_at": "not a time"},
    ]
    path = tmp_path / "asked.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    examples, problems = read_generative(path, workflow=answer())
    first, second = examples
    assert first.asked_at is not None and first.asked_at.isoformat() == "2026-03-01T09:00:00+00:00"
    assert second.asked_at is not None and second.asked_at.month == 4
    assert "asked_at" not in second.metadata
    assert 3 in _reasons(problems) and "asked_at" in _reasons(problems)[3]
    # the time belongs to the example: the same question asked at another time differs
    assert first.target_key() != first.model_copy(update={"asked_at": None}).target_key()
