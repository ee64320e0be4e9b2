"""The LoRA fast path: adapter merged, exported to ONNX, int8-quantized, cached on disk.

Unit tests use a tiny random BERT (``_tiny_models.make_tiny_encoder``) with an adapter trained
for a few steps inside the test; the slow test uses the shipped all-MiniLM-L6-v2 weights.
"""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from _tiny_models import TOPICS, make_tiny_encoder, toy_examples
from tunegate.config import ModelSettings, TrainingSettings, parse_workflow, starter_yaml
from tunegate.errors import InputError, ModelError
from tunegate.lora import classifier as lora_module
from tunegate.lora import onnx as onnx_module
from tunegate.lora.artifact import file_sha256
from tunegate.models import (
    ArtifactManifest,
    LoraClassifier,
    build_classifier,
    build_lora_model,
    save_lora_artifact,
    softmax,
)

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("peft")
pytest.importorskip("onnxruntime")

LABELS = list(TOPICS)
TEMPERATURE = 1.7
# Stated tolerances (docs/models.md): int8 weights move each probability by at most 0.05 and
# keep >= 98% of top-1 decisions; a float32 export matches PyTorch to float32 rounding.
INT8_PROB_ATOL = 0.05
FP32_PROB_ATOL = 1e-5
MIN_TOP1_AGREEMENT = 0.98
# The tiny random 32-wide BERT quantizes worse than a real encoder: its fine-tuned head leaves
# many rows with top-2 margins below 0.01, and int8 noise flips a few of them (measured 96%
# agreement). Here the 98% contract is checked on the float32 export and the int8 probability
# tolerance; the real-weights test (slow) asserts 98% on int8. Full-range (8-bit) per-channel
# weights dropped this agreement to 64% on AVX2 CPUs without VNNI (int16 saturation in ONNX
# Runtime's u8 x s8 kernel): the 7-bit weight test and the MatMul test below pin that down.
TINY_INT8_MIN_AGREEMENT = 0.95


def _train_adapter(base: str, texts: list[str], y: list[int], *, steps: int, lr: float) -> Any:
    model = build_lora_model(base, LABELS, TrainingSettings(lora_r=4, lora_dropout=0.0), seed=0)
    tok = transformers.AutoTokenizer.from_pretrained(base)
    batch = tok(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    target = torch.tensor(y)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    for _ in range(steps):
        model(**batch, labels=target).loss.backward()
        opt.step()
        opt.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lora_onnx")
    base = make_tiny_encoder(root / "base")
    train = toy_examples(6)
    model = _train_adapter(
        base, [e.text for e in train], [LABELS.index(e.label) for e in train], steps=30, lr=1e-2
    )
    manifest = ArtifactManifest(
        labels=LABELS, base_model=base, temperature=TEMPERATURE, max_length=64
    )
    return save_lora_artifact(model, root / "art", manifest)


@pytest.fixture(scope="module")
def texts() -> list[str]:
    return [e.text for e in toy_examples(30, seed=7, prefix="t")]  # 240 texts


@pytest.fixture(scope="module")
def torch_clf(artifact: Path) -> LoraClassifier:
    return LoraClassifier.load(artifact, backend="torch")


class _CountExports:
    """Wraps ``export_logits_onnx`` to count calls."""

    def __init__(self) -> None:
        self.calls = 0
        self._real = onnx_module.export_logits_onnx

    def __call__(self, model: Any, out_file: str | Path) -> Path:
        self.calls += 1
        return self._real(model, out_file)


def test_int8_onnx_agrees_with_pytorch_and_applies_temperature(
    artifact: Path, torch_clf: LoraClassifier, texts: list[str], tmp_path: Path
) -> None:
    clf = LoraClassifier.load(artifact, cache_dir=tmp_path)  # auto -> onnx here
    assert clf.backend == "onnx" and clf.model is None and clf.session is not None
    assert clf.onnx_path is not None and clf.onnx_path.name == "model.int8.onnx"
    assert clf.onnx_path.parent.name.startswith("lora-")
    assert clf.version == torch_clf.version and clf.labels == LABELS
    expected = torch_clf.predict_proba(texts)
    got = clf.predict_proba(texts)
    assert got.shape == (len(texts), len(LABELS))
    np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=1e-9)
    # the adapter learned something decisive, so agreement is not about coin-flip ties
    assert expected.max(axis=1).mean() > 2.0 / len(LABELS)
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    assert agreement >= TINY_INT8_MIN_AGREEMENT, agreement
    assert np.abs(got - expected).max() <= INT8_PROB_ATOL
    # the temperature is applied to the ONNX logits exactly as on the PyTorch path
    np.testing.assert_allclose(got, softmax(clf.logits(texts), TEMPERATURE), atol=1e-12)
    assert not np.allclose(got, softmax(clf.logits(texts), 1.0), atol=1e-3)


