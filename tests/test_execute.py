"""Executors: the local and the Ray executor give identical predictions, metrics, decisions
and verdicts (one local Ray cluster for the whole session, 2 CPUs, always shut down)."""

from __future__ import annotations

import os
import pickle
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest
from tests._tiny_models import toy_examples
from tests.conftest import ROOT, need

from tunegate.config import Workflow, parse_workflow
from tunegate.errors import ConfigError, InputError, MissingExtraError
from tunegate.execute import (
    Executor,
    ExecutorError,
    LocalExecutor,
    ModelRecipe,
    RayExecutor,
    attach_recipe,
    chunk,
    get_executor,
    predict_proba,
    recipe_for,
)
from tunegate.records import EvalSuite, SuiteExample, SuiteSlice, Ticket

# -- without Ray -------------------------------------------------------------------------------


class Echo:
    """Picklable toy classifier: probability mass on the text length's parity."""

    labels: ClassVar[list[str]] = ["even", "odd"]
    version = "echo-1"

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        odd = np.array([len(t) % 2 for t in texts], dtype=np.float64)
        return np.stack([1.0 - 0.8 * odd - 0.1, 0.8 * odd + 0.1], axis=1)


class Flat(Echo):
    """Uniform probabilities over ``labels`` (picklable)."""

    def __init__(self, labels: Sequence[str]) -> None:
        self.labels = list(labels)

    def predict_proba(self, texts: Sequence[str], metadata: Any = None) -> np.ndarray:
        return np.full((len(texts), len(self.labels)), 1.0 / len(self.labels))


class Locked(Flat):
    """Holds a lock, so it does not pickle (like an encoder with a session)."""

    def __init__(self, labels: Sequence[str] = ("even", "odd")) -> None:
        super().__init__(labels)
        self.lock = threading.Lock()


def _tag(clf: Any, batch: list[str]) -> list[str]:
    return [f"{clf.version}:{t}" for t in batch]


def test_chunk_cuts_consecutive_batches() -> None:
    assert chunk(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]
    assert chunk([], 4) == []
    with pytest.raises(ValueError, match="batch size"):
        chunk([1], 0)


def test_local_executor_keeps_order_and_times_batches() -> None:
    ex = LocalExecutor()
    assert isinstance(ex, Executor) and ex.name == "local" and ex.workers == 1
    assert list(ex.map_batches(Echo(), _tag, [["a"], ["b", "c"]])) == [
        ["echo-1:a"],
        ["echo-1:b", "echo-1:c"],
    ]
    assert ex.map(abs, [-2, 3]) == [2, 3]
    texts = ["a", "bb", "ccc", "dddd", "e"]
    scored = predict_proba(ex, Echo(), texts, batch_size=2)
    assert np.array_equal(scored.proba, Echo().predict_proba(texts))
    assert scored.batch_sizes == [2, 2, 1] and len(scored.batch_ms) == 3
    assert len(scored.latency_per_example()) == 5
    empty = predict_proba(ex, Echo(), [], batch_size=2)
    assert empty.proba.shape == (0, 2)
    with pytest.raises(ValueError, match="metadata rows"):
        predict_proba(ex, Echo(), ["a"], [{}, {}], batch_size=2)


def test_recipes(workflow: Workflow) -> None:
    from tunegate.diagnose import RulesFirstClassifier
    from tunegate.models import build_classifier

    rules = build_classifier("rules", workflow)
    assert recipe_for(rules)().version == rules.version
    # a picklable model travels as itself; an attached recipe wins over everything
    assert recipe_for(Echo())().version == "echo-1"
    locked = Locked()
    with pytest.raises(ExecutorError, match="--executor local"):
        recipe_for(locked)
    attach_recipe(locked, ModelRecipe(Flat, (["even", "odd"],)))
    assert isinstance(recipe_for(locked)(), Flat)
    labels = workflow.label_names
    model = attach_recipe(Locked(labels), ModelRecipe(Flat, (labels,)))
    both = RulesFirstClassifier(rules, model)
    rebuilt = pickle.loads(pickle.dumps(recipe_for(both)))()
    assert rebuilt.version == both.version
    texts = ["printer jam on floor 3", "my account is locked after 5 attempts"]
    assert np.array_equal(rebuilt.predict_proba(texts), both.predict_proba(texts))


