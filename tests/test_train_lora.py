"""LoRA fine-tuning on a tiny random BERT: artifact, exact reload, resume after kill,
calibration, seeds. Real-weight checks are marked slow."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.lora import CHECKPOINT_DIR
from tunegate.lora.artifact import read_manifest
from tunegate.models import LoraClassifier
from tunegate.train import (
    apply_temperature,
    expected_calibration_error,
    finetune,
    finetune_seeds,
    fit_temperature,
    split_examples,
)

TESTS = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny-bert")


@pytest.fixture
def wf(workflow: Workflow) -> Workflow:
    training = workflow.training.model_copy(
        update={"learning_rate": 5e-3, "patience": 10, "batch_size": 16}
    )
    return workflow.model_copy(update={"training": training, "data_targets": []})


def test_split_is_stratified_seeded_and_keeps_a_train_row_per_class() -> None:
    labels = ["a"] * 20 + ["b"] * 10 + ["c"] * 1
    s = split_examples(labels, validation_fraction=0.2, calibration_fraction=0.2, seed=0)
    assert sorted(s.train + s.validation + s.calibration) == list(range(31))
    assert sum(labels[i] == "a" for i in s.validation) == 4
    assert any(labels[i] == "c" for i in s.train)
    again = split_examples(labels, validation_fraction=0.2, calibration_fraction=0.2, seed=0)
    assert again == s


def test_temperature_fit_recovers_a_known_temperature() -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, size=(4000, 5))
    p = apply_temperature(true_logits, 1.0)
    y = np.array([rng.choice(5, p=row) for row in p])
    assert fit_temperature(true_logits * 3.0, y) == pytest.approx(3.0, rel=0.1)
    assert fit_temperature(true_logits / 2.0, y) == pytest.approx(0.5, rel=0.1)


def test_artifact_reloads_exactly_and_records_provenance(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    data = toy_examples(12)
    out = finetune(data, wf, tmp_path / "a", seed=1, base_model=tiny, epochs=2)
    m = read_manifest(out)
    assert m.labels == wf.label_names and m.seed == 1 and m.base_model == tiny
    assert len(m.base_model_hash) == 64 and len(m.dataset_hash) == 64
    assert m.config["lora_r"] == wf.training.lora_r and "classifier" in m.config["modules_to_save"]
    assert {"torch", "transformers", "peft"} <= set(m.library_versions)
    assert m.metrics["epochs_run"] == 2 and "val_macro_f1" in m.metrics
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert not (out / CHECKPOINT_DIR).exists()
    texts = [e.text for e in data[:10]]
    first = LoraClassifier.load(out).logits(texts)
    second = LoraClassifier.load(out).logits(texts)
    assert first.tobytes() == second.tobytes()
    # same inputs, same seed -> same artifact is returned as is; a different seed refuses
    assert finetune(data, wf, out, seed=1, base_model=tiny, epochs=2) == out
    with pytest.raises(InputError, match="already holds a different artifact"):
        finetune(data, wf, out, seed=2, base_model=tiny, epochs=2)


def test_training_is_deterministic_for_a_seed(tiny: str, wf: Workflow, tmp_path: Path) -> None:
    data = toy_examples(10)
    a = finetune(data, wf, tmp_path / "a", seed=4, base_model=tiny, epochs=2)
    b = finetune(data, wf, tmp_path / "b", seed=4, base_model=tiny, epochs=2)
    texts = [e.text for e in data]
    assert (
        LoraClassifier.load(a).logits(texts).tobytes()
        == LoraClassifier.load(b).logits(texts).tobytes()
    )


def test_micro_batches_bound_the_padded_size() -> None:
    from tunegate.lora.batching import micro_batches

    lengths = np.array([128] * 16 + [40] * 16 + [100] * 5)
    wide, short, odd = list(range(16)), list(range(16, 32)), list(range(32, 37))
    assert micro_batches(wide, lengths, 128, None) == [wide]  # null: never split
    assert micro_batches(short, lengths, 128, 1024) == [short]  # 16 x 40 fits
    parts = micro_batches(wide, lengths, 128, 1024)  # 16 x 128 = 2048 tokens
    assert parts == [wide[:8], wide[8:]]
    assert micro_batches(wide, lengths, 128, 100) == [[i] for i in wide]  # never below a row
    parts = micro_batches(odd, lengths, 128, 300)  # width 128: 5 x 128 = 640 -> 3 parts
    assert [len(p) for p in parts] == [2, 2, 1]
    assert [i for p in parts for i in p] == odd
    # every size and width: the bound holds and rows are kept in order
    for n in range(1, 40):
        for width in (8, 40, 64, 96, 128, 152, 192, 256):
            rows = list(range(n))
            for cap in (100, 1024, 1536):
                parts = micro_batches(rows, np.full(n, width), 512, cap)
                assert [i for p in parts for i in p] == rows
                assert all(len(p) * width <= cap or len(p) == 1 for p in parts), (n, width, cap)


def test_micro_batches_take_the_same_optimizer_steps(
    workflow: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without dropout, training in micro-batches gives the adapter of whole batches: the
    parts' losses are weighted by their share of the rows (unequal parts are checked)."""
    from tunegate.lora import loop as _lora

    enc = make_tiny_encoder(tmp_path / "enc", dropout=0.0)
    data = toy_examples(12)
    sizes: list[list[int]] = []
    real = _lora.micro_batches

    def spy(*args: Any) -> list[list[int]]:
        parts = real(*args)
        sizes.append([len(p) for p in parts])
        return parts

    monkeypatch.setattr(_lora, "micro_batches", spy)
    outs = {}
    for name, max_tokens in (("whole", None), ("parts", 40)):
        training = workflow.training.model_copy(
            update={
                "learning_rate": 5e-3,
                "batch_size": 7,
                "lora_dropout": 0.0,
                "max_batch_tokens": max_tokens,
            }
        )
        wf = workflow.model_copy(update={"training": training, "data_targets": []})
        sizes.clear()
        outs[name] = finetune(data, wf, tmp_path / name, seed=1, base_model=enc, epochs=2)
    assert any(len(set(s)) > 1 for s in sizes), sizes  # split, into unequal parts
    for out in outs.values():  # both trained past the warm-started probe (epoch 0)
        assert read_manifest(out).metrics["best_epoch"] >= 1
    texts = [e.text for e in data]
    whole = LoraClassifier.load(outs["whole"], backend="torch").logits(texts)
    parts = LoraClassifier.load(outs["parts"], backend="torch").logits(texts)
    assert np.abs(whole).max() > 0.1
    np.testing.assert_allclose(parts, whole, atol=1e-4)


