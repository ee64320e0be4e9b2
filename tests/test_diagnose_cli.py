"""The diagnosis CLI over a small SQLite store: overrides trend, triage, attribute --confirm,
gate (exit codes and --json)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tunegate.cli import main
from tunegate.config import starter_yaml
from tunegate.records import Decision, Override, ReasonCode, Route, Ticket

MONDAY = datetime(2025, 1, 6, 9, tzinfo=UTC)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    from tunegate.store import Store

    cfg = tmp_path / "tunegate.yaml"
    cfg.write_text(starter_yaml(), encoding="utf-8")
    store = Store(f"sqlite:///{tmp_path / 'tunegate.db'}")
    tickets, decisions, overrides = [], [], []
    for w, c in enumerate([3, 2, 3, 2, 9, 13, 16, 20]):
        for i in range(40):
            at = MONDAY + timedelta(weeks=w, days=i % 7)
            tid = f"t{w}_{i}"
            text = (
                f"authenticator push prompts I did not request, locked out {i}"
                if i < c
                else f"locked out after too many password attempts {i}"
            )
            tickets.append(Ticket(id=tid, text=text, created_at=at))
            decisions.append(
                Decision(
                    id=f"d{tid}",
                    ticket_id=tid,
                    model_version="zs",
                    label="account_unlock",
                    probabilities={"account_unlock": 1.0},
                    h_norm=0.0,
                    route=Route.AUTO,
                    created_at=at,
                )
            )
            if i < c:
                overrides.append(
                    Override(
                        id=f"o{tid}",
                        ticket_id=tid,
                        model_label="account_unlock",
                        final_label="security_incident",
                        reason_code=ReasonCode.R2,
                        created_at=at,
                    )
                )
    store.add_tickets(tickets)
    store.add_decisions(decisions)
    store.add_overrides(overrides)
    store.close()
    return cfg


def test_overrides_trend_json(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["overrides", "trend", "-c", str(project), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["trend"]["counts"][-4:] == [9, 13, 16, 20]
    assert data["trend"]["decision"]["passed"] is True
    assert any(p["ngram"] == "authenticator push" for p in data["patterns"])
    assert main(["overrides", "trend", "-c", str(project), "--by", "slice"]) == 0
    assert "mfa_related" in capsys.readouterr().out
    assert main(["overrides", "trend", "-c", str(project), "--by", "colour"]) == 2


def test_triage_round_trip_and_recommend(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["triage", "suggest", "-c", str(project), "--json"]) == 0
    sugg = json.loads(capsys.readouterr().out)
    assert sugg["failures"] == 68
    path = tmp_path / "triage.csv"
    assert main(["triage", "export", str(path), "-c", str(project)]) == 0
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    for row in rows[:50]:
        row["category"] = "reasoning_failure"
    rows[50]["category"] = "not-a-category"
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    capsys.readouterr()
    assert main(["triage", "import", str(path), "-c", str(project)]) == 2
    assert f"{path}:52: category 'not-a-category'" in capsys.readouterr().err
    rows[50]["category"] = ""
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert main(["triage", "import", str(path), "-c", str(project), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["confirmed"] == 50
    one = rows[60]["failure_id"]
    assert main(["triage", "confirm", one, "policy_violation", "-c", str(project)]) == 0
    capsys.readouterr()
    assert main(["triage", "recommend", "-c", str(project), "--json"]) == 0
    rec = json.loads(capsys.readouterr().out)
    assert rec["action"] == "insufficient_data" and rec["total"] == 51 and rec["needed"] == 149


def test_gate_exit_codes_and_confirm(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tunegate.documents import Finding
    from tunegate.store import Store

    assert main(["gate", "-c", str(project), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["open"] is False and len(report["conditions"]) == 5
    assert report["conditions"][0]["passed"] is True
    store = Store(f"sqlite:///{project.parent / 'tunegate.db'}")
    finding = Finding(id="fnd_x", reason_code="R2", label="security_incident")
    store.documents(Finding).put("fnd_x", finding)
    store.close()
    assert main(["attribute", "--confirm", "fnd_x", "-c", str(project), "--reviewer", "ana"]) == 0
    assert main(["gate", "-c", str(project)]) == 1
    out = capsys.readouterr().out
    assert "PASS (2) root_cause" in out and "FAIL (4) instructions_tried" in out
    assert main(["attribute", "--confirm", "nope", "-c", str(project)]) == 1


@pytest.mark.parametrize(("outcome", "code"), [("pass", 0), ("fail", 1), ("inconclusive", 2)])
def test_try_commands_exit_with_their_verdict(
    project: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    outcome: str,
    code: int,
) -> None:
    """A failed cheap fix exits non-zero, as `tunegate compare` does (it exited 0)."""
    import tunegate.diagnose
    from tunegate.records import Attempt, AttemptKind, Verdict, VerdictOutcome

    attempt = Attempt(
        kind=AttemptKind.RULES,
        baseline_version="zs",
        candidate_version="rules-zs",
        verdict=Verdict(
            outcome=VerdictOutcome(outcome), baseline_run="a", candidate_run="b", rules=[]
        ),
    )
    monkeypatch.setattr(tunegate.diagnose, "try_rules", lambda *a, **k: attempt)
    rules = tmp_path / "rules.yaml"
    rules.write_text("[]", encoding="utf-8")
    monkeypatch.setattr("tunegate.cli._diagnose._suite", lambda store, name: None)
    assert main(["try", "rules", str(rules), "-c", str(project), "--json"]) == code
    assert json.loads(capsys.readouterr().out)["id"] == attempt.id
def test_attribute_contrasts_overrides_and_the_gate_names_the_words(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["attribute", "-c", str(project), "--json"]) == 0
    findings = json.loads(capsys.readouterr().out)
    top = findings[0]
    assert top["kind"] == "contrast" and top["method"] == "contrast"
    assert (top["predicted_label"], top["label"]) == ("account_unlock", "security_incident")
    terms = {t["term"]: t for t in top["tokens"]}
    assert {"authenticator push", "push prompts"} <= set(terms), sorted(terms)
    assert terms["authenticator push"]["overrides_with"] == 68  # 3+2+3+2+9+13+16+20 overrides
    assert terms["authenticator push"]["reference_with"] == 0
    assert main(["attribute", "-c", str(project), "--min-support", "69", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["attribute", "--confirm", top["id"], "-c", str(project)]) == 0
    capsys.readouterr()
    main(["gate", "-c", str(project)])
    out = " ".join(capsys.readouterr().out.split())  # the console wraps long lines
    assert "PASS (2) root_cause" in out
    n_o, n_c = top["n_overrides"], top["n_reference"]
    assert f"authenticator push (68 of {n_o} vs 0 of {n_c})" in out


def test_overrides_by_class_fit_a_log_file(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Not on a terminal, Rich cut tables at 80 columns ("decisi..."); with many groups each
    (week, group) is a row instead of a column."""
    from tunegate.cli._common import out

    assert main(["overrides", "trend", "-c", str(project), "--by", "class"]) == 0
    text = capsys.readouterr().out
    assert "…" not in text and "decisions" in text
    assert out.width >= 160


