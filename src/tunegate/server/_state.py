"""The service's settings and per-app state: the serving classifier (loaded lazily, rebuilt
when the registry's champion changes, whoever changed it), the Prometheus registry, the session
signer, the templates and the highlight cache. Routers reach it as
``request.app.state.tunegate``.

Each service worker (``tunegate serve --workers N``) is a process with its own state; what
they share lives in the store: the champion alias (every worker reloads when it moves, within
``champion_check_s``), the tokens and sessions, the queue's leases and the overrides."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from fastapi.templating import Jinja2Templates

from tunegate.config import Workflow
from tunegate.errors import ModelError, TunegateError
from tunegate.records import Decision, ReasonCode
from tunegate.server._auth import Principal, SessionSigner
from tunegate.server._highlight import Segment, attribution_segments, occlusion_highlights
from tunegate.server._prometheus import MetricsRegistry
from tunegate.serving import (
    ClassifyOutcome,
    RecordedOverride,
    TicketClassifier,
    TicketRequest,
    check_claim,
    classify_requests,
    record_override,
)
from tunegate.store import Store

__all__ = ["AppState", "ClassifierLoader", "ServerSettings"]

log = logging.getLogger("tunegate.server")


@dataclass(frozen=True)
class ServerSettings:
    """Knobs of the service (all have safe defaults)."""

    max_body_bytes: int = 1_048_576
    """Requests with a larger body get 413."""
    max_batch: int = 256
    """``POST /v1/classify`` with more tickets gets 422."""
    secret_key: bytes | None = None
    """Signs session cookies and CSRF tokens. Default: ``TUNEGATE_SECRET_KEY`` from the
    environment, else a random key per process (sessions then end when the server restarts)."""
    session_max_age_s: int = 8 * 3600
    """Sessions expire after this many seconds."""
    secure_cookies: bool = False
    """Mark cookies ``Secure`` (set this when serving over HTTPS, e.g. behind a proxy)."""
    queue_page_size: int = 20
    """Tickets shown per review-queue page."""
    highlights: Literal["occlusion", "attribution", "off"] = "occlusion"
    """Review-queue word highlights: ``occlusion`` (drop one word at a time, any classifier,
    one batched predict per ticket), ``attribution`` (Integrated Gradients from
    ``tunegate.diagnose``, zero-shot or LoRA models, slower; falls back to none on error),
    or ``off``."""
    highlight_max_words: int = 64
    """Words scored by occlusion per ticket (the rest are shown unweighted)."""
    queue_window_days: int = 90
    """The queue and dashboard look at decisions from this many days back."""
    champion_check_s: float = 1.0
    """How often (at most) a request looks up the registry's champion alias; when it moved
    (``tunegate promote``/``rollback`` from the CLI, the API, an auto-rollback) the classifier
    is reloaded, so every decision is made, and recorded, by the current champion."""
    queue_lease_s: float = 600.0
    """How long a review-queue decision stays with the analyst it was handed to (seconds);
    each queue page view renews the analyst's leases, an override ends one."""
    docs: bool = False
    """Serve the OpenAPI spec and the interactive docs (``/docs``, ``/redoc``,
    ``/openapi.json``) to requests with a valid token; off by default."""


ClassifierLoader = Callable[[], tuple[Any, str | None]]
"""Returns ``(classifier, version id)``; the id goes into ``Decision.model_version``
(None = the classifier's own version)."""


