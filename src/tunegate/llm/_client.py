"""An OpenAI-compatible Chat Completions client on httpx: bounded concurrency, a per-request
timeout, retries with exponential backoff and jitter.

Retried: HTTP 429 (its ``Retry-After`` is honoured), 5xx, timeouts and dropped or refused
connections. Not retried: other 4xx (the request is wrong; the error says what the server
said). When retries run out the error names the URL and what to do. The API key is read from
the environment variable named by ``llm.api_key_env`` and never logged or put in a message.
"""

from __future__ import annotations

import email.utils
import json
import os
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from tunegate.errors import ConfigError, LlmError, LlmUnavailableError, ModelError

if TYPE_CHECKING:
    import httpx

    from tunegate.config import LlmSettings

__all__ = ["DEFAULT_BASE_URL", "ChatClient", "ChatResult", "resolve_base_url"]

DEFAULT_BASE_URL = "http://127.0.0.1:8088/v1"
"""Where ``tunegate llm serve`` listens by default (``llm.base_url: null`` means this)."""

_RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
_MAX_RETRY_AFTER_S = 120.0


def resolve_base_url(settings: LlmSettings) -> str:
    """``settings.base_url`` without a trailing slash, else :data:`DEFAULT_BASE_URL`."""
    url = settings.base_url or DEFAULT_BASE_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(
            f"llm.base_url: {url!r} is not an http(s) URL; use e.g. {DEFAULT_BASE_URL}"
        )
    return url.rstrip("/")


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")


