"""Export models to ONNX, quantize them to dynamic int8 with ONNX Runtime, cache them on disk.

Two exports share the quantization settings (per-channel int8 weights, dynamic activations):

* encoders (:func:`onnx_model_path`): mean pooling + L2 normalization inside the graph.
  Cache: ``$TUNEGATE_CACHE_DIR`` (default ``~/.cache/tunegate``) ``/onnx/<key>/`` holding
  ``model.onnx`` (float32) and ``model.int8.onnx``; ``<key>`` hashes the encoder's weight
  files, this export recipe's version and the torch/onnxruntime versions, so a changed
  encoder or upgraded library gets a fresh export.
* LoRA sequence classifiers (:func:`lora_onnx_path`): the adapter merged into the base
  weights, ``(input_ids, attention_mask) -> logits``. Cache: ``.../onnx/lora-<key>/`` where
  ``<key>`` hashes the adapter's and the base encoder's weights, the recipe and the library
  versions. Every file is written atomically with a ``<file>.sha256`` sidecar; a file whose
  sidecar is missing or does not match (interrupted write, corruption) is rebuilt.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunegate._optional import require
from tunegate.errors import ModelError
from tunegate.models._encoder import _cpu_count, _quiet_transformers
from tunegate.models.artifact import dir_sha256, file_sha256

__all__ = [
    "cache_root",
    "export_logits_onnx",
    "export_onnx",
    "lora_cache_key",
    "lora_onnx_path",
    "onnx_model_path",
    "ort_session",
    "quantize_int8",
]

_RECIPE = "tunegate-onnx/2"  # bump when the exported graph changes
_LORA_RECIPE = "tunegate-onnx-lora/1"  # bump when the LoRA export or quantization changes
_OPSET = 17
_LOCK = threading.Lock()


def cache_root() -> Path:
    """Root of tunegate's on-disk caches."""
    env = os.environ.get("TUNEGATE_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "tunegate"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence tracer/quantizer chatter (warnings and root-logger notes) during export."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _cache_key(encoder_path: str) -> str:
    torch = require("torch")
    ort = require("onnxruntime")
    digest = hashlib.sha256()
    for part in (_RECIPE, dir_sha256(encoder_path), torch.__version__, ort.__version__):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _pooled_module(model: Any) -> Any:
    torch = require("torch")

    class Pooled(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            hidden = self.inner(input_ids=input_ids, attention_mask=attention_mask)[0]
            weights = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    return Pooled(model).eval()


def export_onnx(encoder_path: str, out_file: str | Path) -> Path:
    """Export ``encoder_path`` (HF folder) to a float32 ONNX file with dynamic batch/sequence.

    Inputs ``input_ids``/``attention_mask`` int64 (b, t); output ``embedding`` float32 (b, d),
    mean-pooled and L2-normalized.
    """
    transformers = require("transformers")
    try:
        with _quiet_transformers():
            model = transformers.AutoModel.from_pretrained(
                encoder_path, attn_implementation="eager"
            )
    except Exception as exc:
        raise ModelError(f"could not load {encoder_path} for ONNX export: {exc}") from exc
    return _export(
        _pooled_module(model.eval()), out_file, "embedding",
        failure=f"torch.onnx.export failed for {encoder_path}",
    )


def _export(module: Any, out_file: str | Path, output: str, *, failure: str) -> Path:
    """TorchScript export of ``module(input_ids, attention_mask) -> output`` with dynamic batch
    and sequence axes (a padded two-row example traces the mask path)."""
    torch = require("torch")
    ids = torch.ones((2, 8), dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    out = Path(out_file)
    try:
        with torch.inference_mode(), _quiet():
            torch.onnx.export(
                module,
                (ids, mask),
                str(out),
                dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=[output],
                dynamic_axes={
                    "input_ids": {0: "batch", 1: "seq"},
                    "attention_mask": {0: "batch", 1: "seq"},
                    output: {0: "batch"},
                },
                opset_version=_OPSET,
                do_constant_folding=True,
            )
    except Exception as exc:
        raise ModelError(f"{failure}: {exc}") from exc
    return out


def onnx_model_path(
    encoder_path: str, *, quantize: bool = True, cache_dir: str | Path | None = None
) -> Path:
    """Path of the cached ONNX export of ``encoder_path`` (exported/quantized on first use)."""
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "onnx"
    folder = root / _cache_key(encoder_path)
    fp32 = folder / "model.onnx"
    int8 = folder / "model.int8.onnx"
    target = int8 if quantize else fp32
    with _LOCK:
        if target.is_file():
            return target
        folder.mkdir(parents=True, exist_ok=True)
        if not fp32.is_file():
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                tmp_file = export_onnx(encoder_path, Path(tmp) / "model.onnx")
                os.replace(tmp_file, fp32)
        if quantize and not int8.is_file():
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                tmp_file = quantize_int8(fp32, Path(tmp) / "model.int8.onnx")
                os.replace(tmp_file, int8)
    return target


def quantize_int8(fp32: str | Path, out_file: str | Path) -> Path:
    """Dynamic int8 quantization of an ONNX file (per-channel QInt8 weights).

    Per-channel weight scales: mean cosine to float32 ~0.994 on BANKING77 texts for the
    encoder vs ~0.969 per-tensor, at the same speed (measured, docs/models.md).
    """
    quantization = require("onnxruntime.quantization", purpose="int8 quantization")
    out = Path(out_file)
    try:
        with _quiet():
            quantization.quantize_dynamic(
                str(fp32),
                str(out),
                per_channel=True,
                weight_type=quantization.QuantType.QInt8,
            )
    except Exception as exc:
        raise ModelError(f"int8 quantization of {fp32} failed: {exc}") from exc
    return out


# -- LoRA sequence classifiers ------------------------------------------------------------


def lora_cache_key(adapter_hash: str, base_hash: str) -> str:
    """Cache key of a LoRA export: adapter + base weights, recipe, torch/onnxruntime versions."""
    torch = require("torch")
    ort = require("onnxruntime")
    digest = hashlib.sha256()
    for part in (_LORA_RECIPE, adapter_hash, base_hash, torch.__version__, ort.__version__):
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:24]


def _logits_module(model: Any) -> Any:
    torch = require("torch")

    class Logits(torch.nn.Module):  # type: ignore[misc, name-defined]
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

    return Logits(model).eval()


def export_logits_onnx(model: Any, out_file: str | Path) -> Path:
    """Export a (merged, plain ``transformers``) sequence classifier to float32 ONNX.

    Inputs ``input_ids``/``attention_mask`` int64 (b, t), both axes dynamic; output
    ``logits`` float32 (b, k). The model is switched to eager attention (the TorchScript
    exporter does not trace SDPA's mask handling reliably).
    """
    with contextlib.suppress(Exception):
        model.set_attn_implementation("eager")
    return _export(
        _logits_module(model.eval()), out_file, "logits",
        failure="torch.onnx.export of the merged LoRA model failed",
    )


def _sidecar(file: Path) -> Path:
    return file.with_name(file.name + ".sha256")


def _is_valid(file: Path) -> bool:
    """``file`` exists and matches the SHA-256 recorded next to it when it was written."""
    marker = _sidecar(file)
    if not (file.is_file() and marker.is_file()):
        return False
    try:
        return marker.read_text(encoding="ascii").strip() == file_sha256(file)
    except (OSError, UnicodeDecodeError):
        return False


def _commit(tmp_file: Path, target: Path) -> None:
    """Move ``tmp_file`` to ``target`` atomically, then write its checksum sidecar."""
    digest = file_sha256(tmp_file)
    _sidecar(target).unlink(missing_ok=True)
    os.replace(tmp_file, target)
    marker_tmp = _sidecar(target).with_suffix(".tmp")
    marker_tmp.write_text(digest + "\n", encoding="ascii")
    os.replace(marker_tmp, _sidecar(target))


@contextlib.contextmanager
def _file_lock(folder: Path) -> Iterator[None]:
    """Serialize exports of one cache folder across threads and processes (flock on Linux)."""
    with _LOCK:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX
            yield
            return
        with (folder / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def lora_onnx_path(
    key: str,
    build_model: Callable[[], Any],
    *,
    quantize: bool = True,
    cache_dir: str | Path | None = None,
    rebuild: bool = False,
) -> Path:
    """Path of the cached ONNX export ``lora-<key>`` (exported/quantized when missing).

    ``build_model()`` is called only on a cache miss and must return the merged
    ``transformers`` sequence classifier to export. Files whose checksum sidecar is missing
    or wrong are rebuilt; ``rebuild=True`` discards the folder first (e.g. after ONNX
    Runtime refused to load a file).
    """
    root = Path(cache_dir) if cache_dir is not None else cache_root() / "onnx"
    folder = root / f"lora-{key}"
    fp32 = folder / "model.onnx"
    int8 = folder / "model.int8.onnx"
    target = int8 if quantize else fp32
    folder.mkdir(parents=True, exist_ok=True)
    with _file_lock(folder):
        if rebuild:
            for file in (fp32, int8):
                file.unlink(missing_ok=True)
                _sidecar(file).unlink(missing_ok=True)
        if _is_valid(target):
            return target
        if not _is_valid(fp32):
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                tmp_file = export_logits_onnx(build_model(), Path(tmp) / "model.onnx")
                _commit(tmp_file, fp32)
        if quantize:
            with tempfile.TemporaryDirectory(dir=folder) as tmp:
                tmp_file = quantize_int8(fp32, Path(tmp) / "model.int8.onnx")
                _commit(tmp_file, int8)
    return target


def ort_session(path: str | Path, *, threads: int | None = None) -> Any:
    """An ONNX Runtime CPU session (all graph optimizations, ``threads`` intra-op threads)."""
    ort = require("onnxruntime", purpose="the fast ONNX inference path")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or _cpu_count()
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(
            f"onnxruntime could not load {path}: {exc}; delete its cache folder to re-export"
        ) from exc
