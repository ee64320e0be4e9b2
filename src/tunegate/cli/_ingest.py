"""``tunegate ingest`` and ``tunegate export``: records in and out of the store."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, err, load, out, store_for

__all__ = ["register"]

_SHOWN_PROBLEMS = 20


class KindArg(StrEnum):
    tickets = "tickets"
    decisions = "decisions"
    overrides = "overrides"
    examples = "examples"
    outputs = "outputs"


class ExportKindArg(StrEnum):
    tickets = "tickets"
    decisions = "decisions"
    overrides = "overrides"
    examples = "examples"


class FormatArg(StrEnum):
    jsonl = "jsonl"
    csv = "csv"
    parquet = "parquet"


class ShapeArg(StrEnum):
    auto = "auto"
    native = "native"
    openai_evals = "openai-evals"
    inspect = "inspect"
    hf = "hf"
    deepeval = "deepeval"
    promptfoo = "promptfoo"


def ingest(
    kind: Annotated[
        KindArg,
        typer.Argument(
            help="What the file holds (outputs: production logs of an answer/tool_call "
            "workflow, for `tunegate monitor`)."
        ),
    ],
    file: Annotated[
        Path,
        typer.Argument(
            help="A .jsonl, .csv or .parquet file (answer/tool_call workflows: also a .yaml "
            "or .json list of test cases)."
        ),
    ],
    fmt: Annotated[
        FormatArg | None, typer.Option("--format", help="Override the format the suffix implies.")
    ] = None,
    shape: Annotated[
        ShapeArg | None,
        typer.Option(
            "--shape",
            help="Row shape (examples). Classify workflows: native (default), openai-evals, "
            "inspect, hf. Answer/tool_call workflows: auto (default: told apart by the fields), "
            "native, deepeval, promptfoo, inspect, openai-evals.",
        ),
    ] = None,
    column_map: Annotated[
        list[str] | None,
        typer.Option("--map", help="Rename a column: SRC=DST (repeatable), e.g. Document=text."),
    ] = None,
    quarantine_dir: Annotated[
        Path | None,
        typer.Option("--quarantine-dir", help="Where bad rows go (default: next to the store)."),
    ] = None,
    allow_quarantine: Annotated[
        bool, typer.Option("--allow-quarantine", help="Exit 0 even when rows were quarantined.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per transaction.")
    ] = 5000,
    label_names: Annotated[
        list[str] | None,
        typer.Option(
            "--label-names",
            help="With --shape hf: the data set's class names in index order (NAME,NAME,...; "
            "repeatable), which integer labels index. Without it an integer label is a bad row.",
        ),
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Validate a file and add its records to the store; bad rows are quarantined.

    Tickets without created_at are dated now; overrides need their ticket in the store.
    Exit code 1 when any row was quarantined (unless --allow-quarantine).
    """
    from tunegate.io import ingest_file

    workflow = load(config)
    store = store_for(workflow, config)
    try:
        report = ingest_file(
            store,
            kind.value,
            file,
            workflow=workflow,
            fmt=fmt.value if fmt else None,
            shape=shape.value if shape else None,
            column_map=column_map or None,
            quarantine_dir=quarantine_dir,
            batch_size=batch_size,
            label_names=label_names,
        )
    finally:
        store.close()

    def human() -> None:
        out.print(
            f"{report.file}: {report.rows} rows -> [green]{report.added} added[/green], "
            f"{report.existing} already stored, "
            f"{'[red]' if report.quarantined else ''}{report.quarantined} quarantined"
            f"{'[/red]' if report.quarantined else ''} "
            f"({report.seconds:.2f} s, {report.rows_per_s:,.0f} rows/s)",
            highlight=False,
            soft_wrap=True,
        )
        for problem in report.problems[:_SHOWN_PROBLEMS]:
            err.print(f"  {problem}", markup=False, highlight=False, soft_wrap=True)
        if report.quarantined > _SHOWN_PROBLEMS:
            err.print(f"  ... and {report.quarantined - _SHOWN_PROBLEMS} more", highlight=False)
        if report.quarantine_file:
            err.print(
                f"bad rows written to {report.quarantine_file}", highlight=False, soft_wrap=True
            )

    payload = report.model_dump(mode="json")
    payload["rows_per_s"] = round(report.rows_per_s, 1)
    emit(payload, as_json=as_json, human=human)
    if report.quarantined and not allow_quarantine:
        raise typer.Exit(1)


def export(
    kind: Annotated[ExportKindArg, typer.Argument(help="Which records to export.")],
    file: Annotated[Path, typer.Argument(help="Target .jsonl, .csv or .parquet file.")],
    fmt: Annotated[
        FormatArg | None, typer.Option("--format", help="Override the format the suffix implies.")
    ] = None,
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Write every stored record of a kind to a file that `tunegate ingest` reads back."""
    from tunegate.io import export_file

    workflow = load(config)
    store = store_for(workflow, config)
    try:
        count = export_file(store, kind.value, file, fmt=fmt.value if fmt else None)
    finally:
        store.close()
    emit(
        {"kind": kind.value, "file": str(file), "records": count},
        as_json=as_json,
        human=lambda: out.print(f"wrote {count} {kind.value} to {file}", highlight=False),
    )


def register(app: typer.Typer) -> None:
    app.command("ingest")(ingest)
    app.command("export")(export)
