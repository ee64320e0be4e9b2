"""``tunegate init``: write a starter tunegate.yaml (service desk, from a data file, or blank)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import JsonOpt, emit, out
from tunegate.config import blank_yaml, parse_workflow, starter_from_file, starter_yaml
from tunegate.errors import InputError


def init(
    path: Annotated[Path, typer.Argument(help="Where to write the file.")] = Path("tunegate.yaml"),
    from_file: Annotated[
        Path | None,
        typer.Option(
            "--from",
            help="A CSV, JSONL or Parquet file of labelled rows: the starter gets its labels, "
            "descriptions derived from their names and one data target per label.",
        ),
    ] = None,
    blank: Annotated[
        bool, typer.Option("--blank", help="A blank template with two placeholder labels.")
    ] = False,
    label_column: Annotated[
        str | None,
        typer.Option(
            "--label-column",
            help="With --from: the label column (default: label, "
            "category, intent, class, target or labels).",
        ),
    ] = None,
    text_column: Annotated[
        str | None,
        typer.Option(
            "--text-column",
            help="With --from: the text column (default: text, "
            "document, query, utterance, sentence, input or content).",
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="The workflow's name (default: the file's stem).")
    ] = None,
    task: Annotated[
        str,
        typer.Option("--task", help="What the texts are, for the instructions '<TASK> about'."),
    ] = "A request",
    encoder: Annotated[
        Path | None,
        typer.Option(
            "--encoder",
            help="A local Hugging Face encoder folder for model.encoder "
            "(default: the shipped all-MiniLM-L6-v2).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write a starter tunegate.yaml: the IT service-desk example, or (--from FILE) one for
    the labels of your data, or (--blank) a blank template. See docs/workflow.md."""
    if from_file is not None and blank:
        raise InputError("give --from FILE or --blank, not both")
    if (label_column or text_column) and from_file is None:
        raise InputError("--label-column and --text-column apply to --from FILE")
    if path.exists() and not force:
        raise InputError(f"{path} already exists; pass --force to overwrite it")
    enc: str | None = None
    if encoder is not None:
        if not (encoder / "config.json").is_file():
            raise InputError(
                f"--encoder {encoder}: not a Hugging Face encoder folder (no config.json)"
            )
        enc = str(encoder.expanduser().resolve())
    summary = None
    if from_file is not None:
        text, summary = starter_from_file(
            from_file,
            name=name,
            task=task,
            encoder=enc,
            label_column=label_column,
            text_column=text_column,
        )
    elif blank:
        text = blank_yaml(name=name or "my_workflow", encoder=enc)
    else:
        if enc is not None or name is not None:
            raise InputError("--encoder and --name apply to --from FILE or --blank")
        text = starter_yaml()
    parse_workflow(text, source=str(path))  # every starter must be valid
    path.write_text(text, encoding="utf-8")
    payload: dict[str, object] = {"written": str(path)}
    if summary is not None:
        payload |= {
            "labels": summary.counts,
            "label_column": summary.label_column,
            "text_column": summary.text_column,
            "unlabelled_rows": summary.unlabelled,
            "out_of_scope_rows": summary.out_of_scope,
            "bad_rows": summary.bad_rows,
        }

    def human() -> None:
        if summary is not None:
            out.print(
                f"{summary.file}: {len(summary.counts)} labels from column "
                f"{summary.label_column!r} ({sum(summary.counts.values())} rows"
                + (f", {summary.unlabelled} without a label or text" if summary.unlabelled else "")
                + (f", {summary.out_of_scope} out_of_scope" if summary.out_of_scope else "")
                + ")",
                highlight=False,
                markup=False,
            )
        out.print(
            f"wrote {path}; edit it, then run `tunegate ingest ...` (docs/workflow.md)",
            highlight=False,
            markup=False,
        )

    emit(payload, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.command("init")(init)
