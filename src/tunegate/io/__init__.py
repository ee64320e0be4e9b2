"""Loaders and exporters: JSONL, CSV and Parquet; OpenAI Evals, Inspect and Hugging Face
shapes; validation into records; quarantine of bad rows. See docs/store.md."""

from __future__ import annotations

from tunegate.io._export import export_file
from tunegate.io._ingest import (
    DEFAULT_BATCH_SIZE,
    KINDS,
    IngestReport,
    Kind,
    Problem,
    ingest_file,
    quarantine_path,
    read_records,
)
from tunegate.io._jsonl import read_jsonl, write_jsonl
from tunegate.io._labels import LABEL_COLUMNS, TEXT_COLUMNS, LabelSummary, read_label_counts
from tunegate.io._readers import RawRow, detect_format, iter_rows
from tunegate.io._rows import build_record
from tunegate.io._shapes import SHAPES, RowError, Shape, apply_shape, parse_column_map
from tunegate.io._tickets import TicketFile, parse_tickets

__all__ = [
    "DEFAULT_BATCH_SIZE",
    "KINDS",
    "LABEL_COLUMNS",
    "SHAPES",
    "TEXT_COLUMNS",
    "IngestReport",
    "Kind",
    "LabelSummary",
    "Problem",
    "RawRow",
    "RowError",
    "Shape",
    "TicketFile",
    "apply_shape",
    "build_record",
    "detect_format",
    "export_file",
    "ingest_file",
    "iter_rows",
    "parse_column_map",
    "parse_tickets",
    "quarantine_path",
    "read_jsonl",
    "read_label_counts",
    "read_records",
    "write_jsonl",
]
