"""tunegate.simulate: reproducibility, validity of every record, disjoint streams, the planted
MFA shift, analyst behaviour, no one-keyword classes, and the CLI. Fast: a keyword champion
stands in for the real model here; tests/test_simulate_slow.py runs the real zero-shot one."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tunegate.config import Workflow
from tunegate.documents import Simulation
from tunegate.errors import InputError
from tunegate.records import (
    Decision,
    Example,
    Override,
    ReasonCode,
    Route,
    SuiteExample,
    SuiteSlice,
    Ticket,
    normalize_text,
)
from tunegate.simulate import (
    FILES,
    LABELS,
    GroundTruth,
    SimConfig,
    SimTicket,
    _text,
    generate_all,
    generate_stream,
    is_night,
    make_decisions,
    simulate,
    simulate_analysts,
)
from tunegate.simulate._text import load_phrasing

SMALL = {
    "weeks": 5,
    "rollout_week": 2,
    "tickets_per_week": 60,
    "history_size": 120,
    "heldout_core": 20,
    "heldout_edge": 30,
    "heldout_preservation": 16,
}

_KEYWORDS = {
    "account_unlock": ["locked", "unlock", "lock"],
    "password_reset": ["password", "reset", "forgot"],
    "vpn_issue": ["vpn", "remote", "connect"],
    "security_incident": ["phishing", "hacked", "suspicious", "malware", "virus"],
    "hardware": ["screen", "printer", "laptop", "monitor", "keyboard"],
    "software_install": ["install", "licence", "update"],
    "access_request": ["access", "permission", "folder"],
    "email_issue": ["email", "outlook", "mailbox"],
}


class KeywordChampion:
    """A cheap deterministic stand-in with a pre-rollout blind spot: it knows no MFA words."""

    version = "keyword-test-1"

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        scores = np.zeros((len(texts), len(self.labels)))
        for i, text in enumerate(texts):
            low = text.lower()
            for j, label in enumerate(self.labels):
                scores[i, j] = sum(low.count(k) for k in _KEYWORDS.get(label, []))
        z = np.exp(2.0 * scores)
        return z / z.sum(axis=1, keepdims=True)


class OracleChampion:
    """Always right (reads the ground truth): isolates analyst behaviour on correct decisions."""

    version = "oracle"

    def __init__(self, labels: list[str], truth: dict[str, str], *, wrong: bool = False) -> None:
        self.labels = labels
        self.truth = truth
        self.wrong = wrong

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        out = np.full((len(texts), len(self.labels)), 0.01)
        for i, text in enumerate(texts):
            j = self.labels.index(self.truth[text])
            if self.wrong:
                j = (j + 1) % len(self.labels)
            out[i, j] = 1.0
        return out / out.sum(axis=1, keepdims=True)


@pytest.fixture
def champion(workflow: Workflow) -> KeywordChampion:
    return KeywordChampion(workflow.label_names)


def _run(tmp: Path, workflow: Workflow, champion: object, **overrides: object) -> Path:
    simulate(
        SimConfig(**{**SMALL, **overrides}),
        tmp,
        champion=champion,  # type: ignore[arg-type]
        workflow=workflow,
    )
    return tmp


def _read(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# -- reproducibility ---------------------------------------------------------------------------


def test_same_seed_and_config_give_byte_identical_files(
    tmp_path: Path, workflow: Workflow, champion: KeywordChampion
) -> None:
    a = _run(tmp_path / "a", workflow, champion)
    b = _run(tmp_path / "b", workflow, champion)
    for name in FILES.values():
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    c = _run(tmp_path / "c", workflow, champion, seed=8)
    assert (a / FILES["tickets"]).read_bytes() != (c / FILES["tickets"]).read_bytes()
    ids_a = {r["id"] for r in _read(a / FILES["tickets"])}
    ids_c = {r["id"] for r in _read(c / FILES["tickets"])}
    assert not ids_a & ids_c  # the seed is part of every id


# SHA-256 over (file name, bytes) of every output file, computed with the code from before the
# phrasing moved from Python into simulate/phrasing.yaml: the data file must change nothing.
_GOLDEN = [
    ({**SMALL}, "015388d105da2d6a5197a58b2e31782f8ef9cba764dca122f2082c461e8e3025"),
    ({**SMALL, "seed": 11}, "65fec5ab5439ea6091564ed4095dcee4e64a34afb1595605c60c7da833754f18"),
    (
        {"weeks": 12, "rollout_week": 6, "tickets_per_week": 250, "history_size": 1500},
        "4a58388d411cefc49bb5995674dad988b3d2c2494c2a08acf7432665c21b3cd6",
    ),
]


@pytest.mark.parametrize(("config", "digest"), _GOLDEN)
def test_simulation_output_matches_the_recorded_hash(
    tmp_path: Path,
    workflow: Workflow,
    champion: KeywordChampion,
    config: dict[str, int],
    digest: str,
) -> None:
    simulate(SimConfig(**config), tmp_path, champion=champion, workflow=workflow)  # type: ignore[arg-type]
    h = hashlib.sha256()
    for path in sorted(tmp_path.iterdir()):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    assert h.hexdigest() == digest


def test_phrasing_data_is_checked_on_load() -> None:
    text = (Path(_text.__file__).parent / "phrasing.yaml").read_text(encoding="utf-8")
    assert load_phrasing(text) == _text.PHRASING
    assert {k.label for k in _text.KINDS.values()} == set(LABELS)
    with pytest.raises(ValueError, match=r"slots without a pool: \['nowhere'\]"):
        load_phrasing(text.replace('"{system} says account', '"{nowhere} says account'))
    with pytest.raises(ValueError, match="repeats the name 'unlock'"):
        load_phrasing(text.replace('name: "reset"', 'name: "unlock"'))


def test_output_files_hold_valid_linked_records(
    tmp_path: Path, workflow: Workflow, champion: KeywordChampion
) -> None:
    out = _run(tmp_path, workflow, champion)
    tickets = [Ticket.model_validate(r) for r in _read(out / FILES["tickets"])]
    decisions = [Decision.model_validate(r) for r in _read(out / FILES["decisions"])]
    overrides = [Override.model_validate(r) for r in _read(out / FILES["overrides"])]
    confirmed = [Example.model_validate(r) for r in _read(out / FILES["confirmed_examples"])]
    history = [Example.model_validate(r) for r in _read(out / FILES["history_examples"])]
    evals = [SuiteExample.model_validate(r) for r in _read(out / FILES["eval_examples"])]
    truths = [GroundTruth.model_validate(r) for r in _read(out / FILES["ground_truth"])]

    ticket_ids = {t.id for t in tickets}
    assert [d.ticket_id for d in decisions] == [t.id for t in tickets]
    decision_ids = {d.id for d in decisions}
    assert len(decision_ids) == len(decisions)
    assert all(o.decision_id in decision_ids and o.ticket_id in ticket_ids for o in overrides)
    assert all(o.final_label != o.model_label for o in overrides)
    assert all(e.ticket_id in ticket_ids and e.review_status == "reviewed" for e in confirmed)
    assert len(history) == SMALL["history_size"]
    assert all(e.source == "historical" and e.review_status == "reviewed" for e in history)
    assert Counter(e.slice for e in evals) == {
        SuiteSlice.CORE: SMALL["heldout_core"],
        SuiteSlice.EDGE: SMALL["heldout_edge"],
        SuiteSlice.PRESERVATION: SMALL["heldout_preservation"],
    }
    assert len(truths) == len(tickets) + len(history) + len(evals)
    labels = set(workflow.label_names)
    assert {d.label for d in decisions} <= labels
    assert {o.final_label for o in overrides} <= labels
    assert {t.label for t in truths} <= labels
    for d in decisions:
        assert abs(sum(d.probabilities.values()) - 1.0) < 1e-5
        assert d.created_at >= next(t for t in tickets if t.id == d.ticket_id).created_at
    meta = json.loads((out / FILES["sim_config"]).read_text())
    assert SimConfig.model_validate(meta["config"]) == SimConfig(**SMALL)
    assert meta["champion_version"] == "keyword-test-1"


def test_decision_routes_follow_the_workflow_policy(
    workflow: Workflow, champion: KeywordChampion
) -> None:
    _, _, production = generate_all(SimConfig(**SMALL))
    decisions = make_decisions(champion, [s.ticket for s in production], workflow)
    for d in decisions:
        if d.label == "security_incident" and d.confidence >= 0.4:
            assert d.route == Route.ESCALATE
        elif d.h_norm > workflow.routing.clarify_threshold:
            assert d.route == Route.CLARIFY
        else:
            assert d.route == Route.AUTO
    assert {d.route for d in decisions} == set(Route)


# -- the generator -----------------------------------------------------------------------------


def _week_bounds(config: SimConfig, week: int) -> tuple[datetime, datetime]:
    start = datetime(
        config.start_date.year, config.start_date.month, config.start_date.day, tzinfo=UTC
    ) + timedelta(weeks=week)
    return start, start + timedelta(weeks=1)


def _check_streams(config: SimConfig, streams: list[list[SimTicket]]) -> None:
    ids: set[str] = set()
    texts: set[str] = set()
    for stream in streams:
        for s in stream:
            t = s.ticket
            assert t.id not in ids
            key = normalize_text(t.text)
            assert key not in texts
            ids.add(t.id)
            texts.add(key)
            assert t.text.strip()
            assert s.truth.label in LABELS and s.truth.ticket_id == t.id
            assert t.created_at.tzinfo is not None
            lo, hi = _week_bounds(config, s.truth.week)
            assert lo <= t.created_at < hi
            assert t.metadata["hour"] == t.created_at.hour
            assert t.metadata["shift"] == ("night" if is_night(t.created_at.hour) else "day")
            assert t.metadata["channel"] in {"email", "portal", "phone", "chat"}
            if s.truth.stream == "history":
                assert s.truth.week < 0
            if "mfa" in s.truth.tags and s.truth.stream == "production":
                assert s.truth.week >= config.rollout_week


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    weeks=st.integers(1, 5),
    rollout=st.integers(0, 6),
    per_week=st.integers(1, 40),
    history=st.integers(0, 60),
    night=st.floats(0.0, 0.5),
)
def test_generator_properties(
    seed: int, weeks: int, rollout: int, per_week: int, history: int, night: float
) -> None:
    config = SimConfig(
        seed=seed,
        weeks=weeks,
        rollout_week=rollout,
        tickets_per_week=per_week,
        history_size=history,
        night_share=night,
        heldout_core=8,
        heldout_edge=8,
        heldout_preservation=8,
    )
    history_s, heldout, production = generate_all(config)
    assert len(history_s) == history
    assert all(s.truth.stream == "heldout" and s.truth.slice is not None for s in heldout)
    assert all(s.truth.slice is None for s in [*history_s, *production])
    assert all(s.truth.week < rollout for s in heldout if s.truth.slice == "preservation")
    _check_streams(config, [history_s, heldout, production])
    # production tickets are in time order and every week has tickets
    times = [s.ticket.created_at for s in production]
    assert times == sorted(times)
    assert {s.truth.week for s in production} == set(range(weeks))


def test_generate_stream_replays_production_and_continues_disjointly() -> None:
    config = SimConfig(**SMALL)
    history, heldout, production = generate_all(config)
    replay = generate_stream(config, 0, config.weeks)
    assert [s.ticket for s in replay] == [s.ticket for s in production]
    later = generate_stream(config, config.weeks, config.weeks + 2)
    shifted = generate_stream(config, config.weeks, config.weeks + 2, shift="vpn_client")
    _check_streams(config, [history, heldout, production, later])
    _check_streams(config, [history, heldout, production, shifted])
    assert {s.truth.week for s in later} == {config.weeks, config.weeks + 1}
    assert not any(any(t.startswith("shift:") for t in s.truth.tags) for s in later)
    shift_tickets = [s for s in shifted if "shift:vpn_client" in s.truth.tags]
    assert shift_tickets and all(s.label == "vpn_issue" for s in shift_tickets)
    assert not {s.ticket.id for s in shifted} & {s.ticket.id for s in later}
    with pytest.raises(InputError, match="unknown shift 'nope'"):
        generate_stream(config, 0, 1, shift="nope")
    with pytest.raises(InputError, match="start_week <= end_week"):
        generate_stream(config, 3, 1)


def test_mfa_traffic_starts_at_the_rollout_and_grows() -> None:
    config = SimConfig(weeks=10, rollout_week=4, tickets_per_week=300, history_size=200)
    history, _, production = generate_all(config)
    assert not any("mfa" in s.truth.tags for s in history)
    by_week: Counter[tuple[int, str]] = Counter((s.truth.week, s.truth.kind) for s in production)
    assert all(
        by_week[(w, k)] == 0 for w in range(4) for k in ("mfa_security", "mfa_enrol", "mfa_vpn")
    )
    incidents = [by_week[(w, "mfa_security")] for w in range(4, 10)]
    assert incidents[-1] > 2 * incidents[0]
    assert all(by_week[(w, "mfa_enrol")] > 0 and by_week[(w, "mfa_vpn")] > 0 for w in range(4, 10))
    # "mentions MFA" alone does not decide the class
    mfa_labels = Counter(s.label for s in production if "mfa" in s.truth.tags)
    assert set(mfa_labels) == {"security_incident", "account_unlock", "vpn_issue"}


def test_night_shift_is_terser_with_a_different_mix() -> None:
    config = SimConfig(weeks=4, rollout_week=10, tickets_per_week=500, history_size=0)
    _, _, production = generate_all(config)
    day = [s for s in production if s.ticket.metadata["shift"] == "day"]
    night = [s for s in production if s.ticket.metadata["shift"] == "night"]
    assert 0.08 < len(night) / len(production) < 0.25
    assert np.median([len(s.ticket.text) for s in night]) < 0.75 * np.median(
        [len(s.ticket.text) for s in day]
    )
    share = {
        name: Counter(s.label for s in group)["vpn_issue"] / len(group)
        for name, group in (("day", day), ("night", night))
    }
    assert share["night"] > share["day"]


def test_history_label_noise_is_recorded_in_the_truth() -> None:
    config = SimConfig(weeks=1, tickets_per_week=1, history_size=2000, history_label_noise=0.05)
    history, _, _ = generate_all(config)
    noisy = [s for s in history if s.truth.recorded_label != s.truth.label]
    assert 0.03 < len(noisy) / len(history) < 0.07


# -- no class is separable by one keyword ------------------------------------------------------


def _tokens(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def test_keyword_baseline_stays_well_below_a_bag_of_words_model() -> None:
    sklearn = pytest.importorskip("sklearn")
    del sklearn
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    config = SimConfig(weeks=12, rollout_week=6, tickets_per_week=150, history_size=1500)
    history, heldout, production = generate_all(config)
    train = history + production[: len(production) // 2]
    test = production[len(production) // 2 :] + heldout
    y_train = [s.label for s in train]
    y_test = np.array([s.label for s in test])

    # best single keyword per class (by F1 on the training data); predict the first class whose
    # keyword occurs (classes in order of keyword precision), else the majority class
    words = CountVectorizer(binary=True, token_pattern=r"[a-z0-9']+", min_df=5)
    x = words.fit_transform([s.ticket.text for s in train]).tocsc()
    vocab = np.array(words.get_feature_names_out())
    df = np.asarray(x.sum(axis=0)).ravel()
    y_arr = np.array(y_train)
    best: dict[str, tuple[float, float, str]] = {}
    for label in LABELS:
        is_label = (y_arr == label).astype(float)
        tp = np.asarray(x.T @ is_label).ravel()
        f1 = 2 * tp / (df + is_label.sum())
        j = int(np.argmax(f1))
        best[label] = (float(f1[j]), float(tp[j] / df[j]), str(vocab[j]))
    assert max(f1 for f1, _, _ in best.values()) < 0.9, best
    order = sorted(LABELS, key=lambda lab: -best[lab][1])
    majority = Counter(y_train).most_common(1)[0][0]
    kw_pred = []
    for s in test:
        ts = _tokens(s.ticket.text)
        kw_pred.append(next((lab for lab in order if best[lab][2] in ts), majority))
    kw_acc = float(np.mean(np.array(kw_pred) == y_test))

    vec = CountVectorizer(ngram_range=(1, 2), min_df=2)
    model = LogisticRegression(max_iter=2000, C=5.0)
    model.fit(vec.fit_transform([s.ticket.text for s in train]), y_train)
    lr_acc = float(np.mean(model.predict(vec.transform([s.ticket.text for s in test])) == y_test))
    assert lr_acc > 0.8
    print(f"keyword baseline {kw_acc:.3f}, bag-of-words LR {lr_acc:.3f}, best: {best}")
    assert kw_acc < lr_acc - 0.2, (kw_acc, lr_acc)


# -- analysts ----------------------------------------------------------------------------------


def test_analysts_catch_most_wrong_decisions_less_at_night(workflow: Workflow) -> None:
    config = SimConfig(
        weeks=8,
        rollout_week=4,
        tickets_per_week=400,
        history_size=0,
        heldout_core=0,
        heldout_edge=0,
        heldout_preservation=0,
    )
    _, _, production = generate_all(config)
    truth = {s.ticket.text: s.label for s in production}
    wrong = OracleChampion(workflow.label_names, truth, wrong=True)
    decisions = make_decisions(wrong, [s.ticket for s in production], workflow)
    result = simulate_analysts(production, decisions, config, workflow)
    by_ticket = {s.ticket.id: s for s in production}
    caught = Counter(by_ticket[o.ticket_id].ticket.metadata["shift"] for o in result.overrides)
    total = Counter(s.ticket.metadata["shift"] for s in production)
    day_rate, night_rate = caught["day"] / total["day"], caught["night"] / total["night"]
    assert 0.8 < day_rate < 0.95
    assert 0.55 < night_rate < day_rate - 0.1
    assert len(result.missed) == len(production) - len(result.overrides)
    noise = [o for o in result.overrides if o.final_label != by_ticket[o.ticket_id].label]
    assert 0.01 < len(noise) / len(result.overrides) < 0.06  # a few percent wrong overrides
    for o in result.overrides:
        tags = by_ticket[o.ticket_id].truth.tags
        expected = (
            "R3" if "policy" in tags else "R1" if {"vague", "two_topic"} & set(tags) else "R2"
        )
        assert o.reason_code == ReasonCode(expected)
    assert (
        0.75
        < sum(o.review_status == "reviewed" for o in result.overrides) / len(result.overrides)
        < 0.95
    )
    assert not result.confirmations  # nothing was right


def test_analysts_confirm_correct_decisions_and_rarely_override_them(workflow: Workflow) -> None:
    config = SimConfig(
        weeks=8,
        rollout_week=4,
        tickets_per_week=400,
        history_size=0,
        heldout_core=0,
        heldout_edge=0,
        heldout_preservation=0,
    )
    _, _, production = generate_all(config)
    oracle = OracleChampion(workflow.label_names, {s.ticket.text: s.label for s in production})
    decisions = make_decisions(oracle, [s.ticket for s in production], workflow)
    result = simulate_analysts(production, decisions, config, workflow)
    assert len(result.overrides) / len(production) < 0.02
    assert all(o.reason_code == ReasonCode.R1 for o in result.overrides)
    assert result.confirmations
    by_id = {d.id: d for d in decisions}
    for e in result.confirmations:
        d = by_id[str(e.metadata["decision_id"])]
        assert e.label == d.label and e.ticket_id == d.ticket_id
    mfa_confirmed = sum("mfa_related" in e.slice_tags for e in result.confirmations)
    assert mfa_confirmed > 0.5 * sum("mfa" in s.truth.tags for s in production)


def test_r2_overrides_rise_after_rollout_under_a_blind_champion(
    tmp_path: Path, workflow: Workflow, champion: KeywordChampion
) -> None:
    result = simulate(
        SimConfig(
            weeks=10,
            rollout_week=5,
            tickets_per_week=200,
            history_size=0,
            heldout_core=0,
            heldout_edge=0,
            heldout_preservation=0,
        ),
        tmp_path,
        champion=champion,
        workflow=workflow,
    )
    r2 = [w["overrides"]["R2"] for w in result.summary["weekly"]]
    assert np.mean(r2[5:]) > 1.3 * np.mean(r2[:5])
    assert result.summary["error_rate_post_mfa"] > 1.5 * result.summary["error_rate_post_other"]


def test_simulate_rejects_a_workflow_without_the_scenario_labels(
    tmp_path: Path, workflow: Workflow
) -> None:
    labels = dict(workflow.labels)
    del labels["vpn_issue"]
    other = workflow.model_copy(update={"labels": labels})
    with pytest.raises(InputError, match="vpn_issue"):
        simulate(
            SimConfig(**SMALL),
            tmp_path,
            champion=KeywordChampion(other.label_names),
            workflow=other,
        )


def test_sim_config_validates_its_knobs() -> None:
    with pytest.raises(ValueError, match="Monday"):
        SimConfig(start_date=datetime(2025, 1, 7).date())
    with pytest.raises(ValueError, match="catch_rates"):
        SimConfig(catch_rates={"hardware": (1.5, 0.2)})
    with pytest.raises(ValueError):
        SimConfig(weeks=0)


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_simulate_writes_files_and_ingests(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    workflow: Workflow,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tunegate.cli import main
    from tunegate.simulate import _simulate

    monkeypatch.setattr(_simulate, "default_champion", lambda wf: KeywordChampion(wf.label_names))
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            "--weeks",
            "3",
            "--rollout-week",
            "1",
            "--seed",
            "3",
            "--tickets-per-week",
            "30",
            "--out",
            str(out),
            "--json",
            "-c",
            str(tmp_path / "missing.yaml"),
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert payload["counts"]["tickets"] == len(_read(out / FILES["tickets"]))
    assert len(payload["weekly_r2"]) == 3
    assert json.loads((out / FILES["sim_config"]).read_text())["config"]["seed"] == 3

    pytest.importorskip("tunegate.store")
    pytest.importorskip("tunegate.io")
    config = tmp_path / "tunegate.yaml"
    config.write_text(
        workflow.to_yaml().replace("sqlite:///tunegate.db", "sqlite:///t.db"), encoding="utf-8"
    )
    code = main(
        [
            "simulate",
            "--weeks",
            "3",
            "--rollout-week",
            "1",
            "--seed",
            "3",
            "--tickets-per-week",
            "30",
            "--out",
            str(out),
            "--ingest",
            "--json",
            "-c",
            str(config),
        ]
    )
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert all(r["quarantined"] == 0 for r in payload["ingested"])
    from tunegate.store import Store

    store = Store(f"sqlite:///{tmp_path / 't.db'}")
    assert len(store.tickets()) == payload["counts"]["tickets"]
    assert len(store.overrides()) == payload["counts"]["overrides"]
    assert len(store.examples()) == SimConfig().history_size + payload["counts"]["confirmations"]
    assert store.documents(Simulation).get("sim") is not None