def test_promote_from_attempt_registers_the_cheap_fix(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tunegate promote VERSION --from-attempt ATT`: what finetune suggests when the cheap
    fix is enough. The instructions fix becomes a zero-shot version and the champion."""
    from tunegate.config import load_workflow
    from tunegate.models import ZeroShotClassifier
    from tunegate.records import Attempt, AttemptKind, ModelKind, Verdict, VerdictOutcome
    from tunegate.store import Store
    from tunegate.train import ensure_champion

    workflow = load_workflow(project)
    store = Store(f"sqlite:///{project.parent / 'tunegate.db'}")
    champion = ensure_champion(store, workflow, actor="test")
    fixed = ZeroShotClassifier(workflow, instructions="An IT helpdesk request about").version
    attempt = Attempt(
        kind=AttemptKind.INSTRUCTIONS,
        baseline_version=champion,
        candidate_version=fixed,
        verdict=Verdict(
            outcome=VerdictOutcome.PASS, baseline_run="a", candidate_run="b", rules=[]
        ),
        details={"instructions": "An IT helpdesk request about"},
    )
    store.save_attempt(attempt)
    store.close()
    cfg = ["-c", str(project)]
    assert main(["promote", "nope", "--from-attempt", attempt.id, *cfg]) != 0
    assert f"evaluated {fixed}" in capsys.readouterr().err
    assert main(["promote", fixed, "--from-attempt", "att_missing", *cfg]) != 0
    assert "no attempt 'att_missing'" in capsys.readouterr().err
    assert main(["promote", fixed, "--from-attempt", attempt.id, *cfg, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version_id"] == fixed
    store = Store(f"sqlite:///{project.parent / 'tunegate.db'}")
    assert store.get_alias("champion") == fixed
    mv = store.get_model_version(fixed)
    assert mv.kind is ModelKind.ZERO_SHOT and mv.parent == champion
    store.close()
