"""``tunegate serve`` and ``tunegate token create|list|revoke``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from tunegate.cli._common import ConfigOpt, JsonOpt, emit, load, out, store_for

token_app = typer.Typer(
    help="Create, list and revoke API tokens (stored as SHA-256 hashes).", no_args_is_help=True
)


def serve(
    config: ConfigOpt = Path("tunegate.yaml"),
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    log_level: Annotated[str, typer.Option(help="Uvicorn log level.")] = "info",
    highlights: Annotated[
        str,
        typer.Option(
            help="Queue word highlights: occlusion (cheap, any model), attribution "
            "(Integrated Gradients, zero-shot/LoRA), or off."
        ),
    ] = "occlusion",
    secure_cookies: Annotated[
        bool,
        typer.Option(
            "--secure-cookies",
            help="Mark the session cookies Secure (browsers send them over HTTPS only); set it "
            "when a TLS reverse proxy fronts the service (docs/service.md).",
        ),
    ] = False,
    docs: Annotated[
        bool,
        typer.Option(
            "--docs",
            help="Serve the OpenAPI spec (/openapi.json) and Swagger UI (/docs) to holders of "
            "a token or a session; off by default.",
        ),
    ] = False,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="Worker processes on the one port (Uvicorn workers). More than 1 needs a "
            "PostgreSQL store: the workers share the champion, the sessions, the review "
            "queue's leases and the overrides through it (docs/scaling.md).",
        ),
    ] = 1,
) -> None:
    """Run the service (API, review queue, dashboard) under Uvicorn.

    It serves the registry's champion (zero-shot when there is none). Create a token first:
    `tunegate token create --role analyst --name alice`, then open http://HOST:PORT/login.
    With `--workers N` (PostgreSQL only) every worker follows the registry's champion and
    the review queue hands each ticket to one analyst at a time.
    """
    from tunegate._optional import require

    uvicorn = require("uvicorn", purpose="tunegate serve")
    from tunegate.errors import InputError
    from tunegate.server import ServerSettings, create_app
    from tunegate.server._middleware import serve_log_config
    from tunegate.server._workers import require_shared_store, worker_environment

    if highlights not in ("occlusion", "attribution", "off"):
        raise InputError(f"--highlights must be occlusion, attribution or off; got {highlights!r}")
    workflow = load(config)
    require_shared_store(workflow.resolved_store_url(config.resolve().parent), workers=workers)
    settings = ServerSettings(
        highlights=highlights,  # type: ignore[arg-type]
        secure_cookies=secure_cookies,
        docs=docs,
    )
    store = store_for(workflow, config)  # opening migrates, once, before any worker starts
    target: Any
    if workers == 1:
        target = create_app(workflow, store=store, settings=settings)
    else:
        store.close()
        os.environ.update(worker_environment(config, settings))
        target = "tunegate.server._workers:worker_app"
    where = "API docs at /docs" if docs else "API docs off; --docs to serve them"
    procs = f", {workers} workers" if workers > 1 else ""
    out.print(
        f"tunegate serving {workflow.name!r} on http://{host}:{port}{procs} (log in at /login, "
        f"{where})"
    )
    uvicorn.run(
        target,
        host=host,
        port=port,
        log_level=log_level,
        log_config=serve_log_config(log_level),
        access_log=False,  # it prints query strings; the app logs a sanitised line instead
        server_header=False,
        factory=workers > 1,
        workers=workers if workers > 1 else None,
    )


def token_create(
    role: Annotated[str, typer.Option(help="analyst (classify, override, queue) or admin.")],
    name: Annotated[str, typer.Option(help="Who or what holds the token (shown in audits).")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Create a token and print it ONCE (only its hash is stored)."""
    from tunegate.server._auth import issue_token

    workflow = load(config)
    token, info = issue_token(store_for(workflow, config), role=role, name=name, actor="cli")

    def human() -> None:
        out.print(
            f"created {info.role.value} token {info.id} for {info.name!r}; it is shown "
            f"only now, store it safely:",
            highlight=False,
        )
        typer.echo(token)

    emit({"token": token, **info.to_dict()}, as_json=as_json, human=human)


def token_list(config: ConfigOpt = Path("tunegate.yaml"), as_json: JsonOpt = False) -> None:
    """List tokens: id, name, role, created, revoked (never the tokens)."""
    from tunegate.server._auth import list_tokens

    workflow = load(config)
    infos = list_tokens(store_for(workflow, config))

    def human() -> None:
        if not infos:
            out.print("no tokens yet; create one with `tunegate token create`")
        for info in infos:
            state = "revoked" if info.revoked else "active"
            out.print(
                f"{info.id}  {info.role.value:8s} {info.name:20s} {info.created_at}  {state}",
                highlight=False,
            )

    emit([i.to_dict() for i in infos], as_json=as_json, human=human)


def token_revoke(
    token: Annotated[str, typer.Argument(help="Token id (tok_...) or name.")],
    config: ConfigOpt = Path("tunegate.yaml"),
    as_json: JsonOpt = False,
) -> None:
    """Revoke a token by id, or every token with a name; their sessions end too."""
    from tunegate.server._auth import withdraw_token

    workflow = load(config)
    revoked = withdraw_token(store_for(workflow, config), token, actor="cli")
    emit(
        [t.to_dict() for t in revoked],
        as_json=as_json,
        human=lambda: out.print(f"revoked {', '.join(t.id for t in revoked)}"),
    )


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    token_app.command("create")(token_create)
    token_app.command("list")(token_list)
    token_app.command("revoke")(token_revoke)
    app.add_typer(token_app, name="token")