_CHILD = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    from _tiny_models import toy_examples
    from tunegate.config import parse_workflow
    from tunegate.train import finetune
    wf = parse_workflow(open({wf!r}).read())
    def hang(epoch):
        if epoch == 1:
            time.sleep(120)  # killed here, after the first checkpoint
    finetune(toy_examples(12), wf, {out!r}, seed=3, base_model={enc!r}, epochs=4,
             on_checkpoint=hang)
""")


def test_resume_after_sigkill_matches_an_uninterrupted_run(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    wf_file = tmp_path / "wf.yaml"
    wf_file.write_text(wf.to_yaml(), encoding="utf-8")
    out = tmp_path / "killed"
    script = _CHILD.format(tests=str(TESTS), wf=str(wf_file), out=str(out), enc=tiny)
    env = {**os.environ, "TUNEGATE_PROGRESS": "0"}
    child = subprocess.Popen([sys.executable, "-c", script], env=env)
    ckpt = out / CHECKPOINT_DIR / "checkpoint.json"
    deadline = time.monotonic() + 120
    while not ckpt.exists() and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.1)
    assert ckpt.exists(), "the child never wrote its first checkpoint"
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not (out / "manifest.json").exists()

    resumed = finetune(toy_examples(12), wf, out, seed=3, base_model=tiny, epochs=4)
    straight = finetune(
        toy_examples(12), wf, tmp_path / "straight", seed=3, base_model=tiny, epochs=4
    )
    m_resumed, m_straight = read_manifest(resumed), read_manifest(straight)
    assert m_resumed.metrics["resumed_from_epoch"] == 1
    assert m_straight.metrics["resumed_from_epoch"] == 0
    assert [r["train_loss"] for r in m_resumed.metrics["history"]] == pytest.approx(
        [r["train_loss"] for r in m_straight.metrics["history"]], abs=1e-6
    )
    texts = [e.text for e in toy_examples(4, seed=99)]
    np.testing.assert_allclose(
        LoraClassifier.load(resumed).logits(texts),
        LoraClassifier.load(straight).logits(texts),
        atol=1e-5,
    )


def test_calibrated_ece_on_held_out_data_is_not_worse(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    train = toy_examples(40, seed=0)
    test = toy_examples(40, seed=123, prefix="test")
    out = finetune(
        train,
        wf,
        tmp_path / "cal",
        seed=0,
        base_model=tiny,
        epochs=8,
        parent_proba=lambda texts: np.full((len(texts), 8), 1 / 8),
    )
    m = read_manifest(out)
    assert m.temperature != 1.0 and "ece_parent" in m.metrics
    clf = LoraClassifier.load(out)
    texts = [e.text for e in test]
    y = np.array([wf.label_names.index(e.label) for e in test])
    logits = clf.logits(texts)
    raw = apply_temperature(logits, 1.0)
    calibrated = clf.predict_proba(texts)
    assert (raw.argmax(1) == calibrated.argmax(1)).all()  # scaling never changes a decision
    ece_raw = expected_calibration_error(y, raw)
    ece_cal = expected_calibration_error(y, calibrated)
    assert ece_cal <= ece_raw + 1e-9, (ece_raw, ece_cal)


def test_seed_sweep_reports_spread_and_picks_the_median(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    sweep = finetune_seeds(
        toy_examples(8), wf, tmp_path / "sweep", seeds=3, base_model=tiny, epochs=2
    )
    assert sweep.seeds == [0, 1, 2] and len(sweep.artifacts) == 3
    scores = [row["val_macro_f1"] for row in sweep.metrics]
    chosen = scores[sweep.seeds.index(sweep.chosen_seed)]
    assert sorted(scores)[1] == chosen
    assert sweep.spread["val_macro_f1"]["std"] == pytest.approx(np.std(scores, ddof=1))
    saved = json.loads((tmp_path / "sweep" / "seeds.json").read_text())
    assert saved["chosen_seed"] == sweep.chosen_seed


@pytest.mark.slow
def test_real_encoder_learns_and_is_calibrated(
    encoder_path: str, workflow: Workflow, tmp_path: Path
) -> None:
    wf = workflow.model_copy(update={"data_targets": []})
    train = toy_examples(44)[:350]
    # wall time is measured by bench/bench_train.py, not asserted here (shared CPUs)
    out = finetune(train, wf, tmp_path / "real", seed=0, base_model=encoder_path, epochs=3)
    m = read_manifest(out)
    assert m.metrics["ece_calibrated"] <= m.metrics["ece_uncalibrated"] + 1e-9
    clf = LoraClassifier.load(out)
    test = toy_examples(10, seed=77, prefix="t")
    proba = clf.predict_proba([e.text for e in test])
    acc = float(
        np.mean([wf.label_names[i] == e.label for i, e in zip(proba.argmax(1), test, strict=True)])
    )
    assert acc >= 0.8


def test_a_fine_tune_fits_its_own_routing_threshold(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    """With ``routing.target_clarify_rate`` the version's threshold is fitted on its calibrated
    held-out probabilities, recorded in the manifest, registered with the version, and used
    by the classifier; without a target the workflow's global threshold stays in charge."""
    from tunegate.store import Store
    from tunegate.train import register_adapter

    routing = wf.routing.model_copy(update={"target_clarify_rate": 0.25})
    fitted_wf = wf.model_copy(update={"routing": routing})
    data = toy_examples(12)
    out = finetune(data, fitted_wf, tmp_path / "a", seed=1, base_model=tiny, epochs=2)
    m = read_manifest(out)
    threshold = m.metrics["clarify_threshold"]
    fit = m.metrics["routing_fit"]
    assert fit["target"] == "clarify_rate" and fit["target_value"] == 0.25
    assert fit["clarify_rate"] <= 0.25 and fit["n"] > 0 and 0.0 <= threshold <= 1.0
    clf = LoraClassifier.load(out)
    assert clf.clarify_threshold == threshold
    store = Store("sqlite://")
    mv = register_adapter(store, out)
    assert mv.clarify_threshold == threshold and mv.routing_fit == fit
    assert store.get_model_version(mv.id).clarify_threshold == threshold

    plain = finetune(data, wf, tmp_path / "b", seed=1, base_model=tiny, epochs=2)
    assert "clarify_threshold" not in read_manifest(plain).metrics
    assert LoraClassifier.load(plain).clarify_threshold is None
