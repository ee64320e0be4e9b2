"""Models behind one :class:`Classifier` interface, and the router.

Backends (registered by name, see :func:`build_classifier`): ``zero-shot``
(:class:`ZeroShotClassifier`), ``knn`` (:class:`KNNClassifier`), ``rules``
(:class:`RulesClassifier`), ``lora`` (:class:`LoraClassifier`). :class:`Router` chains them.
Embeddings come from :func:`get_encoder` (ONNX Runtime int8 when available, else PyTorch).
The LoRA artifact format lives in :mod:`tunegate.models.artifact`.
"""

from __future__ import annotations

from tunegate.models._base import (
    Classifier,
    DuplicateBackendError,
    backends,
    build_classifier,
    register_backend,
    softmax,
)
from tunegate.models._encoder import (
    Encoder,
    OnnxEncoder,
    TextTooLongWarning,
    TorchEncoder,
    clear_encoder_cache,
    default_encoder_path,
    get_encoder,
    validate_texts,
)
from tunegate.models._knn import KNNClassifier
from tunegate.models._lora import (
    LoraClassifier,
    build_lora_model,
    load_sequence_classifier,
    lora_modules_to_save,
    save_lora_artifact,
)
from tunegate.models._router import Router, make_decision
from tunegate.models._rules import RulesClassifier
from tunegate.models._versions import load_model_version
from tunegate.models._zeroshot import ZeroShotClassifier, fit_temperature_nll
from tunegate.models.artifact import ArtifactManifest, read_manifest, write_manifest

__all__ = [
    "ArtifactManifest",
    "Classifier",
    "DuplicateBackendError",
    "Encoder",
    "KNNClassifier",
    "LoraClassifier",
    "OnnxEncoder",
    "Router",
    "RulesClassifier",
    "TextTooLongWarning",
    "TorchEncoder",
    "ZeroShotClassifier",
    "backends",
    "build_classifier",
    "build_lora_model",
    "clear_encoder_cache",
    "default_encoder_path",
    "fit_temperature_nll",
    "get_encoder",
    "load_model_version",
    "load_sequence_classifier",
    "lora_modules_to_save",
    "make_decision",
    "read_manifest",
    "register_backend",
    "save_lora_artifact",
    "softmax",
    "validate_texts",
    "write_manifest",
]
