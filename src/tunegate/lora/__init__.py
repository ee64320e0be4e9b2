"""LoRA fine-tuning of the encoder, as one method folder (the layout of peft's ``tuners/lora``).

- :mod:`~tunegate.lora.config`: the recipe (:class:`LoraRecipe`) and the loop's constants;
- :mod:`~tunegate.lora.model`: the PEFT model on the encoder (:func:`build_lora_model`);
- :mod:`~tunegate.lora.data` and :mod:`~tunegate.lora.batching`: the split, length buckets,
  micro-batches and padded widths;
- :mod:`~tunegate.lora.prefix` and :mod:`~tunegate.lora.memory`: the frozen-prefix cache and
  heap trimming (memory and time on CPU);
- :mod:`~tunegate.lora.head`, :mod:`~tunegate.lora.state`, :mod:`~tunegate.lora.loop` and
  :mod:`~tunegate.lora.calibration`: the training loop (:func:`train_adapter`) by phase;
- :mod:`~tunegate.lora.artifact`: the artifact folder (``tunegate-lora/1``);
- :mod:`~tunegate.lora.classifier` and :mod:`~tunegate.lora.onnx`: serving
  (:class:`LoraClassifier`, the ``lora`` model backend) on PyTorch or ONNX Runtime;
- :mod:`~tunegate.lora.causal` (classification) and :mod:`~tunegate.lora.sft` (supervised
  replies: :func:`train_sft_adapter`) on the local causal LM, sharing
  :mod:`~tunegate.lora.causal_steps`; :mod:`~tunegate.lora.gguf_adapter`
  (:func:`export_gguf_adapter`) writes such an adapter for llama.cpp.

Imports flow one way: this package uses :mod:`tunegate.models` (the classifier interface and
the encoders); ``tunegate.models`` reaches it only lazily (the backend registry and its
re-exports), and :mod:`tunegate.train` builds data sets and seed sweeps on top of it
(:func:`tunegate.train.finetune`). PyTorch is imported on first use, not by this package.
"""

from __future__ import annotations

from tunegate.lora.artifact import (
    ADAPTER_DIR,
    ARTIFACT_FORMAT,
    ArtifactManifest,
    export_merged_encoder,
    read_manifest,
    save_lora_artifact,
    write_manifest,
)
from tunegate.lora.classifier import LoraBackend, LoraClassifier
from tunegate.lora.config import HEAD_LR_MULTIPLIER, LoraRecipe
from tunegate.lora.data import Splits, split_examples
from tunegate.lora.gguf_adapter import export_gguf_adapter
from tunegate.lora.loop import train_adapter
from tunegate.lora.model import (
    build_lora_model,
    load_sequence_classifier,
    lora_modules_to_save,
    merged_model,
)
from tunegate.lora.sft import SftManifest, SftPair, SftResult, SftSettings, train_sft_adapter
from tunegate.lora.state import CHECKPOINT_DIR, TrainingState

__all__ = [
    "ADAPTER_DIR",
    "ARTIFACT_FORMAT",
    "CHECKPOINT_DIR",
    "HEAD_LR_MULTIPLIER",
    "ArtifactManifest",
    "LoraBackend",
    "LoraClassifier",
    "LoraRecipe",
    "SftManifest",
    "SftPair",
    "SftResult",
    "SftSettings",
    "Splits",
    "TrainingState",
    "build_lora_model",
    "export_gguf_adapter",
    "export_merged_encoder",
    "load_sequence_classifier",
    "lora_modules_to_save",
    "merged_model",
    "read_manifest",
    "save_lora_artifact",
    "split_examples",
    "train_adapter",
    "train_sft_adapter",
    "write_manifest",
]