def test_int8_weights_are_7_bit_so_the_u8s8_kernel_cannot_saturate(
    artifact: Path, tmp_path: Path
) -> None:
    """ONNX Runtime's uint8 x int8 MatMulInteger on x86 without VNNI (AVX2 ``VPMADDUBSW``)
    adds pairs of products in int16: |w| <= 64 keeps 255 * 64 * 2 within 32767 on every CPU."""
    onnx = pytest.importorskip("onnx")
    from onnx import numpy_helper

    clf = LoraClassifier.load(artifact, backend="onnx", cache_dir=tmp_path)
    assert clf.onnx_path is not None
    graph = onnx.load(str(clf.onnx_path)).graph
    initializers = {init.name: init for init in graph.initializer}
    weights = [
        numpy_helper.to_array(initializers[node.input[1]])
        for node in graph.node
        if node.op_type == "MatMulInteger" and node.input[1] in initializers
    ]
    assert len(weights) >= 12  # 6 linear layers in each of the 2 blocks, at least
    for w in weights:
        assert w.dtype == np.int8
        assert int(np.abs(w.astype(np.int16)).max()) <= 64


def test_int8_matmul_matches_float32_on_full_range_inputs(tmp_path: Path) -> None:
    """One MatMul, quantized by the serving recipe and run by ONNX Runtime, stays within int8
    rounding of float32. Full-range per-channel int8 weights gave 15% relative error here on
    an AVX2 CPU without VNNI (saturated int16 pair sums); 7-bit weights give ~1%."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    from tunegate.models._onnx import ort_session, quantize_int8

    rng = np.random.default_rng(0)
    k, n = 64, 32
    w = rng.normal(size=(k, n)).astype(np.float32)
    x = rng.uniform(-1.0, 1.0, size=(16, k)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "matmul",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", k])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)
    onnx.save(model, str(tmp_path / "mm.onnx"))
    int8 = quantize_int8(tmp_path / "mm.onnx", tmp_path / "mm.int8.onnx")
    got = ort_session(int8, threads=1).run(None, {"x": x})[0]
    expected = x @ w
    assert float(np.abs(got - expected).max() / np.abs(expected).max()) < 0.03


def test_fp32_onnx_matches_pytorch_closely(
    artifact: Path, torch_clf: LoraClassifier, texts: list[str], tmp_path: Path
) -> None:
    clf = LoraClassifier.load(artifact, backend="onnx", quantize=False, cache_dir=tmp_path)
    assert clf.onnx_path is not None and clf.onnx_path.name == "model.onnx"
    expected = torch_clf.predict_proba(texts)
    agreement = float((clf.predict_proba(texts).argmax(1) == expected.argmax(1)).mean())
    assert agreement >= MIN_TOP1_AGREEMENT
    np.testing.assert_allclose(clf.logits(texts), torch_clf.logits(texts), atol=1e-4)
    np.testing.assert_allclose(
        clf.predict_proba(texts), torch_clf.predict_proba(texts), atol=FP32_PROB_ATOL
    )
    # batch composition does not matter (length bucketing + padding mask in the graph)
    one_by_one = np.vstack([clf.logits([t]) for t in texts[:20]])
    np.testing.assert_allclose(one_by_one, clf.logits(texts[:20]), atol=1e-4)


def test_cache_is_reused_without_re_export(
    artifact: Path, texts: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counter = _CountExports()
    monkeypatch.setattr(onnx_module, "export_logits_onnx", counter)
    first = LoraClassifier.load(artifact, cache_dir=tmp_path)
    assert counter.calls == 1 and first.onnx_path is not None
    stamp = first.onnx_path.stat().st_mtime_ns
    # a warm load needs neither the export nor the PyTorch model
    monkeypatch.setattr(
        lora_module,
        "load_sequence_classifier",
        lambda *a, **k: pytest.fail("the PyTorch model was loaded on a warm cache"),
    )
    second = LoraClassifier.load(artifact, cache_dir=tmp_path)
    assert counter.calls == 1
    assert second.onnx_path == first.onnx_path
    assert second.onnx_path.stat().st_mtime_ns == stamp
    np.testing.assert_array_equal(second.logits(texts), first.logits(texts))
    # without cache_dir, $TUNEGATE_CACHE_DIR/onnx is the root
    monkeypatch.undo()  # restore load_sequence_classifier before the cold load below
    monkeypatch.setattr(onnx_module, "export_logits_onnx", counter)
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path / "env"))
    third = LoraClassifier.load(artifact)
    assert third.onnx_path is not None
    assert third.onnx_path.is_relative_to(tmp_path / "env" / "onnx")
    assert counter.calls == 2


@pytest.mark.parametrize("damage", ["int8_garbage", "both_truncated", "valid_sum_bad_model"])
def test_corrupt_cache_is_rebuilt(
    damage: str,
    artifact: Path,
    texts: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    counter = _CountExports()
    monkeypatch.setattr(onnx_module, "export_logits_onnx", counter)
    first = LoraClassifier.load(artifact, backend="onnx", cache_dir=tmp_path)
    assert first.onnx_path is not None
    int8, fp32 = first.onnx_path, first.onnx_path.with_name("model.onnx")
    before = first.logits(texts)
    good = int8.read_bytes()
    if damage == "int8_garbage":  # same size, flipped content: only the checksum notices
        int8.write_bytes(bytes(b ^ 0xFF for b in good[:4096]) + good[4096:])
        exports = 1  # fp32 is intact: only re-quantized
    elif damage == "both_truncated":  # an interrupted write
        int8.write_bytes(good[: len(good) // 2])
        fp32.write_bytes(fp32.read_bytes()[:100])
        exports = 2
    else:  # the checksum matches but onnxruntime cannot load it
        int8.write_bytes(b"not an onnx model")
        int8.with_name(int8.name + ".sha256").write_text(file_sha256(int8) + "\n", encoding="ascii")
        exports = 2  # the rebuild discards the whole folder
    rebuilt = LoraClassifier.load(artifact, backend="onnx", cache_dir=tmp_path)
    assert rebuilt.backend == "onnx" and counter.calls == exports
    assert onnx_module._is_valid(int8)
    np.testing.assert_allclose(rebuilt.logits(texts), before, atol=1e-6)


def test_backend_torch_forces_pytorch_and_auto_without_onnxruntime(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clf = LoraClassifier.load(artifact, backend="torch", cache_dir=tmp_path)
    assert clf.backend == "torch" and clf.session is None and clf.model is not None
    assert clf.onnx_path is None and not any(tmp_path.iterdir())
    monkeypatch.setattr(lora_module, "_onnx_available", lambda: False)
    auto = LoraClassifier.load(artifact, cache_dir=tmp_path)
    assert auto.backend == "torch" and not any(tmp_path.iterdir())
    with pytest.raises(InputError, match="backend must be one of auto, onnx, torch"):
        LoraClassifier.load(artifact, backend="tensorrt")  # type: ignore[arg-type]


def test_registry_follows_model_backend_setting(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workflow = parse_workflow(starter_yaml())
    assert workflow.label_names == LABELS
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path))
    torch_wf = workflow.model_copy(update={"model": ModelSettings(backend="torch")})
    assert build_classifier(f"lora:{artifact}", torch_wf).backend == "torch"  # type: ignore[attr-defined]
    onnx_wf = workflow.model_copy(update={"model": ModelSettings(backend="onnx")})
    assert build_classifier(f"lora:{artifact}", onnx_wf).backend == "onnx"  # type: ignore[attr-defined]


def test_registry_and_model_versions_follow_model_precision(
    artifact: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tunegate.models import load_model_version
    from tunegate.records import ModelKind, ModelVersion

    workflow = parse_workflow(starter_yaml())
    monkeypatch.setenv("TUNEGATE_CACHE_DIR", str(tmp_path))
    mv = ModelVersion(id="lora-x", kind=ModelKind.LORA, artifact_path=str(artifact))
    for precision, name in (("int8", "model.int8.onnx"), ("fp32", "model.onnx")):
        wf = workflow.model_copy(
            update={"model": ModelSettings(backend="onnx", precision=precision)}
        )
        for clf in (
            build_classifier(f"lora:{artifact}", wf),
            load_model_version(mv, wf),
            LoraClassifier.for_workflow(artifact, wf),
        ):
            assert clf.onnx_path is not None and clf.onnx_path.name == name  # type: ignore[attr-defined]
    # explicit arguments win over the workflow's settings
    fp32_wf = workflow.model_copy(update={"model": ModelSettings(precision="fp32")})
    assert LoraClassifier.for_workflow(artifact, fp32_wf, backend="torch").backend == "torch"


def test_failed_export_warns_once_and_falls_back(
    artifact: Path,
    torch_clf: LoraClassifier,
    texts: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def broken(model: Any, out_file: str | Path) -> Path:
        raise ModelError("torch.onnx.export failed: simulated")

    monkeypatch.setattr(onnx_module, "export_logits_onnx", broken)
    monkeypatch.setattr(lora_module, "_WARNED", set())
    with pytest.warns(RuntimeWarning, match="ONNX path unavailable.*simulated.*using PyTorch"):
        clf = LoraClassifier.load(artifact, cache_dir=tmp_path)
    assert clf.backend == "torch"
    np.testing.assert_array_equal(clf.logits(texts), torch_clf.logits(texts))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # the second failure is silent
        assert LoraClassifier.load(artifact, cache_dir=tmp_path).backend == "torch"
    with pytest.raises(ModelError, match="simulated"):
        LoraClassifier.load(artifact, backend="onnx", cache_dir=tmp_path)


@pytest.mark.slow
def test_real_weights_onnx_agrees_and_is_faster(
    encoder_path: str, tmp_path: Path, record_property: Any
) -> None:
    train = toy_examples(8, seed=1)
    model = _train_adapter(
        encoder_path,
        [e.text for e in train],
        [LABELS.index(e.label) for e in train],
        steps=6,
        lr=5e-3,
    )
    out = save_lora_artifact(
        model,
        tmp_path / "art",
        ArtifactManifest(labels=LABELS, base_model=encoder_path, temperature=1.3),
    )
    eval_texts = [e.text for e in toy_examples(38, seed=5, prefix="r")]  # 304 texts
    slow = LoraClassifier.load(out, backend="torch")
    fast = LoraClassifier.load(out, cache_dir=tmp_path / "cache")
    assert fast.backend == "onnx"
    slow.predict_proba(eval_texts[:32])  # warm-up both paths
    fast.predict_proba(eval_texts[:32])
    start = time.perf_counter()
    expected = slow.predict_proba(eval_texts)
    torch_s = time.perf_counter() - start
    start = time.perf_counter()
    got = fast.predict_proba(eval_texts)
    onnx_s = time.perf_counter() - start
    agreement = float((got.argmax(1) == expected.argmax(1)).mean())
    diff = float(np.abs(got - expected).max())
    record_property("speedup_onnx_vs_torch", torch_s / onnx_s)
    print(  # the ratio is reported, not asserted (shared CPUs)
        f"\nLoRA real weights, {len(eval_texts)} texts: torch {torch_s:.2f}s, onnx "
        f"{onnx_s:.2f}s, ratio {torch_s / onnx_s:.2f}x, agreement {agreement:.4f}, "
        f"max |dp| {diff:.4f}"
    )
    assert agreement >= MIN_TOP1_AGREEMENT
    assert diff <= INT8_PROB_ATOL
