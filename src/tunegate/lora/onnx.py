"""ONNX export of a LoRA classifier: the adapter merged into the base weights, int8, cached.

The exported graph is ``(input_ids, attention_mask) -> logits``. Cache: ``$TUNEGATE_CACHE_DIR``
(default ``~/.cache/tunegate``) ``/onnx/lora-<key>/`` where ``<key>`` hashes the adapter's and
the base encoder's weights, this recipe and the torch/onnxruntime versions. Every file is
written atomically with a ``<file>.sha256`` sidecar; a file whose sidecar is missing or does
not match (interrupted write, corruption) is rebuilt. Export, quantization and sessions share
the encoder's helpers (:mod:`tunegate.models._onnx`).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tunegate._optional import require
from tunegate.models._hashing import file_sha256
from tunegate.models._onnx import cache_root, export_module, quantize_int8

__all__ = ["export_logits_onnx", "lora_cache_key", "lora_onnx_path"]

_LORA_RECIPE = "tunegate-onnx-lora/2"  # bump when the LoRA export or quantization changes
_LOCK = threading.Lock()


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
    return export_module(
        _logits_module(model.eval()),
        out_file,
        "logits",
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