@dataclass
class AppState:
    """Everything the routers share; one per app."""

    workflow: Workflow
    store: Store
    settings: ServerSettings
    signer: SessionSigner
    metrics: MetricsRegistry
    templates: Jinja2Templates
    loader: ClassifierLoader | None
    classifier: Any
    version: str | None = None
    champion: str | None = None
    """The registry's champion alias when the classifier was loaded."""
    checked_at: float = 0.0
    scorer: Any = None
    highlight_cache: dict[tuple[str, str], list[Segment]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def current(self) -> tuple[Any, str | None]:
        """The serving classifier and its version id (loaded on first use, reloaded when the
        registry's champion alias moved; the alias is read at most every
        ``settings.champion_check_s`` seconds)."""
        with self.lock:
            if self.loader is not None and self.classifier is not None:
                now = time.monotonic()
                if now - self.checked_at >= self.settings.champion_check_s:
                    self.checked_at = now
                    champion = self.store.get_alias("champion")
                    if champion != self.champion:
                        log.info("champion moved %s -> %s; reloading", self.champion, champion)
                        self._forget()
            if self.classifier is None:
                if self.loader is None:
                    raise ModelError("no classifier is configured")
                self.champion = self.store.get_alias("champion")
                self.checked_at = time.monotonic()
                self.classifier, self.version = self.loader()
            return self.classifier, self.version

    def _forget(self) -> None:
        self.classifier = None
        self.scorer = None
        self.highlight_cache.clear()

    def reload(self) -> None:
        """Forget the serving classifier after a promotion or rollback (lazy reload)."""
        if self.loader is not None:
            with self.lock:
                self._forget()

    def serving_version(self) -> str | None:
        """The version this process serves now (None before the first request)."""
        if self.classifier is None:
            return None
        return self.version or getattr(self.classifier, "version", None)

    # -- use-cases with their Prometheus counters ---------------------------------------------

    def classify(
        self,
        requests: list[TicketRequest],
        *,
        principal: Principal | None = None,
        idempotency_key: str | None = None,
    ) -> ClassifyOutcome:
        """Decide and log tickets with the serving classifier (at most once per
        ``idempotency_key`` of ``principal``'s token)."""
        clf, version = self.current()
        outcome = classify_requests(
            TicketClassifier(self.workflow, clf, version=version, store=self.store),
            requests,
            idempotency_key=idempotency_key,
            scope=principal.token_id if principal is not None else "",
        )
        if outcome.new:
            for d in outcome.decisions:
                self.metrics.decisions.inc(d.route.value)
        return outcome

    def record_override(
        self,
        principal: Principal,
        *,
        ticket_id: str,
        final_label: str,
        reason_code: ReasonCode,
        decision_id: str | None = None,
        note: str = "",
        idempotency_key: str | None = None,
        supersedes: str | None = None,
    ) -> RecordedOverride:
        """Record an override by the token's holder (audited with the token id).

        A decision another analyst has claimed from the queue (a live lease) is refused with
        :class:`~tunegate.errors.ConflictError`; a recorded override ends the analyst's
        lease. Exactly-once holds across workers: the store serialises the overrides of a
        ticket and refuses a second open one."""
        own = check_claim(
            self.store, ticket_id=ticket_id, decision_id=decision_id, analyst=principal.name
        )
        done = record_override(
            self.workflow,
            self.store,
            ticket_id=ticket_id,
            final_label=final_label,
            reason_code=reason_code,
            decision_id=decision_id,
            note=note,
            analyst=principal.name,
            token_id=principal.token_id,
            idempotency_key=idempotency_key,
            supersedes=supersedes,
        )
        if not done.created:
            return done
        if own is not None:  # a decided decision leaves the queue; its lease ends with it
            self.store.release_claims(ticket_ids=[done.override.ticket_id])
        kind = "correction" if done.correction else "confirmation"
        self.metrics.overrides.inc(done.override.reason_code.value, kind)
        return done

    # -- review-queue highlights --------------------------------------------------------------

    def _compute_highlights(self, decision: Decision, text: str) -> list[Segment]:
        clf, _ = self.current()
        if self.settings.highlights == "attribution":
            with self.lock:
                if self.scorer is None:
                    from tunegate.diagnose import scorer_for

                    self.scorer = scorer_for(clf, self.workflow)
                scorer = self.scorer
            from tunegate.diagnose import attribute_texts

            [attr] = attribute_texts(scorer, [text], [[decision.label]], n_steps=16)
            return attribution_segments(text, attr.words, attr.scores[decision.label])
        return occlusion_highlights(
            clf, text, decision.label, max_words=self.settings.highlight_max_words
        )

    def highlights(self, decision: Decision, text: str) -> list[Segment]:
        """Word highlights of a queued decision (cached per decision and label)."""
        if self.settings.highlights == "off":
            return [Segment(text, 0.0)]
        key = (decision.id, decision.label)
        cached = self.highlight_cache.get(key)
        if cached is not None:
            return cached
        try:
            segments = self._compute_highlights(decision, text)
        except (TunegateError, ValueError, ImportError) as exc:
            log.warning("no highlights for decision %s: %s", decision.id, type(exc).__name__)
            segments = [Segment(text, 0.0)]
        if len(self.highlight_cache) > 2048:
            self.highlight_cache.clear()
        self.highlight_cache[key] = segments
        return segments
