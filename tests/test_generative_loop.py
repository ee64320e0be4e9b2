"""The whole loop for an ``answer`` and a ``tool_call`` workflow, through the CLI, against the
real local model server (llama.cpp serving SmolLM2-135M-Instruct): ingest, suite, baseline,
triage, a cheap fix as an Attempt, gate, supervised LoRA fine-tune served as a GGUF adapter,
verdict, promote or refuse, monitor.

The assertions are about the loop, not about how good a 135M model is: every step runs, the
records it leaves are consistent with each other, and promotion follows the verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tunegate.cli import main
from tunegate.config import load_workflow
from tunegate.records import AttemptKind, ModelKind, VerdictOutcome
from tunegate.registry import Registry
from tunegate.store import Store

pytestmark = pytest.mark.slow

KB = [
    (
        "vpn-client",
        "v1",
        "2026-01-01",
        "VPN client",
        "The VPN client is GlobalProtect 5.2. Download it from the software portal.",
    ),
    (
        "vpn-client",
        "v2",
        "2026-03-01",
        "VPN client",
        "The VPN client is GlobalProtect 6.1. Version 5.2 no longer connects.",
    ),
    (
        "mfa-reset",
        "v1",
        "2026-01-01",
        "MFA reset",
        "To reset MFA, call the service desk at extension 4400 with your employee ID.",
    ),
    (
        "password-policy",
        "v1",
        "2026-01-01",
        "Passwords",
        "Passwords must be at least 14 characters and expire every 90 days.",
    ),
    (
        "password-policy",
        "v2",
        "2026-04-01",
        "Passwords",
        "Passwords must be at least 16 characters. Passwords no longer expire.",
    ),
    (
        "laptop-replacement",
        "v1",
        "2026-01-01",
        "Laptops",
        "Laptops are replaced every 4 years. Request one in the asset portal.",
    ),
    (
        "phishing",
        "v1",
        "2026-01-01",
        "Phishing",
        "Report a phishing email with the Report Phish button and call security at extension 5555.",
    ),
]

ANSWER_SUITE = [
    ("q1", "Which VPN client version should I install?", "GlobalProtect 6.1", ["vpn-client"]),
    ("q2", "How do I reset my MFA?", "Call the service desk at extension 4400.", ["mfa-reset"]),
    ("q3", "How long must a password be?", "At least 16 characters.", ["password-policy"]),
    ("q4", "How often are laptops replaced?", "Every 4 years.", ["laptop-replacement"]),
    ("q5", "What do I do with a phishing email?", "Use the Report Phish button.", ["phishing"]),
    ("q6", "What is on the cafeteria menu on Friday?", None, []),
]

ANSWER_TRAIN = [
    (
        "t1",
        "Where can I download the VPN software?",
        "From the software portal: GlobalProtect 6.1.",
        ["vpn-client"],
    ),
    ("t2", "Which extension resets multi-factor authentication?", "Extension 4400.", ["mfa-reset"]),
    ("t3", "Do passwords still expire?", "No, passwords no longer expire.", ["password-policy"]),
    ("t4", "Where do I request a new laptop?", "In the asset portal.", ["laptop-replacement"]),
    ("t5", "Which extension reaches security?", "Extension 5555.", ["phishing"]),
    ("t6", "Who wins the football match tonight?", None, []),
    (
        "t7",
        "Is GlobalProtect 5.2 still supported?",
        "No, version 5.2 no longer connects.",
        ["vpn-client"],
    ),
    ("t8", "What do I need when I call about MFA?", "Your employee ID.", ["mfa-reset"]),
]

TOOLS = """\
tools:
  - name: unlock_account
    description: Unlock a user's locked account
    parameters:
      type: object
      properties: {user: {type: string}}
      required: [user]
      additionalProperties: false
  - name: reset_mfa
    description: Reset a user's multi-factor authentication
    parameters:
      type: object
      properties:
        user: {type: string}
        method: {type: string, enum: [sms, app]}
      required: [user, method]
      additionalProperties: false
  - name: create_incident
    description: Open a security incident
    parameters:
      type: object
      properties:
        summary: {type: string}
        severity: {type: string, enum: [low, high]}
      required: [summary, severity]
      additionalProperties: false