def test_get_executor_reads_the_setting(workflow: Workflow, tmp_path: Path) -> None:
    assert get_executor().name == "local"
    assert get_executor(workflow).name == "local"
    ray_wf = workflow.model_copy(update={"executor": "ray", "ray_address": "auto"})
    ex = get_executor(ray_wf)
    assert isinstance(ex, RayExecutor) and ex.address == "auto"
    assert get_executor(ray_wf, name="local").name == "local"  # --executor wins
    assert get_executor("ray", base_dir=tmp_path).name == "ray"
    with pytest.raises(InputError, match="unknown executor 'spark'"):
        get_executor("spark")


def test_executor_setting_is_validated(workflow: Workflow) -> None:
    text = workflow.to_yaml()
    assert parse_workflow(text + "executor: ray\nray_workers: 2\n").ray_workers == 2
    with pytest.raises(ConfigError, match="executor"):
        parse_workflow(text + "executor: spark\n")
    with pytest.raises(ConfigError, match="ray_workers"):
        parse_workflow(text + "ray_workers: 0\n")


def test_missing_ray_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(MissingExtraError, match=r"pip install 'tunegate\[ray\]'"):
        list(RayExecutor().map_batches(Echo(), _tag, [["a"]]))


def test_long_temp_dir_falls_back_to_a_short_one(tmp_path: Path) -> None:
    long = tmp_path / ("x" * 60)
    assert len(str(RayExecutor(temp_dir=long).temp_dir)) <= 40


# -- on a local Ray cluster --------------------------------------------------------------------


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[None]:
    """One local Ray cluster (2 CPUs, no dashboard) for every Ray test; always shut down."""
    try:
        import ray
    except ImportError:
        need(False, "ray is not installed (pip install 'tunegate[ray]')")
        raise
    temp = tempfile.mkdtemp(prefix="tgray")  # short: Ray's socket paths are limited
    # workers import the test doubles of this module by name, like any user code on Ray
    paths = [str(ROOT / "tests"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(p for p in paths if p)}},
    )
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def real(workflow_module: Workflow, encoder_path: str) -> Workflow:
    """The starter workflow on the shipped encoder (ONNX int8 when available: its output
    depends on the batch, so identical results need identical batches)."""
    return workflow_module


@pytest.fixture(scope="module")
def workflow_module() -> Workflow:
    from tunegate.config import starter_yaml

    wf = parse_workflow(starter_yaml())
    return wf.model_copy(update={"model": wf.model.model_copy(update={"batch_size": 16})})


def _texts() -> list[str]:
    return [e.text for e in toy_examples(6, seed=4)]


@pytest.mark.slow
def test_ray_map_batches_and_tasks_keep_order(ray_cluster: None) -> None:
    ex = RayExecutor(workers=2)
    batches = [[f"t{i}", f"u{i}"] for i in range(9)]
    assert list(ex.map_batches(Echo(), _tag, batches)) == [_tag(Echo(), b) for b in batches]
    assert ex.map(abs, [-3, 1, -2]) == [3, 1, 2]
    assert ex.workers == 2
    with pytest.raises(ExecutorError, match="--executor local"):
        list(ex.map_batches(Locked(), _tag, batches))
    ex.close()  # a cluster this executor did not start keeps running
    import ray

    assert ray.is_initialized()


