"""`tunegate demo --quick`: the whole loop runs, and its report renders in a real browser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from _browser import CHROMIUM_FLAGS
from tunegate.cli import main

EXPECTED_ROWS = [
    "overall accuracy",
    "security_incident FNR",
    "MFA-related FNR",
    "night-shift FNR",
    "capability-preservation accuracy",
    "ECE",
    "flip rate under label-preserving perturbations",
    "robust accuracy (perturbed core tickets)",
    "keyword-stuffing attack success rate",
    "standard deviation across seeds",
    "median latency (ms)",
]


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "run"
    code = main(["--quiet", "demo", "--quick", "--out", str(out)])
    assert code == 0
    return out


@pytest.mark.slow
def test_quick_demo_runs_the_whole_loop(demo_dir: Path) -> None:
    result = json.loads((demo_dir / "result.json").read_text(encoding="utf-8"))
    # the key table has every row, with numbers before and after
    rows = result["table"]
    assert [r["metric"] for r in rows] == EXPECTED_ROWS
    for r in rows:
        assert r["before"] is not None and r["after"] is not None, r
    # the diagnosis found the rising trend and a confirmed root cause
    assert result["trend"]["decision"]["passed"] is True
    assert any(f["confirmed"] for f in _findings(demo_dir))
    # three cheap fixes were tried, each with a verdict
    assert sorted(a["kind"] for a in result["attempts"]) == ["instructions", "retrieval", "rules"]
    assert all(a["outcome"] in {"pass", "fail", "inconclusive"} for a in result["attempts"])
    # the gate ran with five conditions and opened
    assert [c["number"] for c in result["gate"]["conditions"]] == [1, 2, 3, 4, 5]
    assert result["gate"]["open"] is True
    # the verdict passed (every rule, each shown with its evidence) and the candidate was
    # promoted: the registry's alias history shows the fine-tune as champion
    assert result["verdict"]["outcome"] == "pass", [
        (r["rule"], r["outcome"], r["message"]) for r in result["verdict"]["rules"]
    ]
    assert {r["rule"] for r in result["verdict"]["rules"]} >= {
        "core_improvement",
        "preservation",
        "ece",
        "latency_p50",
    }
    assert result["promoted"] is True
    # what was promoted follows from both comparisons: the fine-tune must beat the champion
    # and the best cheap fix; when the cheap fix is enough, the cheap fix goes live instead
    versus, promotion = result["versus_cheap_fix"], result["promotion"]
    fix = next((a for a in result["attempts"] if versus and a["id"] == versus["attempt"]), None)
    if versus is not None and versus["cheap_fix_enough"]:
        assert fix is not None and fix["outcome"] == "pass"
        assert promotion["choice"] == "cheap fix"
        assert result["promoted_version"] == fix["candidate_version"]
    else:
        assert promotion["choice"] == "fine-tune"
        assert result["promoted_version"] == result["candidate_version"]
    # the verdict's latency finding came from champion and candidate timed side by side, and
    # the candidate was compared with the best cheap fix
    assert result["latency"]["n_pairs"] > 0
    latency_rule = next(r for r in result["verdict"]["rules"] if r["rule"] == "latency_p50")
    assert "side by side" in latency_rule["message"]
    assert "versus_cheap_fix" in result
    # monitoring ran after the deployment on what was promoted: the quiet weeks fired
    # nothing; when the VPN-client rollout fired a rollback trigger, the previous champion is
    # back (the alias history says so), else the promoted version still serves
    assert result["monitor"]["periods"]
    assert not result["monitor"]["alert"], result["monitor"]["alert"]
    history = _champions(demo_dir)
    assert history[:2] == [result["champion_version"], result["promoted_version"]]
    alert = result["shift"]["alert"]
    if alert and alert["rollback"]:
        assert history[2:] == [result["champion_version"]]
        assert result["shift"]["champion_after"] == result["champion_version"]
    else:
        assert history[2:] == []
        assert result["shift"]["champion_after"] == result["promoted_version"]
    assert result["next_gap"]["headline"]
    # champion and candidate were served at the quick demo's precision (int8; the full
    # demo's is float32, docs/demo.md)
    from tunegate.config import load_workflow

    assert load_workflow(demo_dir / "tunegate.yaml").model.precision == "int8"
    # the reports exist
    assert (demo_dir / "report.html").stat().st_size > 10_000
    assert "| metric | before | after | difference (95% CI) |" in (
        demo_dir / "summary.md"
    ).read_text(encoding="utf-8")


def _champions(demo_dir: Path) -> list[str]:
    """Versions the champion alias pointed at, oldest first (from the demo's store)."""
    from tunegate.store import Store

    store = Store(f"sqlite:///{demo_dir / 'demo.db'}")
    return [e.version_id for e in store.alias_history("champion")]


def _findings(demo_dir: Path) -> list[dict[str, object]]:
    result = json.loads((demo_dir / "result.json").read_text(encoding="utf-8"))
    findings: list[dict[str, object]] = result["findings"]
    return findings


@pytest.mark.slow
@pytest.mark.browser
def test_report_renders_in_headless_chromium(demo_dir: Path, chromium_path: str) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    errors: list[str] = []
    requests: list[str] = []
    shots = Path(__file__).resolve().parent / "artifacts"
    shots.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            args=CHROMIUM_FLAGS,
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto((demo_dir / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert "tunegate demo" in page.title()
        headings = page.locator("h2").all_inner_texts()
        for expected in (
            "Before and after",
            "Override trend",
            "Error triage",
            "Attribution",
            "Cheap fixes",
            "gate",
            "monitoring",
            "next gap",
        ):
            assert any(expected.lower() in h.lower() for h in headings), (expected, headings)
        assert page.locator("svg").count() >= 4
        page.screenshot(path=str(shots / "demo_report.png"), full_page=True)
        browser.close()
    assert errors == []
    # self-contained: nothing but the file itself was requested
    assert all(u.startswith("file://") or u.startswith("data:") for u in requests), requests


def test_demo_precision_is_validated(capsys: pytest.CaptureFixture[str]) -> None:
    from tunegate.demo import DemoConfig
    from tunegate.demo._pipeline import demo_workflow
    from tunegate.errors import TunegateError

    with pytest.raises(TunegateError, match="precision must be int8 or fp32"):
        DemoConfig(precision="fp16")  # type: ignore[arg-type]
    assert demo_workflow(DemoConfig()).model.precision == "fp32"
    assert demo_workflow(DemoConfig(quick=True)).model.precision == "int8"
    assert demo_workflow(DemoConfig(precision="int8")).model.precision == "int8"
    assert demo_workflow(DemoConfig(quick=True, precision="fp32")).model.precision == "fp32"
    assert main(["demo", "--precision", "fp16", "--out", "unused"]) == 2
    assert "int8 or fp32" in capsys.readouterr().err
