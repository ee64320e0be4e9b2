"""``tunegate classify`` end to end with a tiny random encoder (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import starter_yaml
from tunegate.records import Decision

pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory, encoder_path: str) -> str:
    import torch

    folder = tmp_path_factory.mktemp("tiny_cli")
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    transformers.BertModel(config).save_pretrained(folder)
    transformers.AutoTokenizer.from_pretrained(encoder_path).save_pretrained(folder)
    return str(folder)


@pytest.fixture
def project(tmp_path: Path, tiny_encoder: str) -> Path:
    text = starter_yaml().replace("encoder: null", f"encoder: {tiny_encoder}")
    text = text.replace("backend: auto", "backend: torch").replace(
        "max_length: 128", "max_length: 16"
    )
    text = text.replace(
        "rules: []",
        """rules:
  - name: mfa_lockout_is_security
    label: security_incident
    all_of: ["\\\\blocked\\\\b"]
    any_of: ["\\\\bmfa\\\\b"]""",
    )
    (tmp_path / "tunegate.yaml").write_text(text)
    return tmp_path


def _run(project: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["classify", *args, "-c", str(project / "tunegate.yaml")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_classify_jsonl_writes_valid_decisions(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = project / "t.jsonl"
    rows = [
        {"id": "a", "text": "vpn drops", "metadata": {"shift": "night"}},
        {"id": "b", "text": "locked out after mfa spam", "site": "berlin"},
        {"text": "word " * 200},
    ]
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    out = project / "d.jsonl"
    code, stdout, _ = _run(
        project, str(src), "--no-store", "-o", str(out), "--json", "--explain", capsys=capsys
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["decisions"] == 3 and summary["blank_lines"] == 1
    assert summary["truncated"] >= 1
    decisions = [Decision.model_validate_json(line) for line in out.read_text().splitlines()]
    assert [d.ticket_id for d in decisions][:2] == ["a", "b"]
    assert decisions[1].rule_hits[0].rule == "mfa_lockout_is_security"
    assert decisions[1].route.value == "escalate"
    why = {e["ticket_id"]: e["why"] for e in summary["explanations"]}
    assert why["b"].startswith("rule 'mfa_lockout_is_security' matched")
    assert all(len(e["top"]) == 3 for e in summary["explanations"])


def test_classify_plain_lines_from_stdin(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("printer broken\n\nforgot password\n"))
    code, stdout, _ = _run(project, "-", "--no-store", "--json", capsys=capsys)
    assert code == 0
    summary = json.loads(stdout)
    assert summary["decisions"] == 2
    assert len(summary["decision_records"]) == 2


def test_classify_bad_rows_fail_clearly_or_are_skipped(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = project / "bad.jsonl"
    src.write_text(
        '{"text": "ok ticket"}\n{"text": "  "}\n{"text": 5}\n{"id": "x"}\n'
        '{"text": "m", "metadata": [1]}\nnot json\n'
    )
    code, _, err = _run(project, str(src), "--no-store", capsys=capsys)
    assert code == 2
    for needle in [
        "5 invalid rows",
        "line 2: 'text' is empty",
        "line 3: 'text' must be a string",
        "line 4: missing field 'text'",
        "line 5: 'metadata' must be an object",
        "line 6: not valid JSON",
        "--skip-invalid",
    ]:
        assert needle in err
    code, stdout, _ = _run(
        project, str(src), "--no-store", "--skip-invalid", "--json", capsys=capsys
    )
    assert code == 0
    summary = json.loads(stdout)
    assert summary["decisions"] == 1 and summary["skipped_invalid"] == 5


def test_classify_failure_mid_run_keeps_finished_batches(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunegate.errors import ModelError
    from tunegate.models import Router

    real = Router.decide
    calls = {"n": 0}

    def flaky(self: Router, tickets: list, **kw: object) -> list:  # type: ignore[type-arg]
        calls["n"] += 1
        if calls["n"] == 3:
            raise ModelError("simulated crash in batch 3")
        return real(self, tickets, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Router, "decide", flaky)
    src = project / "many.txt"
    src.write_text("\n".join(f"ticket number {i} about vpn" for i in range(10)) + "\n")
    out = project / "d.jsonl"
    code, _, err = _run(
        project, str(src), "--no-store", "--batch", "3", "-o", str(out), capsys=capsys
    )
    assert code == 1 and "simulated crash in batch 3" in err
    lines = out.read_text().splitlines()
    assert len(lines) == 6  # batches 1 and 2 were written before the crash
    assert all(Decision.model_validate_json(line) for line in lines)


def test_classify_writes_the_store(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tunegate.store")
    from tunegate.store import Store

    src = project / "t.txt"
    src.write_text("vpn drops\nprinter broken\n")
    code, _, err = _run(project, str(src), "--model", "zero-shot", capsys=capsys)
    assert code == 0
    store = Store(f"sqlite:///{project / 'tunegate.db'}")
    assert len(store.tickets()) == 2
    assert {d.ticket_id for d in store.decisions()} == {t.id for t in store.tickets()}
    # champion requested but none registered: a clear error
    code, _, err = _run(project, str(src), "--model", "champion", capsys=capsys)
    assert code == 2 and "no champion is registered" in err


def test_no_store_still_serves_the_registered_champion(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--no-store means "do not write"; it read no registry, so a registered champion was
    silently replaced by zero-shot and `--model champion` said none was registered."""
    from tunegate.config import load_workflow
    from tunegate.store import Store
    from tunegate.train import ensure_champion

    cfg = project / "tunegate.yaml"
    workflow = load_workflow(cfg)
    store = Store(workflow.resolved_store_url(project))
    champion = ensure_champion(store, workflow)
    before = (len(store.tickets()), len(store.decisions()))
    store.close()
    import io

    for extra in ([], ["--model", "champion"]):
        monkeypatch.setattr("sys.stdin", io.StringIO("printer broken\n"))
        code, stdout, _ = _run(project, "-", "--no-store", "--json", *extra, capsys=capsys)
        assert code == 0
        assert json.loads(stdout)["model_version"] == champion
    store = Store(workflow.resolved_store_url(project))
    assert (len(store.tickets()), len(store.decisions())) == before  # nothing written
    store.close()


def test_no_store_without_a_store_creates_none(
    project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO("printer broken\n"))
    code, stdout, _ = _run(project, "-", "--no-store", "--json", capsys=capsys)
    assert code == 0 and json.loads(stdout)["decisions"] == 1
    assert not list(project.glob("*.db"))