@pytest.mark.slow
def test_ray_probabilities_identical_to_local(ray_cluster: None, real: Workflow) -> None:
    from tunegate.models import ZeroShotClassifier

    clf = ZeroShotClassifier(real)
    texts = _texts()
    local = predict_proba(LocalExecutor(), clf, texts, batch_size=16)
    remote = predict_proba(RayExecutor(workers=2), clf, texts, batch_size=16)
    assert np.array_equal(local.proba, remote.proba)
    assert remote.batch_sizes == local.batch_sizes and all(ms > 0 for ms in remote.batch_ms)


def _strip_latency(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_latency(v) for k, v in value.items() if "latency" not in k}
    return value


def _suite(workflow: Workflow) -> EvalSuite:
    rows = toy_examples(12, seed=1)
    slices = [SuiteSlice.CORE, SuiteSlice.EDGE, SuiteSlice.PRESERVATION]
    return EvalSuite(
        name="exec",
        examples=[
            SuiteExample(id=e.id, text=e.text, label=e.label, slice=slices[i % 3])
            for i, e in enumerate(rows)
        ],
    ).frozen()


@pytest.mark.slow
def test_eval_metrics_and_verdict_identical_to_local(ray_cluster: None, real: Workflow) -> None:
    from tunegate.evaluate import compare, run_eval
    from tunegate.models import ZeroShotClassifier

    wf = real.model_copy(
        update={"regression": real.regression.model_copy(update={"n_bootstrap": 200})}
    )
    suite = _suite(wf)
    base = ZeroShotClassifier(wf)
    cand = ZeroShotClassifier(wf, instructions="An IT service desk ticket about")
    ray_ex = RayExecutor(workers=2)
    runs = {}
    for name, ex in (("local", None), ("ray", ray_ex)):
        b = run_eval(base, suite, wf, executor=ex)
        c = run_eval(cand, suite, wf, executor=ex)
        runs[name] = (b, c, compare(b, c, suite, wf))
    (lb, lc, lv), (rb, rc, rv) = runs["local"], runs["ray"]
    for a, b in ((lb, rb), (lc, rc)):
        assert a.proba == b.proba and a.y_true == b.y_true and a.example_ids == b.example_ids
        assert _strip_latency(a.metrics) == _strip_latency(b.metrics)
        assert len(b.latency_ms) == len(a.latency_ms) and all(v > 0 for v in b.latency_ms)
    assert lv.outcome == rv.outcome
    assert [(r.rule, r.outcome, r.message) for r in lv.rules] == [
        (r.rule, r.outcome, r.message) for r in rv.rules
    ]


@pytest.mark.slow
def test_decisions_and_shadow_scores_identical_to_local(
    ray_cluster: None, real: Workflow, tmp_path: Path
) -> None:
    from tunegate.models import ZeroShotClassifier
    from tunegate.monitor import shadow_score
    from tunegate.serving import TicketClassifier
    from tunegate.store import Store

    when = datetime(2026, 3, 2, 9, tzinfo=UTC)
    tickets = [
        Ticket(id=f"t{i}", text=t, created_at=when + timedelta(minutes=i))
        for i, t in enumerate(_texts())
    ]
    batches = chunk(tickets, 10)
    decider = TicketClassifier(real, ZeroShotClassifier(real))
    local = [d for b in decider.decide_batches(batches) for d in b]
    remote = [d for b in decider.decide_batches(batches, RayExecutor(workers=2)) for d in b]

    def key(d: Any) -> tuple[Any, ...]:
        return (d.ticket_id, d.label, d.probabilities, d.h_norm, d.route, d.model_version)

    assert [key(d) for d in local] == [key(d) for d in remote]

    clf = ZeroShotClassifier(real)
    shadows = []
    for name, ex in (("l", None), ("r", RayExecutor(workers=2))):
        store = Store(f"sqlite:///{tmp_path / name}.db")
        store.add_tickets(tickets)
        shadows.append(shadow_score(clf, tickets, store, workflow=real, executor=ex))
    assert [key(d) for d in shadows[0]] == [key(d) for d in shadows[1]]


