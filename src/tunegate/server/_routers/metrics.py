"""``GET /v1/metrics``: the weekly service and monitoring figures."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from tunegate.server._deps import Analyst, State
from tunegate.serving import service_figures

__all__ = ["router"]

router = APIRouter(tags=["monitoring"])


@router.get("/v1/metrics", summary="Weekly monitoring figures")
def api_metrics(
    _: Analyst, state: State, weeks: Annotated[int, Query(ge=1, le=104)] = 12
) -> dict[str, Any]:
    return service_figures(state.store, state.workflow, weeks=weeks).to_dict()
