"""Serving a LoRA artifact: :class:`LoraClassifier`, registered as the ``lora`` model backend.

The artifact folder (format in :mod:`tunegate.lora.artifact`) holds the adapter and every
module the base checkpoint does not provide (:mod:`tunegate.lora.model`), so a reloaded
adapter predicts exactly like the saved one.

Serving has two paths sharing tokenization (Rust tokenizer, whole input first) and length
bucketing: the fast path (default when onnxruntime is installed) merges the adapter into the
base weights, exports the classifier to ONNX, quantizes it to int8 and caches it on disk
(:func:`tunegate.lora.onnx.lora_onnx_path`); the PyTorch path runs the PEFT model.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from tunegate._optional import require
from tunegate.config import Workflow
from tunegate.errors import InputError, ModelError
from tunegate.lora.artifact import ADAPTER_DIR, ArtifactManifest, dir_sha256, read_manifest
from tunegate.lora.model import load_sequence_classifier, merged_model
from tunegate.models._base import Metadata, register_backend, softmax
from tunegate.models._encoder import (
    TextTooLongWarning,
    _onnx_available,
    _quiet_transformers,
    _TokenizerWrap,
    default_encoder_path,
    validate_texts,
)
from tunegate.records import ModelKind

__all__ = ["LoraBackend", "LoraClassifier"]

LoraBackend = Literal["auto", "onnx", "torch"]
_BACKENDS: tuple[str, ...] = ("auto", "onnx", "torch")
_WARNED: set[str] = set()  # cache keys whose failed export was already warned about
_WARN_LOCK = threading.Lock()


def _resolve_base(manifest: ArtifactManifest, check_hash: bool) -> tuple[str, str | None]:
    """``(folder, weights hash)``; the hash is ``None`` when it was not computed."""
    candidates = [manifest.base_model]
    if manifest.base_model_hash:
        with contextlib.suppress(ImportError):
            candidates.append(default_encoder_path())
    for candidate in candidates:
        if not Path(candidate).is_dir():
            continue
        if not check_hash or not manifest.base_model_hash:
            return candidate, None
        if dir_sha256(candidate) == manifest.base_model_hash:
            return candidate, manifest.base_model_hash
    raise ModelError(
        f"base model of the artifact not found: {manifest.base_model!r} is "
        f"missing or its weights do not match base_model_hash "
        f"{manifest.base_model_hash[:12]}...; install that encoder, or pass "
        f"check_hash=False to load anyway"
    )


def _warn_once(key: str, message: str) -> None:
    with _WARN_LOCK:
        if key in _WARNED:
            return
        _WARNED.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


class LoraClassifier:
    """Serves a LoRA artifact: softmax(logits / manifest.temperature) in manifest label order.

    ``backend`` is ``"onnx"`` (merged, exported, int8 by default, run by ONNX Runtime;
    ``model`` is ``None``) or ``"torch"`` (the PEFT model in ``model``).
    """

    kind = ModelKind.LORA

    def __init__(
        self,
        model: Any,
        manifest: ArtifactManifest,
        base_model: str,
        *,
        version: str,
        batch_size: int = 32,
        session: Any = None,
        onnx_path: Path | None = None,
    ) -> None:
        if model is None and session is None:
            raise ModelError("LoraClassifier needs a PyTorch model or an ONNX Runtime session")
        self.model: Any = model.eval() if model is not None else None
        """The PEFT model (``None`` on the ONNX path)."""
        self.session = session
        self.onnx_path = onnx_path
        """The ONNX file the session runs (``None`` on the PyTorch path)."""
        self.backend = "onnx" if session is not None else "torch"
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.temperature = manifest.temperature
        fitted = manifest.metrics.get("clarify_threshold")
        self.clarify_threshold: float | None = None if fitted is None else float(fitted)
        """The routing threshold fitted at training time (None: the workflow's)."""
        self.version = version
        self.batch_size = batch_size
        self.base_model = base_model
        self._tokenizer = _TokenizerWrap(base_model, manifest.max_length)
        self.truncated_total = 0
        """Texts truncated to ``manifest.max_length`` so far (warned once)."""

    @classmethod
    def load(
        cls,
        artifact_dir: str | Path,
        *,
        batch_size: int = 32,
        check_hash: bool = True,
        backend: LoraBackend = "auto",
        quantize: bool = True,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> LoraClassifier:
        """Load an artifact folder written by :func:`save_lora_artifact`.

        ``backend``: ``"auto"`` (default) takes the ONNX Runtime path when onnxruntime and
        onnx are installed and falls back to PyTorch (warning once per artifact) when the
        export fails; ``"onnx"`` requires it (raises :class:`ModelError`); ``"torch"`` runs
        the PEFT model. ``quantize=False`` keeps the ONNX export float32. ``cache_dir``
        overrides ``$TUNEGATE_CACHE_DIR/onnx``; ``threads`` sets ONNX Runtime's intra-op
        threads (default: the CPUs this process may use). On a warm cache the PyTorch model
        is not loaded at all.
        """
        if backend not in _BACKENDS:
            raise InputError(f"backend must be one of {', '.join(_BACKENDS)}, got {backend!r}")
        peft = require("peft", purpose="LoRA adapters")
        folder = Path(artifact_dir)
        manifest = read_manifest(folder)
        adapter = folder / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise ModelError(
                f"{folder}: no {ADAPTER_DIR}/adapter_config.json; the artifact is "
                f"incomplete (re-save it with save_lora_artifact)"
            )
        base, base_hash = _resolve_base(manifest, check_hash)
        adapter_hash = dir_sha256(adapter)
        version = f"lora-{adapter_hash[:12]}"
        loaded: list[Any] = []

        def torch_model() -> Any:
            if not loaded:
                model, _ = load_sequence_classifier(base, manifest.labels)
                try:
                    with _quiet_transformers():
                        loaded.append(peft.PeftModel.from_pretrained(model, str(adapter)).eval())
                except Exception as exc:
                    raise ModelError(f"could not load the adapter in {adapter}: {exc}") from exc
            return loaded[0]

        use_onnx = backend == "onnx" or (backend == "auto" and _onnx_available())
        if use_onnx:
            from tunegate.lora import onnx as _onnx

            key = _onnx.lora_cache_key(adapter_hash, base_hash or dir_sha256(base))
            try:
                path, session = cls._onnx_session(
                    key, lambda: merged_model(torch_model()), quantize, cache_dir, threads
                )
            except ModelError as exc:
                if backend == "onnx":
                    raise
                _warn_once(
                    key,
                    f"ONNX path unavailable for LoRA artifact {folder} ({exc}); using PyTorch",
                )
            else:
                loaded.clear()  # the PyTorch model was only needed for the export
                return cls(
                    None,
                    manifest,
                    base,
                    version=version,
                    batch_size=batch_size,
                    session=session,
                    onnx_path=path,
                )
        return cls(torch_model(), manifest, base, version=version, batch_size=batch_size)

    @classmethod
    def for_workflow(
        cls, artifact_dir: str | Path, workflow: Workflow, **overrides: Any
    ) -> LoraClassifier:
        """:meth:`load` with the workflow's serving settings: ``model.backend`` and
        ``model.precision`` (int8 or float32 weights on ONNX Runtime); ``overrides`` win."""
        options: dict[str, Any] = {
            "backend": workflow.model.backend,
            "quantize": workflow.model.precision == "int8",
        }
        return cls.load(artifact_dir, **{**options, **overrides})

    @staticmethod
    def _onnx_session(
        key: str,
        build: Any,
        quantize: bool,
        cache_dir: str | Path | None,
        threads: int | None,
    ) -> tuple[Path, Any]:
        from tunegate.lora import onnx as _onnx
        from tunegate.models._onnx import ort_session

        path = _onnx.lora_onnx_path(key, build, quantize=quantize, cache_dir=cache_dir)
        try:
            return path, ort_session(path, threads=threads)
        except ModelError:
            # a file that passes its checksum but does not load (e.g. written by another
            # onnxruntime build): rebuild once, then give up
            path = _onnx.lora_onnx_path(
                key, build, quantize=quantize, cache_dir=cache_dir, rebuild=True
            )
            return path, ort_session(path, threads=threads)

    def _forward(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Logits (b, k) float64 of one padded batch."""
        if self.session is not None:
            (out,) = self.session.run(
                ["logits"], {"input_ids": input_ids, "attention_mask": attention_mask}
            )
            return np.asarray(out, dtype=np.float64)
        torch = require("torch")
        with torch.inference_mode():
            result = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
            )
        return np.asarray(result.logits.double().numpy())

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw head outputs (n, k) float64 before temperature, in input order."""
        items = validate_texts(texts)
        tokens = self._tokenizer(items)
        if tokens.truncated:
            if not self.truncated_total:
                warnings.warn(
                    f"{tokens.truncated} of {len(items)} texts are longer than max_length="
                    f"{self.manifest.max_length} tokens and were truncated (counted in "
                    f"truncated_total from now on)",
                    TextTooLongWarning,
                    stacklevel=2,
                )
            self.truncated_total += tokens.truncated
        out = np.zeros((len(items), len(self.labels)))
        for batch in tokens.batches(self.batch_size):
            out[batch.index] = self._forward(batch.input_ids, batch.attention_mask)
        return out

    def predict_proba(self, texts: Sequence[str], metadata: Metadata = None) -> np.ndarray:
        """(n, k) probabilities in ``labels`` order; ``metadata`` is not used."""
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        return softmax(self.logits(texts), self.temperature)


@register_backend("lora")
def _build(workflow: Workflow, **kwargs: Any) -> LoraClassifier:
    artifact_dir = kwargs.pop("artifact_dir", None)
    if artifact_dir is None:
        raise ModelError("the lora backend needs artifact_dir= (or the model spec lora:PATH)")
    clf = LoraClassifier.for_workflow(artifact_dir, workflow, **kwargs)
    if clf.labels != workflow.label_names:
        raise ModelError(
            f"the artifact's labels {clf.labels} differ from the workflow's "
            f"{workflow.label_names}; retrain the adapter for this workflow"
        )
    return clf