"""

TOOL_SUITE: list[tuple[str, str, dict[str, Any] | None]] = [
    (
        "r1",
        "Please unlock the account of user jdoe.",
        {"name": "unlock_account", "arguments": {"user": "jdoe"}},
    ),
    (
        "r2",
        "Reset MFA for asmith using the app.",
        {"name": "reset_mfa", "arguments": {"user": "asmith", "method": "app"}},
    ),
    (
        "r3",
        "Open a high severity incident: ransomware on the file server.",
        {
            "name": "create_incident",
            "arguments": {"summary": "ransomware on the file server", "severity": "high"},
        },
    ),
    ("r4", "Thanks, that is all for today.", None),
    (
        "r5",
        "Unlock bwayne's account please.",
        {"name": "unlock_account", "arguments": {"user": "bwayne"}},
    ),
    (
        "r6",
        "Reset MFA for ckent by sms.",
        {"name": "reset_mfa", "arguments": {"user": "ckent", "method": "sms"}},
    ),
]

TOOL_TRAIN: list[tuple[str, str, dict[str, Any] | None]] = [
    (
        "u1",
        "User pparker is locked out, unlock him.",
        {"name": "unlock_account", "arguments": {"user": "pparker"}},
    ),
    (
        "u2",
        "Set up MFA again for dprince with the authenticator app.",
        {"name": "reset_mfa", "arguments": {"user": "dprince", "method": "app"}},
    ),
    (
        "u3",
        "Low severity incident: a suspicious USB stick in the lobby.",
        {
            "name": "create_incident",
            "arguments": {"summary": "a suspicious USB stick in the lobby", "severity": "low"},
        },
    ),
    ("u4", "Good morning!", None),
    (
        "u5",
        "Account of hjordan is locked.",
        {"name": "unlock_account", "arguments": {"user": "hjordan"}},
    ),
    (
        "u6",
        "MFA reset by text message for oqueen.",
        {"name": "reset_mfa", "arguments": {"user": "oqueen", "method": "sms"}},
    ),
    ("u7", "What time is it?", None),
    (
        "u8",
        "High severity: someone wired money after a fake CEO email.",
        {
            "name": "create_incident",
            "arguments": {
                "summary": "someone wired money after a fake CEO email",
                "severity": "high",
            },
        },
    ),
]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(tmp: Path, server: Any, kind: str) -> Path:
    llm = {
        "base_url": server.base_url,
        "model": server.model,
        "timeout_s": 300,
        "max_concurrency": 1,
    }
    body = [
        f"name: loop-{kind}",
        f"kind: {kind}",
        "llm: " + json.dumps(llm),
        "triage: {min_failures: 1}",
        "gate: {min_reviewed_examples: 5}",
        "training: {epochs: 2, lora_r: 8, lora_alpha: 16, learning_rate: 0.001}",
    ]
    if kind == "answer":
        body.append("retrieval: {top_k: 2}")
    text = "\n".join(body) + "\n" + (TOOLS if kind == "tool_call" else "")
    path = tmp / "tunegate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Any]:
    capsys.readouterr()
    code = main([*args, "--json"])
    printed = capsys.readouterr()
    try:
        return code, json.loads(printed.out)
    except ValueError:
        raise AssertionError(
            f"tunegate {' '.join(args)} (exit {code}) printed: {printed.out}{printed.err}"
        ) from None


def _loop(
    tmp: Path,
    cfg: Path,
    capsys: pytest.CaptureFixture[str],
    suite_file: Path,
    train_file: Path,
    log_file: Path,
) -> dict[str, Any]:
    c = str(cfg)
    code, frozen = _cli(
        capsys,
        "suite",
        "freeze",
        str(suite_file),
        "--name",
        "core",
        "--preservation",
        "--preservation-per-slice",
        "1",
        "-c",
        c,
    )
    assert code == 0, frozen
    assert frozen["slices"]["preservation"] == 5

    code, base = _cli(capsys, "gen", "baseline", "-c", c)
    assert code == 0 and base["champion"].startswith("gen-")
    champion = base["champion"]

    code, run = _cli(capsys, "gen", "eval", "--suite", "core", "-c", c)
    assert code == 0 and run["model_version"] == champion
    overall = run["metrics"]["overall"]
    assert overall["n"] == frozen["examples"] == run["metrics"]["slices"]["core"]["n"] + 5

    code, tri = _cli(capsys, "gen", "triage", "--suite", "core", "-c", c)
    assert code == 0
    triage, rec = tri["triage"], tri["recommendation"]
    assert sum(triage["counts"].values()) == triage["total"]
    assert rec["action"] in {
        "retrieval",
        "rules",
        "constrained_output",
        "tool_schemas",
        "fine_tune",
    }

    fix = "top_k_5" if cfg.read_text().count("kind: answer") else "abstention_criteria"
    if "tool_call" in cfg.read_text():
        fix = "custom"
    extra = ["--change", json.dumps({"max_tokens": 96})] if fix == "custom" else []
    code, attempt = _cli(capsys, "gen", "try", fix, "--suite", "core", *extra, "-c", c)
    assert code in (0, 1, 2)
    assert attempt["baseline_version"] == champion
    assert attempt["verdict"]["outcome"] in {"pass", "fail", "inconclusive"}
    assert {"OK": code} == {
        "OK": {"pass": 0, "fail": 1, "inconclusive": 2}[attempt["verdict"]["outcome"]]
    }

    if "kind: answer" in cfg.read_text():  # tone as its own stage, judged like any version
        house = tmp / "house.txt"
        house.write_text("Happy to help! Call extension 4400.\nSure thing: see the portal.\n")
        code, styled = _cli(capsys, "gen", "style", "Warm and brief.", "--suite", "core",
                            "--house", str(house), "-c", c)
        assert code in (0, 1, 2) and styled["kind"] == "style"
        assert styled["baseline_version"] == champion
        assert styled["details"]["style_similarity_after"] is not None

    code, gate = _cli(capsys, "gen", "gate", "--suite", "core", "-c", c)
    assert code in (0, 1) and len(gate["conditions"]) == 5

    code, ingested = _cli(capsys, "ingest", "examples", str(train_file), "-c", c)
    assert code == 0 and ingested["added"] == 8

    code, tuned = _cli(
        capsys,
        "gen",
        "finetune",
        "--suite",
        "core",
        "--skip-gate",
        "--out",
        str(tmp / "adapter"),
        "-c",
        c,
    )
    assert code in (0, 1, 2), tuned
    assert tuned["champion"] == champion and tuned["candidate"] != champion
    assert tuned["n_examples"] == 8 and Path(tuned["adapter"]).is_file()
    assert tuned["loss_last"] < tuned["loss_first"]  # the adapter learned something
    outcome = tuned["verdict"]["outcome"]

    code = main(["promote", tuned["candidate"], "-c", c])
    store = Store(load_workflow(cfg).resolved_store_url(cfg.parent))
    reg = Registry(store)
    if outcome == VerdictOutcome.PASS.value:
        assert code == 0 and reg.champion() == tuned["candidate"]
    else:
        assert code != 0 and reg.champion() == champion  # refused: the verdict did not pass
    attempts = store.attempts()
    assert {a.kind for a in attempts} >= {AttemptKind.FINETUNE}
    cand = store.get_model_version(tuned["candidate"])
    assert cand.kind is ModelKind.GENERATOR and cand.parent == champion

    code, ingested = _cli(capsys, "ingest", "outputs", str(log_file), "-c", c)
    assert code == 0 and ingested["added"] == 4
    code, mon = _cli(capsys, "monitor", "--no-support-check", "-c", c)
    assert code in (0, 1)
    months = {m["month"]: m for m in mon["months"]}
    assert set(months) == {"2026-05", "2026-06"}
    return {"triage": tri, "attempt": attempt, "finetune": tuned, "monitor": mon}


def _log_rows(champion_free_version: str, kind: str) -> list[dict[str, Any]]:
    rows = []
    for i, (when, escalated) in enumerate(
        [
            ("2026-05-04T10:00:00", False),
            ("2026-05-20T10:00:00", True),
            ("2026-06-03T10:00:00", False),
            ("2026-06-17T10:00:00", True),
        ]
    ):
        row: dict[str, Any] = {
            "id": f"log-{i}",
            "question": f"question {i}",
            "asked_at": when,
            "escalated": escalated,
            "model_version": champion_free_version,
        }
        if kind == "answer":
            row |= {
                "answer": "Call extension 4400.",
                "cited": [{"id": "mfa-reset", "version": "v1"}],
            }
        else:
            row |= {"tool_call": {"name": "unlock_account", "arguments": {"user": "x"}}}
        rows.append(row)
    return rows


def test_answer_workflow_whole_loop(
    tmp_path: Path, llm_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, llm_server, "answer")
    kb = _jsonl(
        tmp_path / "kb.jsonl",
        [
            {"id": d, "version": v, "effective_from": f, "title": t, "text": x}
            for d, v, f, t, x in KB
        ],
    )
    code, ingested = _cli(capsys, "kb", "ingest", str(kb), "-c", str(cfg))
    assert code == 0 and ingested["versions_added"] == len(KB)
    suite = _jsonl(
        tmp_path / "suite.jsonl",
        [
            {
                "id": i,
                "input": q,
                "reference": r,
                "gold_documents": g,
                "answerable": r is not None,
                "asked_at": "2026-05-01T09:00:00Z",
            }
            for i, q, r, g in ANSWER_SUITE
        ],
    )
    train = _jsonl(
        tmp_path / "train.jsonl",
        [
            {
                "id": i,
                "input": q,
                "reference": r,
                "gold_documents": g,
                "answerable": r is not None,
                "asked_at": "2026-05-01T09:00:00Z",
                "review_status": "reviewed",
                "reviewer": "ana",
            }
            for i, q, r, g in ANSWER_TRAIN
        ],
    )
    log = _jsonl(tmp_path / "log.jsonl", _log_rows("gen-prod", "answer"))
    found = _loop(tmp_path, cfg, capsys, suite, train, log)
    assert found["finetune"]["metrics_after"]["n"] == found["finetune"]["metrics_before"]["n"]


def test_tool_call_workflow_whole_loop(
    tmp_path: Path, llm_server: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = _config(tmp_path, llm_server, "tool_call")
    suite = _jsonl(
        tmp_path / "suite.jsonl",
        [{"id": i, "input": q, "expected_tool": t} for i, q, t in TOOL_SUITE],
    )
    train = _jsonl(
        tmp_path / "train.jsonl",
        [
            {
                "id": i,
                "input": q,
                "expected_tool": t,
                "review_status": "reviewed",
                "reviewer": "ana",
            }
            for i, q, t in TOOL_TRAIN
        ],
    )
    log = _jsonl(tmp_path / "log.jsonl", _log_rows("gen-prod", "tool_call"))
    found = _loop(tmp_path, cfg, capsys, suite, train, log)
    rules = {r["rule"] for r in found["finetune"]["verdict"]["rules"]}
    assert "tool_call_accuracy" in rules
