"""Several service workers: ``tunegate serve --workers N`` runs N Uvicorn worker processes on
one port, each building its own app with :func:`worker_app` from the spec the parent process
put in the environment (:data:`SPEC_ENV`).

The workers share nothing in memory. What must agree between them lives in the store or the
environment: the champion alias (each worker reloads when it moves), tokens, sessions, the
review queue's leases and the overrides in the store; the session-signing key in
``TUNEGATE_SECRET_KEY`` (the parent sets a random one when it is unset, so a cookie made by one
worker is valid in every other). The store must be PostgreSQL (:func:`require_shared_store`):
SQLite lets one process write at a time and has no row locks for the queue.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from tunegate.errors import ConfigError, InputError
from tunegate.server._state import ServerSettings

__all__ = ["SPEC_ENV", "require_shared_store", "worker_app", "worker_environment"]

SPEC_ENV = "TUNEGATE_SERVE_SPEC"
"""The environment variable holding the workers' spec (JSON: the config path and settings)."""


def require_shared_store(url: str, *, workers: int) -> None:
    """Refuse ``workers`` > 1 on a store several processes cannot share (SQLite)."""
    if workers < 1:
        raise InputError(f"--workers must be at least 1; got {workers}")
    if workers == 1 or url.startswith(("postgresql", "postgres")):
        return
    kind = url.split(":", 1)[0] or "this"
    raise InputError(
        f"--workers {workers} needs a PostgreSQL store; this workflow's store is {kind}, which "
        f"lets one process write at a time and has no row locks for the review queue. Set "
        f"store.url to postgresql+psycopg://USER:PASSWORD@HOST/DB in tunegate.yaml (see "
        f"docs/scaling.md), or run with --workers 1"
    )


def worker_environment(config: Path, settings: ServerSettings) -> dict[str, str]:
    """The environment variables the workers need: the spec and a shared signing key.

    ``settings.secret_key`` (or ``TUNEGATE_SECRET_KEY`` already set) is passed on; otherwise
    a random key is made here, once, for every worker."""
    fields = {
        f.name: getattr(settings, f.name)
        for f in dataclasses.fields(settings)
        if f.name != "secret_key"
    }
    env = {SPEC_ENV: json.dumps({"config": str(config.resolve()), "settings": fields})}
    if settings.secret_key is not None:
        env["TUNEGATE_SECRET_KEY"] = settings.secret_key.decode("utf-8", "surrogateescape")
    elif not os.environ.get("TUNEGATE_SECRET_KEY"):
        env["TUNEGATE_SECRET_KEY"] = secrets.token_urlsafe(32)
    return env


def worker_app() -> FastAPI:
    """The app of one worker (Uvicorn's factory): the workflow and settings of the spec in
    :data:`SPEC_ENV`, the workflow's store, the registry's champion."""
    raw = os.environ.get(SPEC_ENV)
    if not raw:
        raise ConfigError(
            f"{SPEC_ENV} is not set; start the workers with `tunegate serve --workers N`"
        )
    spec: dict[str, Any] = json.loads(raw)
    from tunegate.config import load_workflow
    from tunegate.server._app import create_app
    from tunegate.store import Store

    config = Path(spec["config"])
    workflow = load_workflow(config)
    settings = ServerSettings(**spec["settings"])
    store = Store(workflow.resolved_store_url(config.parent))
    return create_app(workflow, store=store, settings=settings)
