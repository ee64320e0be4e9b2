"""The tunegate service: a FastAPI app with the classify/override API, the analyst review
queue, the dashboard, bearer-token auth with roles, and Prometheus metrics.

Needs the ``server`` extra (``pip install 'tunegate[server]'``). See docs/service.md.
"""

from __future__ import annotations

from tunegate import _optional

_optional.require("fastapi", purpose="the tunegate service")

from tunegate.server._app import create_app  # noqa: E402
from tunegate.server._auth import (  # noqa: E402
    Principal,
    Role,
    TokenInfo,
    create_token,
    hash_token,
    issue_token,
    list_tokens,
    purge_expired_sessions,
    revoke_token,
    verify_token,
    withdraw_token,
)
from tunegate.server._state import ServerSettings  # noqa: E402

__all__ = [
    "Principal",
    "Role",
    "ServerSettings",
    "TokenInfo",
    "create_app",
    "create_token",
    "hash_token",
    "issue_token",
    "list_tokens",
    "purge_expired_sessions",
    "revoke_token",
    "verify_token",
    "withdraw_token",
]
