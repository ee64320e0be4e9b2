"""The LoRA method folder: its size, its import direction, its training state."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import Workflow

LORA = Path(__file__).resolve().parents[1] / "src" / "tunegate" / "lora"


def test_every_lora_module_is_short() -> None:
    modules = sorted(LORA.glob("*.py"))
    assert {p.stem for p in modules} >= {
        "config", "model", "batching", "state", "loop", "prefix", "memory", "artifact",
        "classifier",
    }  # fmt: skip
    long = {p.name: n for p in modules if (n := len(p.read_text().splitlines())) >= 400}
    assert not long, long


def test_models_reach_lora_only_lazily_and_never_train() -> None:
    code = (
        "import sys\n"
        "import tunegate.models as m\n"
        "assert 'tunegate.lora' not in sys.modules, 'models imported lora'\n"
        "assert 'tunegate.train' not in sys.modules, 'models imported train'\n"
        "import tunegate.lora as lora\n"
        "assert m.LoraClassifier is lora.LoraClassifier\n"
        "assert m.read_manifest is lora.read_manifest\n"
        "assert 'lora' in m.backends()\n"
        "assert 'tunegate.train' not in sys.modules, 'lora imported train'\n"
        "assert 'torch' not in sys.modules, 'torch imported eagerly'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_training_state_records_the_best_epoch_and_stops_on_patience() -> None:
    from tunegate.lora.state import Checkpoint, TrainingState

    class Model:
        def named_parameters(self) -> list[tuple[str, object]]:
            return []

    state = TrainingState(best_state={})
    rows = [{"epoch": e, "train_loss": 1.0 / e} for e in (1, 2, 3, 4)]
    for row, score in zip(rows, (0.5, 0.7, 0.6, 0.7), strict=True):
        state.record(row, score, Model(), patience=2)
    assert (state.epoch, state.best_epoch, state.best_score) == (4, 2, 0.7)
    assert [r["stop"] for r in state.history] == [False, False, False, True]
    assert state.stopped and state.bad_epochs == 2
    payload = Checkpoint("fp", state, {}, {}, {}, {}).payload()
    again = Checkpoint.from_payload(payload).state
    assert again.resumed_from == 4 and again.history == state.history
    assert again.best_score == 0.7 and TrainingState(best_state={}).best_score == -math.inf


def test_a_checkpoint_of_another_run_does_not_skip_the_warm_start(
    tmp_path: Path, workflow: Workflow
) -> None:
    """A stale checkpoint (other data or settings) is ignored: the new run warm-starts its
    head as a fresh run does (it used to skip the warm start whenever a file was there)."""
    from tunegate.lora.artifact import read_manifest
    from tunegate.train import finetune

    tiny = make_tiny_encoder(tmp_path / "enc")
    wf = workflow.model_copy(update={"data_targets": []})
    stale = tmp_path / "stale"
    ckpt = stale / ".checkpoint" / "checkpoint.json"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_text(json.dumps({"format": "tunegate-checkpoint/2", "fingerprint": "another run"}))
    out = finetune(toy_examples(12), wf, stale, seed=0, base_model=tiny, epochs=1)
    fresh = finetune(toy_examples(12), wf, tmp_path / "fresh", seed=0, base_model=tiny, epochs=1)
    assert read_manifest(out).metrics["warm_start"]["warm_start"] is True
    assert read_manifest(out).metrics["history"] == read_manifest(fresh).metrics["history"]
    assert not ckpt.exists()
