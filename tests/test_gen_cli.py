"""`tunegate gen` without a model server: the errors a user meets before anything runs (the
whole loop against the real server is tests/test_generative_loop.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tunegate.cli import main


def _config(tmp_path: Path, text: str = "name: kb\nkind: answer\n") -> str:
    path = tmp_path / "tunegate.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def _err(capsys: pytest.CaptureFixture[str]) -> str:
    return " ".join(capsys.readouterr().err.split())


def test_gen_refuses_a_classify_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = _config(tmp_path, "name: c\nlabels:\n  a: {description: A}\n  b: {description: B}\n")
    assert main(["gen", "baseline", "-c", c]) == 2
    assert "tunegate gen works on answer or tool_call workflows" in _err(capsys)


def test_gen_needs_a_champion_and_a_suite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    c = _config(tmp_path)
    assert main(["gen", "eval", "--suite", "core", "-c", c]) != 0
    assert "no generative suite named or hashed 'core'; stored suites: []" in _err(capsys)
    assert main(["gen", "finetune", "--suite", "nope", "-c", c]) != 0
    assert "no generative suite named or hashed 'nope'" in _err(capsys)


def test_gen_baseline_registers_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    c = _config(tmp_path, "name: kb\nkind: answer\nllm: {model: my-model}\n")
    assert main(["gen", "baseline", "-c", c, "--json"]) == 0
    first = capsys.readouterr().out
    assert '"model": "my-model"' in first and '"champion": "gen-' in first
    assert main(["gen", "baseline", "-c", c, "--json", "--model", "other"]) == 0
    again = capsys.readouterr().out
    assert again.split('"champion": ')[1][:18] == first.split('"champion": ')[1][:18]


def test_gen_try_names_the_fixes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunegate.config import load_workflow
    from tunegate.evaluate import freeze_generative_suite, save_generative_suite
    from tunegate.records import GenerativeExample
    from tunegate.store import Store

    c = _config(tmp_path)
    wf = load_workflow(c)
    store = Store(wf.resolved_store_url(tmp_path))
    suite = freeze_generative_suite(
        "core",
        [GenerativeExample(id="q", kind="answer", input="Q?", reference="A")],
        wf,
        near_duplicates=False,
    )
    save_generative_suite(store, suite)
    assert main(["gen", "triage", "--suite", "core", "-c", c]) != 0
    assert "no champion yet; register the baseline with `tunegate gen baseline`" in _err(capsys)
    assert main(["gen", "baseline", "-c", c]) == 0
    capsys.readouterr()
    assert main(["gen", "triage", "--suite", "core", "-c", c]) != 0
    assert "run `tunegate gen eval --suite core` first" in _err(capsys)
    capsys.readouterr()
    assert main(["gen", "try", "bigger_model", "--suite", "core", "-c", c]) == 2
    err = _err(capsys)
    assert "no cheap fix 'bigger_model'" in err and "top_k_5" in err and "custom" in err
    assert main(["gen", "try", "custom", "--suite", "core", "-c", c]) == 2
    assert '"custom" needs --change' in _err(capsys)
    assert main(["gen", "try", "custom", "--change", "{nope", "--suite", "core", "-c", c]) == 2
    assert "--change is not JSON" in _err(capsys)
    assert main(["gen", "try", "custom", "--change", "[1]", "--suite", "core", "-c", c]) == 2
    assert "--change must be a JSON object" in _err(capsys)
    assert main(["gen", "compare", "grun_a", "grun_b", "-c", c]) != 0
    assert "no generative run 'grun_a'" in _err(capsys)


def test_gen_eval_checker_choice(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunegate.config import load_workflow
    from tunegate.evaluate import freeze_generative_suite, save_generative_suite
    from tunegate.records import GenerativeExample
    from tunegate.store import Store

    c = _config(tmp_path)
    wf = load_workflow(c)
    save_generative_suite(
        Store(wf.resolved_store_url(tmp_path)),
        freeze_generative_suite(
            "core",
            [GenerativeExample(id="q", kind="answer", input="Q?", reference="A")],
            wf,
            near_duplicates=False,
        ),
    )
    assert main(["gen", "baseline", "-c", c]) == 0
    capsys.readouterr()
    assert main(["gen", "eval", "--suite", "core", "--checker", "oracle", "-c", c]) == 2
    assert "--checker must be 'embedding' or 'llm', got 'oracle'" in _err(capsys)
    assert main(["gen", "eval", "--suite", "core", "--judge-model", "x", "-c", c]) == 2
    assert "--judge-model applies to --checker llm" in _err(capsys)
    assert main(["gen", "style", "Warm.", "--suite", "core", "--house", "nope.txt", "-c", c]) == 2
    assert "--house nope.txt: no such file" in _err(capsys)
