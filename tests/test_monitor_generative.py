"""Production monitoring of answer/tool_call workflows: ingestion of the production log
(idempotent, bad rows named by file:line and field), monthly figures against hand-computed
values on a knowledge base of 2 documents x 2 versions, and the weekly escalation trigger."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tunegate.cli import main
from tunegate.config import Workflow, parse_workflow
from tunegate.documents import GenerativeRunDocument, GenerativeSuiteDocument
from tunegate.errors import ConfigError
from tunegate.io import ingest_file, read_records, stored_generative_log
from tunegate.kb import KbDocument, KnowledgeBase
from tunegate.monitor import (
    WeekEscalation,
    generative_monthly_figures,
    generative_triggers,
    run_generative_monitor,
    weekly_escalation,
)
from tunegate.records import (
    ExampleScore,
    GenerativeOutput,
    GenerativeRun,
    GenerativeSuite,
    GenerativeSuiteExample,
)
from tunegate.store import Store

ANSWER = "name: kb\nkind: answer\n"
TOOLS = (
    "name: desk\nkind: tool_call\ntools:\n"
    "  - {name: reset_password, description: Reset a password, "
    "parameters: {type: object, properties: {user: {type: string}}}}\n"
)


def answer() -> Workflow:
    return parse_workflow(ANSWER)


def _write(path: Path, rows: Sequence[dict[str, Any] | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _row(i: str, asked: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": i,
        "model_version": "gen-v2",
        "question": f"question {i}?",
        "asked_at": asked,
        **fields,
    }


# -- ingestion ----------------------------------------------------------------------------


def test_ingest_outputs_is_idempotent_and_names_bad_rows(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    log = _write(
        tmp_path / "log.jsonl",
        [
            _row("o1", "2025-03-01T10:00:00", answer="Restart it.", escalated=True),
            # a generator's own output, the three log keys in its metadata
            {
                "id": "o2",
                "example_id": "q2",
                "model_version": "gen-v2",
                "kind": "answer",
                "answer": "See the VPN page.",
                "cited": [{"id": "vpn", "version": "v1"}],
                "metadata": {
                    "question": "How do I connect?",
                    "asked_at": "2025-03-02T09:00:00+01:00",
                    "escalated": False,
                    "channel": "chat",
                },
            },
            {"id": "o3", "model_version": "gen-v2", "asked_at": "2025-03-02"},  # no question
            _row("o4", "yesterday"),  # bad timestamp
            _row("o5", "2025-03-03", answr="typo"),  # unknown field
            _row("o6", "2025-03-03", kind="tool_call"),  # not this workflow's kind
            {"question": "q?", "asked_at": "2025-03-03"},  # no model_version
            "{not json",
        ],
    )
    report = ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path)
    assert (report.kind, report.rows, report.added, report.quarantined) == ("outputs", 8, 2, 6)
    reasons = {p.line: p.reason for p in report.problems}
    assert all(p.file == str(log) for p in report.problems)
    assert "missing field 'question'" in reasons[3]
    assert "asked_at" in reasons[4] and "yesterday" in reasons[4]
    assert reasons[5] == "unknown field 'answr'"
    assert reasons[6].startswith("kind: 'tool_call' does not match the workflow's kind 'answer'")
    assert reasons[7] == "missing field 'model_version'"
    assert reasons[8].startswith("malformed JSON")
    quarantined = [
        json.loads(x) for x in Path(report.quarantine_file or "").read_text().splitlines()
    ]
    assert [q["line"] for q in quarantined] == [3, 4, 5, 6, 7, 8]  # nothing dropped silently

    entries = {e.id: e for e in stored_generative_log(store)}
    assert sorted(entries) == ["o1", "o2"]
    o1, o2 = entries["o1"], entries["o2"]
    assert o1.escalated and o1.asked_at == datetime(2025, 3, 1, 10, tzinfo=UTC)
    assert o1.output.created_at == o1.asked_at and o1.output.example_id == "o1"
    assert o2.question == "How do I connect?" and not o2.escalated
    assert o2.asked_at == datetime(2025, 3, 2, 8, tzinfo=UTC)
    assert o2.output.metadata == {"channel": "chat"} and o2.output.cited[0].version == "v1"

    again = ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path)
    assert (again.added, again.existing, again.quarantined) == (0, 2, 6)
    changed = _write(tmp_path / "changed.jsonl", [_row("o1", "2025-03-01T10:00:00", answer="x")])
    clash = ingest_file(store, "outputs", changed, workflow=answer(), quarantine_dir=tmp_path)
    assert clash.added == 0
    assert clash.problems[0].reason == "id 'o1' is already in the store with different content"
    # a row without an id gets one from its content: ingesting it twice adds it once
    anon = _write(
        tmp_path / "anon.jsonl", [{k: v for k, v in _row("x", "2025-03-04").items() if k != "id"}]
    )
    first = ingest_file(store, "outputs", anon, workflow=answer(), quarantine_dir=tmp_path)
    second = ingest_file(store, "outputs", anon, workflow=answer(), quarantine_dir=tmp_path)
    assert (first.added, second.added, second.existing) == (1, 0, 1)
    store.close()


def test_outputs_are_refused_on_a_classify_workflow(tmp_path: Path) -> None:
    classify = parse_workflow("name: x\nlabels:\n  a: {description: A}\n  b: {description: B}\n")
    log = _write(tmp_path / "log.jsonl", [_row("o1", "2025-03-01")])
    with pytest.raises(
        ConfigError, match=r"ingesting outputs \(production logs\) works on answer or tool_call"
    ):
        read_records("outputs", log, workflow=classify)


def test_cli_ingest_outputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text(ANSWER + "store:\n  url: sqlite:///kb.db\n", encoding="utf-8")
    good = _write(tmp_path / "good.jsonl", [_row("o1", "2025-03-01", answer="Yes.")])
    assert main(["ingest", "outputs", str(good), "-c", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 1
    bad = _write(tmp_path / "bad.jsonl", [_row("o2", "2025-03-01", escalated="maybe")])
    assert main(["ingest", "outputs", str(bad), "-c", str(config)]) == 1
    assert f"{bad}:1: escalated" in capsys.readouterr().err


# -- monthly figures on a hand-built month ---------------------------------------------------


class SubstringChecker:
    """A claim is supported when a passage contains it (case-insensitive)."""

    def check(self, claims: Sequence[str], passages: Sequence[str]) -> list[bool]:
        return [any(c.lower() in p.lower() for p in passages) for c in claims]


def _kb(store: Store) -> KnowledgeBase:
    def doc(doc_id: str, version: str, text: str, start: str) -> KbDocument:
        return KbDocument(
            doc_id=doc_id, version=version, title=doc_id, text=text, effective_from=start
        )

    store.put_kb_versions(
        [
            doc("vpn", "v1", "The VPN gateway is vpn1.example.com.", "2025-01-01"),
            doc("vpn", "v2", "The VPN gateway is vpn2.example.com.", "2025-03-10"),
            doc("mfa", "m1", "MFA codes expire after 30 seconds.", "2025-01-01"),
            doc("mfa", "m2", "MFA codes expire after 60 seconds.", "2025-03-20"),
        ]
    )
    return KnowledgeBase(store)


def _cite(*refs: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [{"id": d, "version": v} for d, v in refs]


def _suite_and_runs(store: Store) -> GenerativeSuite:
    examples = [
        GenerativeSuiteExample(id=f"s{i}", kind="answer", input=f"new question {i}?", reference="x")
        for i in range(3)
    ]
    suite = GenerativeSuite(
        name="march-cases",
        kind="answer",
        examples=examples,
        created_at=datetime(2025, 3, 12, tzinfo=UTC),
    ).frozen()
    store.documents(GenerativeSuiteDocument).put(suite.hash, GenerativeSuiteDocument(suite=suite))
    return suite


def _run(suite: GenerativeSuite, version: str, correct: list[bool], day: int) -> GenerativeRun:
    outputs = [
        GenerativeOutput(example_id=e.id, model_version=version, kind="answer", answer="x")
        for e in suite.examples
    ]
    scores = [
        ExampleScore(example_id=e.id, kind="answer", correct=c)
        for e, c in zip(suite.examples, correct, strict=True)
    ]
    return GenerativeRun(
        model_version=version,
        suite_name=suite.name,
        suite_hash=suite.hash,
        kind="answer",
        outputs=outputs,
        scores=scores,
        created_at=datetime(2025, 3, day, tzinfo=UTC),
    )


def test_monthly_figures_by_hand(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    kb = _kb(store)
    rows = [
        # cites vpn v1, superseded on 03-10: lag 5 days; its claim is stale, not unsupported
        _row("e1", "2025-03-15", answer="The VPN gateway is vpn1.example.com.",
             cited=_cite(("vpn", "v1"))),
        # vpn v2 current (lag 0); mfa m1 superseded on 03-20 (lag 5); 2 claims, 1 unsupported
        _row("e2", "2025-03-25", answer="The VPN gateway is vpn2.example.com. Printers are free.",
             cited=_cite(("vpn", "v2"), ("mfa", "m1")), escalated=True),
        # mfa m1 still current on 03-05: lag 0, supported
        _row("e3", "2025-03-05", answer="MFA codes expire after 30 seconds.",
             cited=_cite(("mfa", "m1"))),
        # no citation: counts against the citation rate; its claim is unsupported
        _row("e4", "2025-03-06", answer="Just restart it.", escalated=True),
        # an abstention: left out of citation and support, counted for escalation
        _row("e5", "2025-03-07", abstained=True),
        # a citation without a version: not judged for freshness; the version in force
        # (v2) is the passage, which supports the claim
        _row("e6", "2025-03-28", answer="The VPN gateway is vpn2.example.com.",
             cited=_cite(("vpn", None))),
        # February: one answer, nothing cited
        _row("f1", "2025-02-10", answer="Just restart it."),
    ]  # fmt: skip
    log = _write(tmp_path / "log.jsonl", rows)
    assert ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path).ok
    suite = _suite_and_runs(store)

    months = generative_monthly_figures(store, answer(), kb=kb, checker=SubstringChecker())
    assert [m.month for m in months] == ["2025-02", "2025-03"]
    feb, mar = months
    assert mar.n_outputs == 6 and mar.n_answered == 5 and mar.n_citing == 4
    assert mar.citation_rate == pytest.approx(4 / 5)
    assert (mar.n_escalated, mar.escalation_rate) == (2, pytest.approx(2 / 6))
    # judged citations: e1 vpn/v1 (5 d), e2 vpn/v2 (0), e2 mfa/m1 (5 d), e3 mfa/m1 (0)
    assert (mar.n_citations, mar.n_citations_unjudged) == (4, 1)
    assert mar.freshness_lag_days == pytest.approx(2.5)
    assert mar.lagging_share == pytest.approx(0.5)
    # claims: e1 1 (stale), e2 2 (1 unsupported), e3 1, e4 1 (unsupported), e6 1
    assert (mar.n_claims, mar.n_unsupported, mar.n_stale) == (6, 2, 1)
    assert mar.unsupported_rate == pytest.approx(2 / 6)
    assert mar.kb_change_rate == pytest.approx(1.0)  # both documents got a new version
    assert feb.kb_change_rate == pytest.approx(0.0)
    assert (feb.citation_rate, feb.n_citations, feb.freshness_lag_days) == (0.0, 0, None)
    # no generative run in the store yet: said, not guessed
    assert mar.new_suites == ["march-cases"] and mar.new_cases_note == "no runs"
    assert mar.new_case_pass_rate is None and feb.new_cases_note == "no suite created this month"

    runs = store.documents(GenerativeRunDocument)
    for run in (
        _run(suite, "gen-v2", [False, False, False], 13),  # an older run of the champion
        _run(suite, "gen-v2", [True, True, False], 14),  # its latest: counts
        _run(suite, "gen-v1", [True, True, True], 15),  # another version: ignored
    ):
        runs.put(run.id, GenerativeRunDocument(run=run))
    mar = generative_monthly_figures(store, answer(), kb=kb, checker=SubstringChecker())[1]
    assert (mar.n_new_cases, mar.n_new_passed, mar.new_cases_note) == (3, 2, None)
    assert mar.new_case_pass_rate == pytest.approx(2 / 3)
    only = generative_monthly_figures(
        store, answer(), kb=kb, check_support=False, months=["2025-03"]
    )
    assert [m.month for m in only] == ["2025-03"] and only[0].unsupported_rate is None
    assert only[0].n_claims == 0 and only[0].citation_rate == pytest.approx(4 / 5)
    store.close()


# -- the rollback triggers -------------------------------------------------------------------


def _weeks(counts: Sequence[tuple[int, int]]) -> list[WeekEscalation]:
    return [WeekEscalation(f"2025-W{10 + i:02d}", n, x, x / n) for i, (x, n) in enumerate(counts)]


def _escalation(counts: Sequence[tuple[int, int]]) -> list[Any]:
    windows = generative_triggers([], _weeks(counts), answer(), reference=None)
    return [r for w in windows for r in w.results if r.trigger == "escalation_rising"]


def test_escalation_rising_two_consecutive_weeks() -> None:
    fired = _escalation([(5, 100), (15, 100), (30, 100)])
    assert [r.fired for r in fired] == [False, False, True]
    assert fired[-1].judged and fired[-1].p_value is not None and fired[-1].p_value < 0.001
    assert "rose for 2 consecutive weeks (5.0% -> 15.0% -> 30.0%" in fired[-1].message
    # one rise only: the third week falls back
    assert not any(r.fired for r in _escalation([(5, 100), (15, 100), (12, 100)]))
    # rising every week but by too little to be told from noise
    small = _escalation([(10, 100), (11, 100), (12, 100)])
    assert not small[-1].fired and small[-1].judged and "rose" in small[-1].message
    # a week under the minimum count (rollback.min_decisions = 50) is not judged
    few = _escalation([(1, 20), (5, 20), (15, 20)])
    assert not few[-1].judged and "fewer than 50 outputs" in few[-1].message


def test_weekly_escalation_keeps_empty_weeks(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    log = _write(
        tmp_path / "log.jsonl",
        [
            _row("a", "2025-03-03", escalated=True),  # Monday of 2025-W10
            _row("b", "2025-03-04"),
            _row("c", "2025-03-18"),  # 2025-W12; W11 has nothing
        ],
    )
    ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path)
    weeks = weekly_escalation(stored_generative_log(store))
    assert [(w.week, w.n_outputs, w.n_escalated) for w in weeks] == [
        ("2025-W10", 2, 1),
        ("2025-W11", 0, 0),
        ("2025-W12", 1, 0),
    ]
    assert weeks[0].escalation_rate == 0.5 and weeks[1].escalation_rate is None
    store.close()


def _month_rows(month: str, n: int, *, cited: int, unsupported: int) -> list[dict[str, Any]]:
    """``n`` answers of one claim each, asked in ``month``: ``cited`` of them cite the current
    vpn version; ``unsupported`` of the citing ones say something it does not support."""
    rows = []
    for i in range(n):
        row = _row(
            f"{month}-{i}", f"{month}-15T12:00:00", answer="The VPN gateway is vpn2.example.com."
        )
        if i < cited:
            row["cited"] = _cite(("vpn", "v2"))
            if i < unsupported:
                row["answer"] = "The VPN is down."
        rows.append(row)
    return rows


def test_monthly_triggers_against_the_reference_month(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    kb = _kb(store)
    rows = (
        _month_rows("2025-04", 200, cited=200, unsupported=4)  # 2% unsupported, all cite
        + _month_rows("2025-05", 200, cited=198, unsupported=8)  # +2.0 points: not "more"
        + _month_rows("2025-06", 200, cited=150, unsupported=40)  # +18 points, cites less
    )
    log = _write(tmp_path / "log.jsonl", rows)
    ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path)
    result = run_generative_monitor(store, answer(), kb=kb, checker=SubstringChecker())
    assert result.reference_month == "2025-04"
    by = {(w.window, r.trigger): r for w in result.windows for r in w.results}
    assert not by[("2025-05", "unsupported_rate")].fired
    assert not by[("2025-05", "citation_rate")].fired
    assert by[("2025-06", "unsupported_rate")].fired
    assert by[("2025-06", "citation_rate")].fired
    assert {r.trigger for r in result.fired} == {"unsupported_rate", "citation_rate"}
    store.close()


def test_cli_monitor_dispatches_on_a_tool_call_workflow(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "tunegate.yaml"
    config.write_text(TOOLS + "store:\n  url: sqlite:///desk.db\n", encoding="utf-8")
    start = datetime(2025, 3, 3, 9, tzinfo=UTC)  # Monday of 2025-W10
    rows = []
    for week, escalated in enumerate((5, 15, 30)):
        for i in range(100):
            rows.append(
                {
                    "id": f"w{week}-{i}",
                    "model_version": "desk-v1",
                    "question": "reset my password",
                    "asked_at": (start + timedelta(days=7 * week, minutes=i)).isoformat(),
                    "tool_call": {"name": "reset_password", "arguments": {"user": "ann"}},
                    "escalated": i < escalated,
                }
            )
    log = _write(tmp_path / "log.jsonl", rows)
    assert main(["ingest", "outputs", str(log), "-c", str(config)]) == 0
    capsys.readouterr()
    assert main(["monitor", "-c", str(config), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["kind"] == "tool_call" and payload["champion"] == "desk-v1"
    assert [m["n_outputs"] for m in payload["months"]] == [300]
    assert [w["n_escalated"] for w in payload["weeks"]] == [5, 15, 30]
    assert [(r["window"], r["trigger"]) for r in payload["fired"]] == [
        ("2025-W12", "escalation_rising")
    ]
    assert payload["alert"]["fired"][0]["trigger"] == "escalation_rising"
    assert main(["monitor", "-c", str(config)]) == 1
    shown = capsys.readouterr().out
    assert "escalation by week" in shown and "ALERT" in shown
    assert main(["monitor", "-c", str(config), "--report", str(tmp_path / "r")]) == 2
    assert "--report apply to classify workflows" in capsys.readouterr().err


@pytest.mark.slow
def test_default_support_checker_on_the_cited_version(tmp_path: Path) -> None:
    """Without a checker, the shipped MiniLM checker judges claims against the text of the
    cited version: the number the version does not assert is unsupported."""
    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    _kb(store)
    answer_text = "MFA codes expire after 30 seconds. MFA codes expire after 90 seconds."
    log = _write(
        tmp_path / "log.jsonl",
        [_row("a", "2025-03-02", answer=answer_text, cited=_cite(("mfa", "m1")))],
    )
    ingest_file(store, "outputs", log, workflow=answer(), quarantine_dir=tmp_path)
    (march,) = generative_monthly_figures(store, answer())
    assert (march.n_claims, march.n_unsupported, march.n_stale) == (2, 1, 0)
    store.close()
