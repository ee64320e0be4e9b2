"""Frozen-prefix caching: adapters only above ``training.frozen_layers``, the prefix replayed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _tiny_models import make_tiny_encoder, toy_examples
from tunegate.config import Workflow
from tunegate.errors import InputError
from tunegate.lora.data import tokenize as _tokenize
from tunegate.lora.model import frozen_layers
from tunegate.lora.model import predict_logits as _predict_logits
from tunegate.lora.model import training_model as _lora_model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_encoder(tmp_path_factory.mktemp("enc") / "tiny-bert", layers=4)


def _with_frozen(workflow: Workflow, n: int | None) -> Workflow:
    return workflow.model_copy(
        update={"training": workflow.training.model_copy(update={"frozen_layers": n})}
    )


def test_adapters_only_above_the_frozen_layers(tiny: str, workflow: Workflow) -> None:
    model, _ = _lora_model(tiny, workflow.label_names, _with_frozen(workflow, None))
    adapted = sorted(
        {n.split(".layer.")[1].split(".")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    )
    assert adapted == ["2", "3"]  # default: the lower half (2 of 4) has none
    model0, _ = _lora_model(tiny, workflow.label_names, _with_frozen(workflow, 0))
    assert frozen_layers(model0, _with_frozen(workflow, 0)) == 0
    assert sum("lora_A" in n for n, _ in model0.named_parameters()) == 2 * 4  # query+value x4


def test_too_many_frozen_layers_is_a_clear_error(tiny: str, workflow: Workflow) -> None:
    with pytest.raises(InputError, match="at most 3"):
        _lora_model(tiny, workflow.label_names, _with_frozen(workflow, 4))


def test_replayed_prefix_gives_the_full_models_logits(
    tiny: str, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    import transformers

    from tunegate.lora import prefix as _prefix
    from tunegate.lora.prefix import PrefixCache

    wf = _with_frozen(workflow, 2)
    model, _ = _lora_model(tiny, wf.label_names, wf)
    torch.manual_seed(1)
    with torch.no_grad():  # non-trivial adapters (B starts at zero)
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0.0, 0.5)
    tok = transformers.AutoTokenizer.from_pretrained(tiny)
    examples = toy_examples(20, seed=5)
    ids = _tokenize(tok, [e.text for e in examples], 64)
    pad = int(tok.pad_token_id or 0)
    rows = list(range(len(ids)))
    full = _predict_logits(model, ids, pad, 7, rows)

    def replay() -> np.ndarray:
        cache = PrefixCache(model, 2, ids, pad, rows, batch_size=3)  # other batching on purpose
        assert cache.n_cached == len(ids)
        with cache.active():
            out = _predict_logits(model, ids, pad, 5, rows, cache)
            # the layer list really is cut: only the upper layers run
            assert len(cache.backbone.encoder.layer) == 2
        assert len(cache.backbone.encoder.layer) == 4  # restored
        return out

    assert np.abs(full).max() > 0.1  # not a trivially zero comparison
    # stored in float16 (the default): equal up to half-precision rounding
    np.testing.assert_allclose(replay(), full, atol=3e-3)
    # stored in float32: the replay mechanics are exact
    monkeypatch.setattr(_prefix, "STORE_DTYPE", torch.float32)
    np.testing.assert_allclose(replay(), full, atol=1e-5)


def test_finetune_leaves_the_frozen_prefix_untouched(
    tiny: str, workflow: Workflow, tmp_path: Path
) -> None:
    from tunegate.lora.artifact import read_manifest
    from tunegate.models import LoraClassifier
    from tunegate.train import finetune

    wf = _with_frozen(workflow, 2)
    examples = toy_examples(60, seed=2)
    out = finetune(examples, wf, tmp_path / "a", seed=0, base_model=tiny, epochs=2)
    manifest = read_manifest(out)
    assert manifest.config["frozen_layers"] == 2
    assert manifest.metrics["prefix_cache"]["texts"] == len(examples)
    clf = LoraClassifier.load(out, backend="torch")
    trained = {n for n, _ in clf.model.named_parameters() if "lora_" in n}
    assert trained and all(".layer.2." in n or ".layer.3." in n for n in trained)
    # the artifact (full model, no cache) reproduces what the loop measured through the
    # cache on its calibration rows: ECE before temperature scaling, to float precision
    from tunegate.train import expected_calibration_error, split_examples

    t = wf.training
    cal = split_examples(
        [e.label for e in examples],
        validation_fraction=t.validation_fraction,
        calibration_fraction=t.calibration_fraction,
        seed=0,
    ).calibration
    proba = clf.predict_proba([examples[i].text for i in cal])
    logits = np.log(proba) * manifest.temperature  # undo the temperature: raw softmax
    raw = np.exp(logits - logits.max(1, keepdims=True))
    raw /= raw.sum(1, keepdims=True)
    y = np.array([wf.label_names.index(examples[i].label) for i in cal])
    assert expected_calibration_error(y, raw) == pytest.approx(
        manifest.metrics["ece_uncalibrated"], abs=2e-3
    )


def test_batch_widths_are_exact_when_short_and_rounded_when_long() -> None:
    from tunegate.lora.batching import PAD_EXACT_UP_TO, PAD_MULTIPLE, pad_batch, padded_width

    assert [padded_width(n) for n in (1, 21, PAD_EXACT_UP_TO)] == [1, 21, PAD_EXACT_UP_TO]
    assert padded_width(PAD_EXACT_UP_TO + 1) == 96 == padded_width(96)
    assert padded_width(97) == 128 == padded_width(128)
    assert PAD_MULTIPLE == 32
    # never above the cap (the longest text of the data set), never below the longest row
    assert padded_width(70, 100) == 96 and padded_width(70, 80) == 80
    assert padded_width(70, 50) == 70
    ids = [[5] * 70, [6] * 3, [7] * 110]
    input_ids, mask = pad_batch(ids, [0, 1], pad_id=0)
    assert tuple(input_ids.shape) == (2, 96)
    assert mask.sum(1).tolist() == [70, 3]
    assert input_ids[1, 3:].eq(0).all()
    # a data set whose longest text is 70 tokens: not rounded past it
    assert tuple(pad_batch(ids[:2], [0, 1], pad_id=0)[0].shape) == (2, 70)
    # the cap passed in (computed once per run) is the one used
    assert tuple(pad_batch(ids, [0, 1], pad_id=0, cap=80)[0].shape) == (2, 80)
    assert tuple(pad_batch(ids[:2], [0, 1], pad_id=0, cap=110)[0].shape) == (2, 96)


def test_finetune_pads_every_batch_with_a_precomputed_cap(
    tiny: str, workflow: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The data set's longest text is computed once per run, not once per batch."""
    from tunegate.lora import batching as _prefix
    from tunegate.train import finetune

    caps: list[int | None] = []
    real = _prefix.pad_batch

    def spy(ids: list[list[int]], rows: list[int], pad_id: int, *, cap: int | None = None) -> Any:
        caps.append(cap)
        return real(ids, rows, pad_id, cap=cap)

    monkeypatch.setattr(_prefix, "pad_batch", spy)
    for frozen in (None, 0):  # with and without the prefix cache
        caps.clear()
        finetune(
            toy_examples(40, seed=5),
            _with_frozen(workflow, frozen),
            tmp_path / f"f{frozen}",
            seed=0,
            base_model=tiny,
            epochs=1,
        )
        assert caps and None not in caps, caps
        assert len(set(caps)) == 1  # one value: the longest text of the run


