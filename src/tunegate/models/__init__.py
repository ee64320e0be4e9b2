"""Models behind one :class:`Classifier` interface, and the router.

Backends (registered by name, see :func:`build_classifier`): ``zero-shot``
(:class:`ZeroShotClassifier`), ``knn`` (:class:`KNNClassifier`), ``rules``
(:class:`RulesClassifier`), ``lora`` (:class:`LoraClassifier`). :class:`Router` chains them.
Embeddings come from :func:`get_encoder` (ONNX Runtime int8 when available, else PyTorch).
The LoRA method (its classifier, model builders and artifact format) lives in
:mod:`tunegate.lora`; its public names are re-exported here on first access, so that importing
this package does not import that one (imports flow from ``lora`` to ``models``).
"""

from __future__ import annotations

import importlib
import typing

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
from tunegate.models._router import Router, make_decision
from tunegate.models._rules import RulesClassifier
from tunegate.models._versions import (
    load_model_version,
    load_prompt_classifier,
    prompt_backend_check,
    prompt_version,
    prompt_version_id,
)
from tunegate.models._zeroshot import (
    ZeroShotClassifier,
    fit_temperature_nll,
    zero_shot_version_id,
)

if typing.TYPE_CHECKING:
    from tunegate.lora.artifact import (
        ArtifactManifest,
        read_manifest,
        save_lora_artifact,
        write_manifest,
    )
    from tunegate.lora.classifier import LoraClassifier
    from tunegate.lora.model import (
        build_lora_model,
        load_sequence_classifier,
        lora_modules_to_save,
    )

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
    "load_prompt_classifier",
    "load_sequence_classifier",
    "lora_modules_to_save",
    "make_decision",
    "prompt_backend_check",
    "prompt_version",
    "prompt_version_id",
    "read_manifest",
    "register_backend",
    "save_lora_artifact",
    "softmax",
    "validate_texts",
    "write_manifest",
    "zero_shot_version_id",
]

_FROM_LORA = {
    "ArtifactManifest": "tunegate.lora.artifact",
    "LoraClassifier": "tunegate.lora.classifier",
    "build_lora_model": "tunegate.lora.model",
    "load_sequence_classifier": "tunegate.lora.model",
    "lora_modules_to_save": "tunegate.lora.model",
    "read_manifest": "tunegate.lora.artifact",
    "save_lora_artifact": "tunegate.lora.artifact",
    "write_manifest": "tunegate.lora.artifact",
}


def __getattr__(name: str) -> typing.Any:
    """The LoRA names of ``__all__``, imported from :mod:`tunegate.lora` on first access."""
    module = _FROM_LORA.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
