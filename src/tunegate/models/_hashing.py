"""Content hashes of model files: what identifies an encoder's or an adapter's weights."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tunegate.errors import InputError

__all__ = ["WEIGHT_SUFFIXES", "dir_sha256", "file_sha256"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".onnx", ".pt")
"""File name endings that count as weights for :func:`dir_sha256`."""


def file_sha256(path: str | Path, *, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of one file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def dir_sha256(path: str | Path, *, weights_only: bool = True) -> str:
    """Hex SHA-256 over the files of a folder (relative names and contents, sorted).

    With ``weights_only`` only weight files (``.safetensors``, ``.bin``, ``.onnx``, ``.pt``)
    count, so that a copied README or cache file does not change a model's identity.
    """
    root = Path(path)
    if not root.is_dir():
        raise InputError(f"{root}: expected a folder to hash, found none")
    digest = hashlib.sha256()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    for file in files:
        if weights_only and not file.name.endswith(WEIGHT_SUFFIXES):
            continue
        digest.update(file.relative_to(root).as_posix().encode("utf-8"))
        digest.update(b"\0")
        digest.update(file_sha256(file).encode("ascii"))
    return digest.hexdigest()