# -- checkpoints: safetensors + JSON, nothing unpickled --------------------------------------


class _Planted:
    """Unpickling this would create the file ``marker``: the attack a pickle checkpoint allows."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (Path(self.marker),))


def test_a_pickle_checkpoint_is_refused_and_never_unpickled(
    tiny: str, wf: Workflow, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    out = tmp_path / "planted"
    legacy = out / CHECKPOINT_DIR / "checkpoint.pt"
    legacy.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    torch.save({"fingerprint": "x", "payload": _Planted(str(marker))}, legacy)
    with pytest.raises(InputError, match=r"checkpoint\.pt is a checkpoint in the old pickle"):
        finetune(toy_examples(12), wf, out, seed=0, base_model=tiny, epochs=1)
    assert not marker.exists()


def test_checkpoint_round_trip_and_tampering(tmp_path: Path) -> None:
    import random

    torch = pytest.importorskip("torch")
    from tunegate.lora.state import (
        TrainingState,
        checkpoint_path,
        load_checkpoint,
        save_checkpoint,
        trainable_state,
    )

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1 + step))
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    state = TrainingState(best_state=trainable_state(model), epoch=1, best_score=0.5)
    state.history.append({"epoch": 1, "train_loss": 0.25, "stop": False})
    path = checkpoint_path(tmp_path)
    save_checkpoint(path, "fp", state, model, optimizer, scheduler)
    save_checkpoint(path, "fp", state, model, optimizer, scheduler)  # the second replaces it
    assert len(list(path.parent.glob("*.safetensors"))) == 1
    assert load_checkpoint(path, "other run") is None
    loaded = load_checkpoint(path, "fp")
    assert loaded is not None and loaded.state.history == state.history
    expected_next = (torch.rand(3), random.random(), float(np.random.rand()))
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=0.01)
    fresh_sched = torch.optim.lr_scheduler.LambdaLR(fresh_opt, lambda step: 1.0 / (1 + step))
    restored = loaded.restore(fresh, fresh_opt, fresh_sched)
    assert restored.epoch == 1 and restored.best_score == 0.5
    torch.testing.assert_close(fresh.weight, model.weight)
    assert fresh_opt.state_dict()["state"][0]["exp_avg"].equal(
        optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert fresh_sched.state_dict()["last_epoch"] == scheduler.state_dict()["last_epoch"]
    assert torch.equal(torch.rand(3), expected_next[0])  # the generators continue as saved
    assert (random.random(), float(np.random.rand())) == expected_next[1:]
    # tampering: a changed tensors file, then a JSON that names a file outside the folder
    [tensors] = path.parent.glob("*.safetensors")
    data = tensors.read_bytes()
    tensors.write_bytes(data[:-1] + bytes([data[-1] ^ 0xFF]))
    with pytest.raises(InputError, match="does not match the hash"):
        load_checkpoint(path, "fp")
    document = json.loads(path.read_text())
    path.write_text(json.dumps({**document, "tensors": "../../etc/passwd.safetensors"}))
    with pytest.raises(InputError, match="not a file of"):
        load_checkpoint(path, "fp")
    path.write_text("{not json")
    with pytest.raises(InputError, match="not readable JSON"):
        load_checkpoint(path, "fp")
