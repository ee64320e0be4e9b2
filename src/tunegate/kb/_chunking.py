"""Chunking: a version's text split by Markdown heading first, then into word windows."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["TextChunk", "chunk_text", "chunking_key"]

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")


@dataclass(frozen=True)
class TextChunk:
    """One chunk: its position in the version, the heading path above it, and its words."""

    position: int
    heading: str
    """The Markdown headings above the chunk, outermost first, joined by `` > ``."""
    text: str


def chunking_key(size: int, overlap: int) -> str:
    """The name chunks are stored under (``words:SIZE:OVERLAP``)."""
    return f"words:{size}:{overlap}"


def _sections(text: str) -> list[tuple[str, list[str]]]:
    sections: list[tuple[str, list[str]]] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []

    def close() -> None:
        words = " ".join(body).split()
        if words:
            sections.append((" > ".join(t for _, t in path), words))
        body.clear()

    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        match = None if fenced else _HEADING.match(line)
        if match:
            close()
            level = len(match.group(1))
            path[:] = [(lv, t) for lv, t in path if lv < level]
            path.append((level, match.group(2)))
        else:
            body.append(line)
    close()
    return sections


def chunk_text(text: str, *, size: int, overlap: int) -> list[TextChunk]:
    """Split ``text`` into chunks of at most ``size`` whitespace-separated words.

    Markdown headings (``#`` to ``######``, outside fenced code) cut first: a chunk never
    spans two sections, and carries its heading path. A section longer than ``size`` words is
    cut into windows starting every ``size - overlap`` words (the last window ends at the
    section's end). Whitespace inside a chunk is normalized to single spaces.
    """
    if size < 1 or not 0 <= overlap < size:
        raise ValueError(f"need size >= 1 and 0 <= overlap < size, got {size}, {overlap}")
    chunks: list[TextChunk] = []
    step = size - overlap
    for heading, words in _sections(text):
        start = 0
        while True:
            window = words[start : start + size]
            chunks.append(TextChunk(len(chunks), heading, " ".join(window)))
            if start + size >= len(words):
                break
            start += step
    return chunks
