"""LoRA-adapter classifiers: an encoder with a sequence-classification head and a PEFT adapter.

Training lives in ``tunegate.train``; this module builds the model (:func:`build_lora_model`),
saves an artifact folder (:func:`save_lora_artifact`, format in ``tunegate.models.artifact``)
and serves it (:class:`LoraClassifier`). Every module that the base checkpoint does not
provide (the classification head, and the BERT pooler when a sentence-transformers
checkpoint has none) is trained and saved through PEFT's ``modules_to_save``, so a reloaded
adapter predicts exactly like the saved one.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tunegate._optional import require
from tunegate.config import TrainingSettings, Workflow
from tunegate.errors import ModelError
from tunegate.models._base import Metadata, register_backend, softmax
from tunegate.models._encoder import (
    TextTooLongWarning,
    _quiet_transformers,
    _TokenizerWrap,
    default_encoder_path,
    validate_texts,
)
from tunegate.models.artifact import (
    ADAPTER_DIR,
    ArtifactManifest,
    dir_sha256,
    library_versions,
    read_manifest,
    write_manifest,
)
from tunegate.records import ModelKind

__all__ = [
    "LoraClassifier",
    "build_lora_model",
    "load_sequence_classifier",
    "lora_modules_to_save",
    "save_lora_artifact",
]


def load_sequence_classifier(base_model: str, labels: Sequence[str]) -> tuple[Any, list[str]]:
    """``AutoModelForSequenceClassification`` on ``base_model`` with ``len(labels)`` outputs.

    Returns ``(model, new_modules)``: ``new_modules`` are the dotted module names whose
    weights were missing from the checkpoint (newly initialized, so they must be trained and
    saved with the adapter).
    """
    transformers = require("transformers", purpose="LoRA classifiers")
    labels = list(labels)
    try:
        with _quiet_transformers():
            model, info = transformers.AutoModelForSequenceClassification.from_pretrained(
                base_model,
                num_labels=len(labels),
                output_loading_info=True,
                id2label=dict(enumerate(labels)),
                label2id={y: i for i, y in enumerate(labels)},
            )
    except Exception as exc:
        raise ModelError(f"could not load {base_model} as a sequence classifier: {exc}") from exc
    missing = sorted({key.rsplit(".", 1)[0] for key in info.get("missing_keys", ())})
    return model, missing


def lora_modules_to_save(base_model: str, labels: Sequence[str]) -> list[str]:
    """Modules a LoRA adapter on ``base_model`` must save in full (head + missing modules)."""
    _, missing = load_sequence_classifier(base_model, labels)
    return missing


def build_lora_model(
    base_model: str,
    labels: Sequence[str],
    training: TrainingSettings | None = None,
    *,
    seed: int = 0,
) -> Any:
    """A ``PeftModel`` for sequence classification, ready to train.

    LoRA on ``training.target_modules`` with rank/alpha/dropout from ``training``; the head
    and any module missing from the checkpoint go into ``modules_to_save``. Seeded, so the
    same arguments give the same initial weights.
    """
    torch = require("torch")
    peft = require("peft", purpose="LoRA adapters")
    training = training or TrainingSettings()
    torch.manual_seed(seed)
    model, missing = load_sequence_classifier(base_model, labels)
    config = peft.LoraConfig(
        task_type=peft.TaskType.SEQ_CLS,
        r=training.lora_r,
        lora_alpha=training.lora_alpha,
        lora_dropout=training.lora_dropout,
        target_modules=list(training.target_modules),
        modules_to_save=missing,
    )
    return peft.get_peft_model(model, config)


def save_lora_artifact(model: Any, out_dir: str | Path, manifest: ArtifactManifest) -> Path:
    """Write a ``tunegate-lora/1`` artifact: ``adapter/`` (PEFT) and ``manifest.json``.

    Fills ``base_model_hash`` and ``library_versions`` when the manifest leaves them empty.
    Refuses a model whose head width differs from ``manifest.labels``, or whose new modules
    (head, missing pooler) would not be saved.
    """
    peft = require("peft", purpose="LoRA adapters")
    if not isinstance(model, peft.PeftModel):
        raise ModelError(
            f"save_lora_artifact needs a peft.PeftModel, got "
            f"{type(model).__name__}; build it with build_lora_model()"
        )
    num_labels = int(getattr(model.config, "num_labels", -1))
    if num_labels != len(manifest.labels):
        raise ModelError(
            f"the model has {num_labels} outputs but the manifest lists "
            f"{len(manifest.labels)} labels"
        )
    saved = set(getattr(model.peft_config["default"], "modules_to_save", None) or [])
    _, missing = load_sequence_classifier(manifest.base_model, manifest.labels)
    unsaved = [
        m for m in missing if not any(m == s or m.endswith("." + s) or s.endswith(m) for s in saved)
    ]
    if unsaved:
        raise ModelError(
            f"modules {unsaved} are not in the base checkpoint and would not be "
            f"saved; add them to LoraConfig.modules_to_save (build_lora_model "
            f"does this)"
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out / ADAPTER_DIR))
    updates: dict[str, Any] = {}
    if not manifest.base_model_hash:
        updates["base_model_hash"] = dir_sha256(manifest.base_model)
    if not manifest.library_versions:
        updates["library_versions"] = library_versions()
    write_manifest(out, manifest.model_copy(update=updates))
    return out


def _resolve_base(manifest: ArtifactManifest, check_hash: bool) -> str:
    candidates = [manifest.base_model]
    if manifest.base_model_hash:
        with contextlib.suppress(ImportError):
            candidates.append(default_encoder_path())
    for candidate in candidates:
        if not Path(candidate).is_dir():
            continue
        if not check_hash or not manifest.base_model_hash:
            return candidate
        if dir_sha256(candidate) == manifest.base_model_hash:
            return candidate
    raise ModelError(
        f"base model of the artifact not found: {manifest.base_model!r} is "
        f"missing or its weights do not match base_model_hash "
        f"{manifest.base_model_hash[:12]}...; install that encoder, or pass "
        f"check_hash=False to load anyway"
    )


class LoraClassifier:
    """Serves a LoRA artifact: softmax(logits / manifest.temperature) in manifest label order."""

    kind = ModelKind.LORA

    def __init__(
        self,
        model: Any,
        manifest: ArtifactManifest,
        base_model: str,
        *,
        version: str,
        batch_size: int = 32,
    ) -> None:
        self.model = model.eval()
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.temperature = manifest.temperature
        self.version = version
        self.batch_size = batch_size
        self.base_model = base_model
        self._tokenizer = _TokenizerWrap(base_model, manifest.max_length)
        self.truncated_total = 0
        """Texts truncated to ``manifest.max_length`` so far (warned once)."""

    @classmethod
    def load(
        cls, artifact_dir: str | Path, *, batch_size: int = 32, check_hash: bool = True
    ) -> LoraClassifier:
        """Load an artifact folder written by :func:`save_lora_artifact`."""
        peft = require("peft", purpose="LoRA adapters")
        folder = Path(artifact_dir)
        manifest = read_manifest(folder)
        adapter = folder / ADAPTER_DIR
        if not (adapter / "adapter_config.json").is_file():
            raise ModelError(
                f"{folder}: no {ADAPTER_DIR}/adapter_config.json; the artifact is "
                f"incomplete (re-save it with save_lora_artifact)"
            )
        base = _resolve_base(manifest, check_hash)
        model, _ = load_sequence_classifier(base, manifest.labels)
        try:
            with _quiet_transformers():
                peft_model = peft.PeftModel.from_pretrained(model, str(adapter))
        except Exception as exc:
            raise ModelError(f"could not load the adapter in {adapter}: {exc}") from exc
        version = f"lora-{dir_sha256(adapter)[:12]}"
        return cls(peft_model, manifest, base, version=version, batch_size=batch_size)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw head outputs (n, k) float64 before temperature, in input order."""
        torch = require("torch")
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
        with torch.inference_mode():
            for batch in tokens.batches(self.batch_size):
                result = self.model(
                    input_ids=torch.from_numpy(batch.input_ids),
                    attention_mask=torch.from_numpy(batch.attention_mask),
                )
                out[batch.index] = result.logits.double().numpy()
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
    clf = LoraClassifier.load(artifact_dir, **kwargs)
    if clf.labels != workflow.label_names:
        raise ModelError(
            f"the artifact's labels {clf.labels} differ from the workflow's "
            f"{workflow.label_names}; retrain the adapter for this workflow"
        )
    return clf
