"""ASGI middleware: request body size limit, security headers, metrics and safe access logs."""

from __future__ import annotations

import json
import logging
import secrets
import time
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tunegate.server._prometheus import MetricsRegistry

__all__ = [
    "BodyLimitMiddleware",
    "ErrorIdMiddleware",
    "ObserveMiddleware",
    "new_error_id",
    "serve_log_config",
]

log = logging.getLogger("tunegate.server")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        b"object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
    ),
    (b"cache-control", b"no-store"),
]


def new_error_id() -> str:
    """A short random id that ties a 5xx answer to its log line."""
    return "err_" + secrets.token_hex(6)


async def _send_json(send: Send, status: int, detail: str, **extra: str) -> None:
    body = json.dumps({"detail": detail, **extra}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, whether announced by
    Content-Length or streamed (chunked). The body is read up front (it is small by
    construction) and replayed to the application."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_big = (
            f"request body over the limit of {self.max_bytes} bytes; send fewer "
            f"tickets per request (see the batch limit) or shorter texts"
        )
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    announced = int(value)
                except ValueError:
                    await _send_json(send, 400, "Content-Length is not a number")
                    return
                if announced > self.max_bytes:
                    await _send_json(send, 413, too_big)
                    return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await _send_json(send, 413, too_big)
                return
            chunks.append(chunk)
            more = bool(message.get("more_body", False))
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class ErrorIdMiddleware:
    """Turns any exception the application lets through into ``500 {"detail": "internal
    error", "error_id": ...}``; the traceback is logged with the id, never sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            error_id = new_error_id()
            route: Any = scope.get("route")
            where = getattr(route, "path", None) or "(unmatched)"
            log.exception("internal error %s on %s %s", error_id, scope.get("method"), where)
            if not started:
                await _send_json(send, 500, "internal error", error_id=error_id)


def serve_log_config(level: str = "info") -> dict[str, Any]:
    """Uvicorn's logging configuration for ``tunegate serve``: Uvicorn's own lines as usual,
    plus the ``tunegate`` loggers (the access line of :class:`ObserveMiddleware`) on stderr.
    Run it with ``access_log=False``: Uvicorn's access line prints the full URL, query string
    (and any token in it) included."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = json.loads(json.dumps(LOGGING_CONFIG))
    config["loggers"]["tunegate"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


class ObserveMiddleware:
    """Adds security headers, counts requests in Prometheus metrics by route template, and
    logs one line per request: method, route template (never the query string), status,
    milliseconds and the id of the token used (``token=tok_...``, never the token). It never
    logs headers, query strings, bodies or tokens."""

    def __init__(self, app: ASGIApp, *, metrics: MetricsRegistry) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def wrapped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, wrapped)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            method = scope.get("method", "?")
            self.metrics.requests.inc(method, template, str(status))
            self.metrics.latency.observe(elapsed, method, template)
            if status in (401, 403):
                self.metrics.auth_failures.inc(str(status))
            state = scope.get("state") or {}
            token_id = state.get("token_id", "-") if isinstance(state, dict) else "-"
            log.info("%s %s %d %.1fms token=%s", method, template, status, elapsed * 1000, token_id)
