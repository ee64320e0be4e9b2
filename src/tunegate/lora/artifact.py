"""The LoRA artifact folder format, ``tunegate-lora/1``.

An artifact is a folder::

    <artifact>/
      manifest.json     ArtifactManifest (this module)
      adapter/          PEFT ``save_pretrained`` output: adapter weights (safetensors) plus the
                        classification head and every module not in the base checkpoint,
                        saved through ``modules_to_save`` so that a reload is exact

The manifest records what is needed to rebuild and audit the model: the label order, the base
encoder and a hash of its weights, the training-data hash, the training config, metrics, the
fitted temperature, the token budget, the seed and library versions.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
from datetime import datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from tunegate._optional import require
from tunegate.errors import ModelError
from tunegate.models._hashing import dir_sha256, file_sha256
from tunegate.records import utcnow

__all__ = [
    "ADAPTER_DIR",
    "ARTIFACT_FORMAT",
    "MANIFEST_NAME",
    "ArtifactManifest",
    "dir_sha256",
    "export_merged_encoder",
    "file_sha256",
    "library_versions",
    "read_manifest",
    "save_lora_artifact",
    "write_artifact",
    "write_manifest",
]

ARTIFACT_FORMAT = "tunegate-lora/1"
MERGED_DIR = "merged"
"""Where :func:`export_merged_encoder` writes an artifact's merged encoder by default."""
_MERGED_STAMP = "tunegate-merged.json"
MANIFEST_NAME = "manifest.json"
ADAPTER_DIR = "adapter"


class ArtifactManifest(BaseModel):
    """``manifest.json`` of a LoRA artifact folder."""

    model_config = ConfigDict(extra="forbid", frozen=True, protected_namespaces=())

    format: str = ARTIFACT_FORMAT
    """Artifact format and version; readers refuse formats they do not know."""
    labels: list[str] = Field(min_length=2)
    """Class names in column order of the classifier head (the workflow's label order)."""
    base_model: str
    """Folder (or name) of the base encoder the adapter was trained on."""
    base_model_hash: str = ""
    """SHA-256 over the base encoder's weight files (:func:`dir_sha256`); checked on load."""
    dataset_hash: str = ""
    """Hash of the training dataset (see ``tunegate.train.build_dataset``)."""
    config: dict[str, Any] = Field(default_factory=dict)
    """Training configuration (LoRA rank, alpha, target modules, epochs, learning rate...)."""
    metrics: dict[str, Any] = Field(default_factory=dict)
    """Validation / calibration metrics recorded at training time."""
    temperature: float = Field(default=1.0, gt=0.0)
    """Softmax temperature fitted on the calibration split (logits are divided by it)."""
    max_length: int = Field(default=128, ge=8, le=512)
    """Tokens per text used in training; inference truncates to the same budget."""
    seed: int | None = None
    """Training seed."""
    library_versions: dict[str, str] = Field(default_factory=dict)
    """Versions of torch, transformers, peft, python... at training time."""
    created_at: datetime = Field(default_factory=utcnow)
    """When the artifact was written (UTC)."""

    @field_validator("format")
    @classmethod
    def _known_format(cls, value: str) -> str:
        if value != ARTIFACT_FORMAT:
            raise ValueError(
                f"unknown artifact format {value!r}; this tunegate reads "
                f"{ARTIFACT_FORMAT!r} (upgrade tunegate or re-export the artifact)"
            )
        return value

    @field_validator("labels")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"labels must be unique, got {value}")
        return value


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries an artifact depends on (missing ones omitted)."""
    versions = {"python": platform.python_version()}
    for dist in ("torch", "transformers", "peft", "safetensors", "tunegate"):
        try:
            versions[dist] = importlib_metadata.version(dist)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


def write_manifest(directory: str | Path, manifest: BaseModel) -> Path:
    """Write ``manifest.json`` (an :class:`ArtifactManifest`, or the manifest of another
    artifact format) into ``directory`` (created if needed); returns its path."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / MANIFEST_NAME
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(
        json.dumps(manifest.model_dump(mode="json"), indent=2, sort_keys=True) + "\n",
        encoding="utf-8",
    )
    tmp.replace(target)
    return target