@dataclass(frozen=True)
class ChatResult:
    """One Chat Completions answer (the first choice) and what it cost.

    ``logprobs`` is ``choices[0].logprobs.content`` (a list of ``{token, logprob,
    top_logprobs}``) when the server returned it, else ``None``.
    """

    content: str | None
    finish_reason: str | None = None
    refusal: str | None = None
    logprobs: list[dict[str, Any]] | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_ms: float = 0.0
    """Wall time of the successful attempt (retries and waits not included)."""
    attempts: int = 1

    def to_json(self) -> dict[str, Any]:
        """A JSON-able mapping (the cached form)."""
        return {
            "content": self.content,
            "finish_reason": self.finish_reason,
            "refusal": self.refusal,
            "logprobs": self.logprobs,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "attempts": self.attempts,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ChatResult:
        return cls(
            content=data.get("content"),
            finish_reason=data.get("finish_reason"),
            refusal=data.get("refusal"),
            logprobs=data.get("logprobs"),
            prompt_tokens=int(data.get("prompt_tokens") or 0),
            completion_tokens=int(data.get("completion_tokens") or 0),
            latency_ms=float(data.get("latency_ms") or 0.0),
            attempts=int(data.get("attempts") or 1),
        )


def _retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def parse_completion(payload: Any, url: str) -> ChatResult:
    """The first choice of a Chat Completions response body; a body of another shape raises
    :class:`LlmError` naming ``url``."""
    try:
        choice = payload["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        if content is not None and not isinstance(content, str):
            raise TypeError("message.content is not a string")
        logprobs = choice.get("logprobs")
        tokens = logprobs.get("content") if isinstance(logprobs, dict) else None
        usage = payload.get("usage") or {}
        return ChatResult(
            content=content,
            finish_reason=choice.get("finish_reason"),
            refusal=message.get("refusal"),
            logprobs=tokens if isinstance(tokens, list) and tokens else None,
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
        )
    except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
        raise LlmError(
            f"{url} answered with something that is not a Chat Completions response ({exc}); "
            f"check that llm.base_url points to an OpenAI-compatible /v1 endpoint"
        ) from exc


@dataclass
class ChatClient:
    """Chat Completions over httpx, safe to share between threads.

    ``ChatClient.from_settings(workflow.llm)`` reads the URL, key, limits and retries from
    the workflow; :meth:`complete` sends one request (with retries), :meth:`complete_many`
    sends many, at most ``max_concurrency`` at a time.
    """

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    timeout_s: float = 60.0
    max_retries: int = 4
    max_concurrency: int = 4
    backoff_s: float = 0.5
    """First backoff; attempt ``i`` waits ``min(max_backoff_s, backoff_s * 2**i)`` times a
    uniform jitter factor in [0.5, 1]."""
    max_backoff_s: float = 30.0
    transport: Any = None
    """An ``httpx.BaseTransport`` (tests); ``None`` uses the network."""
    _http: Any = field(default=None, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _sleep: Callable[[float], None] = field(default=time.sleep, init=False, repr=False)
    _served: dict[str, bool] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: LlmSettings, **overrides: Any) -> ChatClient:
        """A client for ``settings`` (``llm:`` in tunegate.yaml). The key comes from the
        environment variable ``settings.api_key_env``; an unset variable raises
        :class:`ConfigError` naming it."""
        key: str | None = None
        if settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise ConfigError(
                    f"llm.api_key_env names the environment variable {settings.api_key_env!r}, "
                    f"which is not set; export it (export {settings.api_key_env}=...) or remove "
                    f"llm.api_key_env for a server without a key"
                )
        values: dict[str, Any] = {
            "base_url": resolve_base_url(settings),
            "api_key": key,
            "timeout_s": settings.timeout_s,
            "max_retries": settings.max_retries,
            "max_concurrency": settings.max_concurrency,
        }
        values.update(overrides)
        return cls(**values)

    @property
    def url(self) -> str:
        """The Chat Completions URL."""
        return f"{self.base_url.rstrip('/')}/chat/completions"

    def _client(self) -> httpx.Client:
        """One connection pool shared by every thread (httpx clients are thread-safe)."""
        with self._lock:
            if self._http is None:
                from tunegate._optional import require

                hx = require("httpx", purpose="the llm backend")
                headers = {"Content-Type": "application/json"}
                if self.api_key:
                    headers["Authorization"] = f"Bearer {self.api_key}"
                self._http = hx.Client(
                    timeout=self.timeout_s,
                    headers=headers,
                    transport=self.transport,
                    limits=hx.Limits(max_connections=self.max_concurrency),
                )
            client: httpx.Client = self._http
            return client

    def _hint(self) -> str:
        if _is_loopback(self.base_url):
            return "start the local server with `tunegate llm serve` or set llm.base_url"
        return "check llm.base_url and that the server is up"

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, _MAX_RETRY_AFTER_S)
        base = min(self.max_backoff_s, self.backoff_s * (2**attempt))
        return float(base * random.uniform(0.5, 1.0))

    def served_models(self) -> list[str] | None:
        """The model names the endpoint lists (``GET {base_url}/models``), or ``None`` when it
        lists none (no such route, not the OpenAI shape, unreachable: the check is skipped)."""
        try:
            response = self._client().get(f"{self.base_url.rstrip('/')}/models")
            data = response.json().get("data") if response.status_code < 400 else None
        except Exception:  # any failure means "cannot tell", never a verdict on the model
            return None
        if not isinstance(data, list):
            return None
        names = [d.get("id") for d in data if isinstance(d, dict)]
        return [n for n in names if isinstance(n, str)] or None

    def check_model(self, model: str) -> None:
        """Refuse a model name the endpoint does not list (once per name and client).

        llama.cpp's server answers a request for an unknown name with its default model, so a
        mistyped adapter alias would silently evaluate the base model. Endpoints that list no
        models are not checked. Raises :class:`ModelError` naming what the endpoint serves."""
        with self._lock:
            if model in self._served:
                return
        served = self.served_models()
        if served is not None and model not in served:
            raise ModelError(
                f"{self.base_url} does not serve the model {model!r}; it lists "
                f"{', '.join(repr(m) for m in served)}. Check llm.model (or the version's "
                f"model) against the server's names: `tunegate llm serve --adapter ALIAS=PATH` "
                f"serves a fine-tune under ALIAS"
            )
        with self._lock:
            self._served[model] = True

    def complete(self, body: Mapping[str, Any]) -> ChatResult:
        """POST one Chat Completions request; retry transient failures; return the first
        choice. The first request for a model name checks it is served
        (:meth:`check_model`). Raises :class:`ModelError` (a model the endpoint does not
        list), :class:`LlmUnavailableError` (unreachable after the retries) or
        :class:`LlmError` (an error status or a malformed response)."""
        import httpx

        model = body.get("model")
        if isinstance(model, str):
            self.check_model(model)
        client = self._client()
        last: str = ""
        for attempt in range(self.max_retries + 1):
            retry_after: float | None = None
            start = time.perf_counter()
            try:
                response = client.post(self.url, json=dict(body))
            except httpx.TimeoutException:
                last = f"timed out after {self.timeout_s:g}s"
                unreachable = True
            except httpx.TransportError as exc:
                last = f"connection failed ({type(exc).__name__}: {exc})"
                unreachable = True
            else:
                elapsed = (time.perf_counter() - start) * 1000.0
                if response.status_code < 400:
                    try:
                        payload = response.json()
                    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                        raise LlmError(
                            f"{self.url} answered HTTP {response.status_code} with a body that "
                            f"is not JSON ({exc}): {response.text[:200]!r}; check that "
                            f"llm.base_url points to an OpenAI-compatible /v1 endpoint"
                        ) from exc
                    result = parse_completion(payload, self.url)
                    return ChatResult(
                        **{**result.__dict__, "latency_ms": elapsed, "attempts": attempt + 1}
                    )
                detail = response.text[:300]
                if response.status_code not in _RETRY_STATUS:
                    hint = (
                        "check the key in the environment variable named by llm.api_key_env"
                        if response.status_code in (401, 403)
                        else "check llm.model and the request the server rejected"
                    )
                    raise LlmError(
                        f"{self.url} answered HTTP {response.status_code}: {detail!r}; {hint}"
                    )
                last = f"HTTP {response.status_code}: {detail!r}"
                unreachable = False
                if response.status_code == 429:
                    retry_after = _retry_after_s(response.headers.get("Retry-After"))
            if attempt < self.max_retries:
                self._sleep(self._backoff(attempt, retry_after))
        tries = self.max_retries + 1
        if unreachable:
            raise LlmUnavailableError(
                f"{self.url} could not be reached after {tries} attempts: {last}; {self._hint()}"
            )
        raise LlmError(
            f"{self.url} kept failing after {tries} attempts: {last}; the server is overloaded "
            f"or broken: retry later, raise llm.max_retries or lower llm.max_concurrency"
        )

    def complete_many(
        self,
        bodies: Sequence[Mapping[str, Any]],
        on_result: Callable[[int, ChatResult], None] | None = None,
    ) -> list[ChatResult]:
        """Send every request, at most ``max_concurrency`` in flight.

        ``on_result(i, result)`` runs (in the calling thread) as each answer arrives, so
        answers can be stored before a later request fails. When some requests fail, every
        other request still completes first, then the first failure is raised with the count.
        """
        results: list[ChatResult | None] = [None] * len(bodies)
        errors: list[tuple[int, Exception]] = []
        if not bodies:
            return []
        workers = min(self.max_concurrency, len(bodies))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tunegate-llm") as pool:
            futures = {pool.submit(self.complete, body): i for i, body in enumerate(bodies)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    result = future.result()
                except Exception as exc:  # re-raised below after the rest finish
                    errors.append((i, exc))
                    continue
                results[i] = result
                if on_result is not None:
                    on_result(i, result)
        if errors:
            errors.sort(key=lambda e: e[0])
            first = errors[0][1]
            if len(errors) > 1 and isinstance(first, LlmError):
                done = len(bodies) - len(errors)
                raise type(first)(
                    f"{len(errors)} of {len(bodies)} requests failed ({done} answered and kept); "
                    f"first: {first}"
                ) from first
            raise first
        return [r for r in results if r is not None]

    def close(self) -> None:
        """Close the connection pool (a later request opens a new one)."""
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None