def test_rounded_padding_does_not_change_the_logits(
    tiny: str, workflow: Workflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers

    from tunegate.lora import batching as _prefix

    model, _ = _lora_model(tiny, workflow.label_names, _with_frozen(workflow, 0))
    tok = transformers.AutoTokenizer.from_pretrained(tiny)
    texts = [" ".join(["password reset request"] * k) for k in (1, 7, 11)]
    ids = _tokenize(tok, texts, 128)
    lengths = sorted(len(x) for x in ids)
    # batches of 2 in length order: the first one's width really is rounded (and capped)
    first = _prefix.padded_width(lengths[1], lengths[2])
    assert lengths[1] > _prefix.PAD_EXACT_UP_TO and first != lengths[1]
    rows = list(range(len(ids)))
    rounded = _predict_logits(model, ids, 0, 2, rows)
    monkeypatch.setattr(_prefix, "PAD_EXACT_UP_TO", 10**6)  # exact widths everywhere
    exact = _predict_logits(model, ids, 0, 2, rows)
    assert np.abs(exact).max() > 0.01
    np.testing.assert_allclose(rounded, exact, atol=1e-5)


def test_the_training_loop_trims_the_heap_when_it_grows(
    tiny: str, workflow: Workflow, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunegate.lora import loop as _lora
    from tunegate.lora import memory as _memory
    from tunegate.lora.artifact import read_manifest
    from tunegate.train import finetune

    calls: list[int] = []
    monkeypatch.setattr(_lora, "trim_heap", lambda: calls.append(1) or True)  # phase ends
    monkeypatch.setattr(_memory, "trim_heap", lambda: calls.append(2) or True)  # steps
    wf = workflow.model_copy(
        update={"training": workflow.training.model_copy(update={"batch_size": 8})}
    )
    examples = toy_examples(60, seed=3)
    # a flat resident set: trimmed only after the prefix cache, the warm start and the epochs
    monkeypatch.setattr(_memory, "resident_bytes", lambda: 10**9)
    finetune(examples, wf, tmp_path / "flat", seed=0, base_model=tiny, epochs=2)
    assert calls == [1, 1, 1]
    # a resident set that grows by 100 MiB per reading: also after every optimizer step
    calls.clear()
    readings = iter(range(10**9, 10**12, 100 * 2**20))
    monkeypatch.setattr(_memory, "resident_bytes", lambda: next(readings))
    out = finetune(examples, wf, tmp_path / "growing", seed=0, base_model=tiny, epochs=2)
    metrics = read_manifest(out).metrics
    steps = metrics["epochs_run"] * -(-metrics["n_train"] // 8)
    assert calls.count(2) == steps and calls.count(1) == 3


def test_heap_trimmer_trims_only_past_its_slack(monkeypatch: pytest.MonkeyPatch) -> None:
    from tunegate.lora import memory as _memory

    rss = iter([100, 150, 170, 171, 172, None])  # MiB; None: /proc unreadable
    monkeypatch.setattr(
        _memory, "resident_bytes", lambda: (lambda v: None if v is None else v * 2**20)(next(rss))
    )
    monkeypatch.setattr(_memory, "trim_heap", lambda: True)
    trimmer = _memory.HeapTrimmer(slack_bytes=64 * 2**20)  # floor 100
    assert trimmer.step() is False  # 150: +50 MiB
    assert trimmer.step() is True  # 170: +70 MiB -> trim; the floor becomes 171
    assert trimmer.step() is False  # 172
    assert trimmer.step() is False  # unreadable
    assert trimmer.trims == 1


def test_trim_heap_runs_on_glibc() -> None:
    import platform

    from tunegate.lora.memory import trim_heap

    expected = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert trim_heap() is expected
