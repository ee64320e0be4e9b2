"""Loaders and exporters: JSONL, CSV and Parquet; OpenAI Evals, Inspect and Hugging Face
shapes; for answer and tool_call workflows, DeepEval, promptfoo, Inspect and OpenAI Evals
samples (``_generative``) and production logs (``_generative_log``); validation into
records; quarantine of bad rows. See docs/store.md and docs/generative.md."""

from __future__ import annotations

from tunegate.io._export import export_file
from tunegate.io._generative import (
    GENERATIVE_SHAPES,
    UNSUPPORTED_ASSERTS,
    GenerativeShape,
    build_generative,
    detect_generative_shape,
    generative_fields,
    ingest_generative,
    read_generative,
    stored_generative_examples,
)
from tunegate.io._generative_log import (
    LOG_ENTRY_FIELDS,
    ingest_generative_log,
    log_entry_from_row,
    read_generative_log,
    stored_generative_log,
)
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
    "GENERATIVE_SHAPES",
    "KINDS",
    "LABEL_COLUMNS",
    "LOG_ENTRY_FIELDS",
    "SHAPES",
    "TEXT_COLUMNS",
    "UNSUPPORTED_ASSERTS",
    "GenerativeShape",
    "IngestReport",
    "Kind",
    "LabelSummary",
    "Problem",
    "RawRow",
    "RowError",
    "Shape",
    "TicketFile",
    "apply_shape",
    "build_generative",
    "build_record",
    "detect_format",
    "detect_generative_shape",
    "export_file",
    "generative_fields",
    "ingest_file",
    "ingest_generative",
    "ingest_generative_log",
    "iter_rows",
    "log_entry_from_row",
    "parse_column_map",
    "parse_tickets",
    "quarantine_path",
    "read_generative",
    "read_generative_log",
    "read_jsonl",
    "read_label_counts",
    "read_records",
    "stored_generative_examples",
    "stored_generative_log",
    "write_jsonl",
]