@pytest.mark.slow
def test_cli_classify_with_ray_matches_local(
    ray_cluster: None, real: Workflow, tmp_path: Path
) -> None:
    import json

    from typer.testing import CliRunner

    from tunegate.cli import app

    config = tmp_path / "tunegate.yaml"
    config.write_text(real.to_yaml(), encoding="utf-8")
    source = tmp_path / "tickets.txt"
    source.write_text("\n".join(_texts()) + "\n", encoding="utf-8")
    labels = {}
    for name in ("local", "ray"):
        out = tmp_path / f"{name}.jsonl"
        result = CliRunner().invoke(
            app,
            [
                *("classify", str(source), "-c", str(config), "--no-store", "-m", "zero-shot"),
                *("--executor", name, "--out", str(out), "--batch", "8"),
            ],
        )
        assert result.exit_code == 0, result.output
        rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        labels[name] = [(r["label"], r["probabilities"], r["route"]) for r in rows]
    assert labels["local"] == labels["ray"] and len(labels["ray"]) == len(_texts())


@pytest.mark.slow
def test_attribution_identical_to_local(
    ray_cluster: None, workflow_module: Workflow, tmp_path: Path
) -> None:
    from tests._tiny_models import make_tiny_encoder

    from tunegate.diagnose import attribute_texts, scorer_for
    from tunegate.models import ZeroShotClassifier

    tiny = make_tiny_encoder(tmp_path / "enc")
    wf = workflow_module.model_copy(
        update={
            "model": workflow_module.model.model_copy(update={"encoder": tiny, "backend": "torch"})
        }
    )
    scorer = scorer_for(ZeroShotClassifier(wf), wf)
    rows = toy_examples(2, seed=2)[:11]
    texts = [e.text for e in rows]
    classes = [[e.label, "hardware"] if i % 2 else [e.label] for i, e in enumerate(rows)]
    for method in ("occlusion", "ig"):
        local = attribute_texts(scorer, texts, classes, method=method, n_steps=4)  # type: ignore[arg-type]
        remote = attribute_texts(
            scorer,
            texts,
            classes,
            method=method,
            n_steps=4,
            executor=RayExecutor(workers=2),  # type: ignore[arg-type]
        )
        assert [(a.words, a.scores) for a in local] == [(a.words, a.scores) for a in remote]


@pytest.mark.slow
def test_seed_sweep_as_ray_tasks(ray_cluster: None, workflow: Workflow, tmp_path: Path) -> None:
    from tests._tiny_models import make_tiny_encoder

    from tunegate.train import finetune_seeds

    tiny = make_tiny_encoder(tmp_path / "enc")
    training = workflow.training.model_copy(
        update={"learning_rate": 5e-3, "patience": 10, "batch_size": 16}
    )
    wf = workflow.model_copy(update={"training": training, "data_targets": []})
    sweeps = {
        name: finetune_seeds(
            toy_examples(8), wf, tmp_path / name, seeds=2, base_model=tiny, epochs=1, executor=ex
        )
        for name, ex in (("local", None), ("ray", RayExecutor(workers=2)))
    }
    local, remote = sweeps["local"], sweeps["ray"]
    assert remote.seeds == local.seeds and remote.chosen_seed == local.chosen_seed
    assert [p.parent.name for p in remote.artifacts] == ["ray", "ray"]
    assert all(p.is_absolute() and (p / "manifest.json").exists() for p in remote.artifacts)
    # one torch thread per task instead of the local process's two: equal up to rounding
    # (the training time aside)
    for a, b in zip(local.metrics, remote.metrics, strict=True):
        assert a.keys() == b.keys()
        differ = {
            k: (a[k], b[k])
            for k in a
            if "seconds" not in k and b[k] != pytest.approx(a[k], rel=1e-4, abs=1e-6)
        }
        assert not differ, differ
