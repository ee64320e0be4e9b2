"""``tunegate kb``: ingest versioned documents, search them as of a date, list versions."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for
from tunegate.errors import InputError

__all__ = ["register"]

kb_app = typer.Typer(
    help="The knowledge base: versioned documents with effective dates, hybrid retrieval.",
    no_args_is_help=True,
)


def _when(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            f"--as-of {value!r} is not a date; give YYYY-MM-DD or an ISO timestamp"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


@kb_app.command("ingest")
def ingest_cmd(
    path: Annotated[Path, typer.Argument(help="A folder of Markdown files or a JSONL file.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Store document versions (a new version supersedes the previous one at its effective
    date), then chunk and embed them with the workflow's encoder."""
    from tunegate.kb import KnowledgeBase

    workflow = load(config)
    kb = KnowledgeBase.from_workflow(store_for(workflow, config), workflow)
    report = kb.ingest_path(path)

    def human() -> None:
        out.print(
            f"{report.versions_added} versions added, {report.versions_existing} already stored "
            f"({report.documents} documents); {report.chunks_added} chunks, "
            f"{report.chunks_embedded} embedded",
            highlight=False,
        )

    emit(report.to_dict(), as_json=as_json, human=human)


@kb_app.command("search")
def search_cmd(
    query: Annotated[str, typer.Argument(help="The question.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Search the versions in force at this date (default now)."),
    ] = None,
    top_k: Annotated[
        int | None, typer.Option("--top-k", min=1, help="Hits to return (default retrieval.top_k).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hybrid search (BM25 + embeddings) of the versions in force at --as-of; every hit says
    its document, version, scores and whether that version is still current."""
    from tunegate.kb import KnowledgeBase

    workflow = load(config)
    kb = KnowledgeBase.from_workflow(store_for(workflow, config), workflow)
    result = kb.search(query, as_of=_when(as_of), top_k=top_k)

    def human() -> None:
        if not result.hits:
            out.print(f"no chunk in force at {result.as_of:%Y-%m-%d} matches", highlight=False)
        for h in result.hits:
            state = f"STALE (current: {h.current_version or 'withdrawn'})" if h.stale else "current"
            out.print(
                f"{h.rank}. [bold]{h.doc_id}[/bold] {h.version} #{h.position} "
                f"score {h.score:.4f}  {state}  {h.heading or h.title}",
                highlight=False,
            )
            out.print(f"   {h.text[:160]}", highlight=False, markup=False)

    emit(result.to_dict(), as_json=as_json, human=human)


@kb_app.command("versions")
def versions_cmd(
    doc_id: Annotated[str, typer.Argument(help="The document id.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """A document's versions with the time each was in force."""
    from tunegate.kb import KnowledgeBase

    workflow = load(config)
    kb = KnowledgeBase.from_workflow(store_for(workflow, config), workflow)
    versions = kb.versions(doc_id)
    rows = [
        {
            "doc_id": v.doc_id,
            "version": v.version,
            "title": v.title,
            "effective_from": v.effective_from.isoformat(),
            "effective_until": None if v.effective_until is None else v.effective_until.isoformat(),
            "current": v.in_force_at(datetime.now(UTC)),
            "source": v.source,
        }
        for v in versions
    ]

    def human() -> None:
        for r in rows:
            until = str(r["effective_until"] or "now")
            mark = "  (current)" if r["current"] else ""
            start = str(r["effective_from"])
            out.print(
                f"{r['version']}  {start[:10]} .. {until[:10]}  {r['title']}{mark}",
                highlight=False,
            )

    emit(rows, as_json=as_json, human=human)


def register(app: typer.Typer) -> None:
    app.add_typer(kb_app, name="kb")
