"""``/healthz`` (liveness, no token) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

import tunegate
from tunegate.server._deps import Analyst, State

__all__ = ["router"]

router = APIRouter()


@router.get("/healthz", tags=["ops"], summary="Liveness (no token needed)")
def healthz(state: State) -> dict[str, str]:
    """``worker`` is the answering process's id: it tells the workers of ``tunegate serve
    --workers N`` apart behind their one port."""
    return {
        "status": "ok",
        "version": tunegate.__version__,
        "workflow": state.workflow.name,
        "worker": str(os.getpid()),
    }


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=PlainTextResponse,
    summary="Prometheus metrics (text exposition format 0.0.4)",
)
def prometheus(_: Analyst, state: State) -> PlainTextResponse:
    return PlainTextResponse(
        state.metrics.expose(), media_type="text/plain; version=0.0.4; charset=utf-8"
    )