def read_manifest(directory: str | Path) -> ArtifactManifest:
    """Read and validate ``manifest.json`` of an artifact folder.

    Raises :class:`~tunegate.errors.ModelError` when the file is missing or invalid.
    """
    target = Path(directory) / MANIFEST_NAME
    if not target.is_file():
        raise ModelError(
            f"{directory}: not a tunegate LoRA artifact (no {MANIFEST_NAME}); "
            f"expected a folder written by `tunegate finetune` or "
            f"save_lora_artifact()"
        )
    try:
        data = json.loads(target.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{target}: not valid JSON ({exc})") from exc
    try:
        return ArtifactManifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: "
            f"{err['msg'].removeprefix('Value error, ')}"
            for err in exc.errors()
        )
        raise ModelError(f"{target}: invalid manifest: {problems}") from None


def write_artifact(out_dir: str | Path, model: Any, manifest: BaseModel) -> Path:
    """Write a trained PEFT ``model`` and its manifest into ``out_dir``, replacing any adapter
    there: the adapter is saved next to it first and swapped into place, the manifest last."""
    out = Path(out_dir)
    adapter_tmp = out / (ADAPTER_DIR + ".tmp")
    if adapter_tmp.exists():
        shutil.rmtree(adapter_tmp)
    model.save_pretrained(str(adapter_tmp), safe_serialization=True)
    if (out / ADAPTER_DIR).exists():
        shutil.rmtree(out / ADAPTER_DIR)
    os.replace(adapter_tmp, out / ADAPTER_DIR)
    write_manifest(out, manifest)
    return out


def save_lora_artifact(model: Any, out_dir: str | Path, manifest: ArtifactManifest) -> Path:
    """Write a ``tunegate-lora/1`` artifact: ``adapter/`` (PEFT) and ``manifest.json``.

    Fills ``base_model_hash`` and ``library_versions`` when the manifest leaves them empty.
    Refuses a model whose head width differs from ``manifest.labels``, or whose new modules
    (head, missing pooler) would not be saved.
    """
    from tunegate.lora.model import load_sequence_classifier

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


def export_merged_encoder(artifact_dir: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write the fine-tuned encoder of a LoRA artifact as a plain Hugging Face encoder folder:
    the adapter merged into the base encoder's weights (the classification head left out),
    with the base's tokenizer. Any encoder consumer can then load it, e.g.
    ``tunegate probe --encoder`` (the encoder-preservation check) or ``model.encoder``.

    ``out_dir`` defaults to ``<artifact>/merged``. The folder is stamped with the adapter's
    hash; an up-to-date export is reused, a stale one is replaced. Raises
    :class:`~tunegate.errors.ModelError` when the folder is not a LoRA artifact.
    """
    from tunegate.lora.classifier import LoraClassifier
    from tunegate.lora.model import merged_model

    transformers = require("transformers", purpose="exporting a merged encoder")
    folder = Path(artifact_dir)
    read_manifest(folder)  # a clear error for a folder that is not an artifact
    adapter_hash = dir_sha256(folder / ADAPTER_DIR)
    out = Path(out_dir) if out_dir is not None else folder / MERGED_DIR
    stamp = out / _MERGED_STAMP
    if stamp.is_file() and (out / "config.json").is_file():
        try:
            if json.loads(stamp.read_text(encoding="utf-8")).get("adapter_sha256") == adapter_hash:
                return out
        except (OSError, ValueError):
            pass  # unreadable stamp: export again
    classifier = LoraClassifier.load(folder, backend="torch")
    encoder = merged_model(classifier.model).base_model  # the backbone, without the head
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    encoder.save_pretrained(str(tmp), safe_serialization=True)
    transformers.AutoTokenizer.from_pretrained(classifier.base_model).save_pretrained(str(tmp))
    (tmp / _MERGED_STAMP).write_text(
        json.dumps({"adapter_sha256": adapter_hash, "artifact": folder.name}, indent=2),
        encoding="utf-8",
    )
    if out.exists():
        shutil.rmtree(out)
    os.replace(tmp, out)
    return out
