"""The service's routers, one module per resource; each translates HTTP to library calls
(:mod:`tunegate.serving`) and back. :data:`ROUTERS` is the order the app includes them in."""

from __future__ import annotations

import fastapi

from tunegate.server._routers import (
    admin,
    classify,
    metrics,
    models,
    ops,
    overrides,
    pages,
    queue,
)

__all__ = ["ROUTERS"]

ROUTERS: tuple[fastapi.APIRouter, ...] = (
    ops.router,
    classify.router,
    overrides.router,
    queue.router,
    models.router,
    metrics.router,
    admin.router,
    pages.router,
)
