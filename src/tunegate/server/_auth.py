"""Bearer tokens with roles, signed session cookies and CSRF tokens.

Tokens are random (``tg_`` + 32 bytes, URL-safe base64) and shown exactly once, when created.
The store keeps only their SHA-256 hash, as the key of an :class:`~tunegate.documents.ApiToken`
document, so a leaked database does not leak usable credentials. Each token has a role:

- ``analyst``: classify, record overrides, read the review queue, models and metrics;
- ``admin``: everything an analyst may do, plus promote, roll back and manage tokens.

Pages use a login form that exchanges a token for a session. Sessions are kept server-side,
as :class:`~tunegate.documents.WebSession` documents keyed by the hash of a random session id;
the cookie carries only that id, signed (HMAC-SHA256), never the token. Every request re-reads
the session and its token, so logout (which deletes the session), revoking the token (which
deletes its sessions) and expiry (checked against the stored time) end a session at once, even
for a copied cookie. Every POST form carries a CSRF token, an HMAC of the session id, checked in
constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from tunegate.documents import ApiToken, WebSession
from tunegate.errors import InputError, NotFoundError
from tunegate.records import new_id, utcnow

if TYPE_CHECKING:
    from tunegate.store import Store

__all__ = [
    "Principal",
    "Role",
    "SessionSigner",
    "TokenInfo",
    "close_session",
    "create_token",
    "hash_token",
    "issue_token",
    "list_tokens",
    "open_session",
    "purge_expired_sessions",
    "revoke_token",
    "session_principal",
    "verify_token",
    "withdraw_token",
]

TOKEN_PREFIX = "tg_"


class Role(StrEnum):
    """What a token may do; ``admin`` includes everything ``analyst`` may do."""

    ANALYST = "analyst"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        return self is Role.ADMIN or self is needed


@dataclass(frozen=True)
class Principal:
    """Who made a request: the token's public id, name and role (never the token itself)."""

    token_id: str
    name: str
    role: Role
    token_hash: str


@dataclass(frozen=True)
class TokenInfo:
    """A stored token's public record."""

    id: str
    name: str
    role: Role
    created_at: str
    revoked: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role.value,
            "created_at": self.created_at,
            "revoked": self.revoked,
        }


def hash_token(token: str) -> str:
    """SHA-256 hex digest of a token: the only form in which tokens are stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _info(payload: ApiToken) -> TokenInfo:
    return TokenInfo(
        id=payload.id,
        name=payload.name,
        role=Role(payload.role),
        created_at=payload.created_at,
        revoked=payload.revoked,
    )


def create_token(store: Store, *, role: Role | str, name: str) -> tuple[str, TokenInfo]:
    """Create a token; returns ``(token, info)``. The token is not stored and cannot be shown
    again; keep it somewhere safe."""
    try:
        role = Role(role)
    except ValueError:
        raise InputError(
            f"unknown role {role!r}; expected one of {[r.value for r in Role]}"
        ) from None
    name = name.strip()
    if not name or len(name) > 100:
        raise InputError(f"token name must be 1-100 characters, got {len(name)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    payload = ApiToken(
        id=new_id("tok"),
        name=name,
        role=role.value,
        created_at=utcnow().isoformat(),
        revoked=False,
    )
    store.documents(ApiToken).put(hash_token(token), payload)
    return token, _info(payload)


def list_tokens(store: Store) -> list[TokenInfo]:
    """Every token's public record (id, name, role, created_at, revoked), oldest first."""
    infos = [_info(payload) for _, payload in store.documents(ApiToken).items()]
    return sorted(infos, key=lambda info: info.created_at)


def revoke_token(store: Store, token_id_or_name: str) -> list[TokenInfo]:
    """Revoke the token with this id, or every token with this name; returns those revoked."""
    revoked: list[TokenInfo] = []
    for key, payload in store.documents(ApiToken).items():
        if token_id_or_name in (payload.id, payload.name) and not payload.revoked:
            done = payload.model_copy(update={"revoked": True, "revoked_at": utcnow().isoformat()})
            store.documents(ApiToken).put(key, done)
            _close_sessions_of(store, key)
            revoked.append(_info(done))
    if not revoked:
        known = [info.id for info in list_tokens(store) if not info.revoked]
        raise NotFoundError(
            f"no active token with id or name {token_id_or_name!r}; active token ids: {known} "
            f"(see `tunegate token list`)"
        )
    return revoked


def issue_token(store: Store, *, role: Role | str, name: str, actor: str) -> tuple[str, TokenInfo]:
    """:func:`create_token` and its ``token_create`` audit row (``actor``: who created it)."""
    token, info = create_token(store, role=role, name=name)
    store.audit(
        "token_create", actor, {"token_id": info.id, "name": info.name, "role": info.role.value}
    )
    return token, info


def withdraw_token(store: Store, token_id_or_name: str, *, actor: str) -> list[TokenInfo]:
    """:func:`revoke_token` and its ``token_revoke`` audit row (``actor``: who revoked)."""
    revoked = revoke_token(store, token_id_or_name)
    store.audit("token_revoke", actor, {"token_ids": [t.id for t in revoked]})
    return revoked


def principal_for_hash(store: Store, token_hash: str) -> Principal | None:
    """The principal of an active token given its hash, or None (unknown or revoked)."""
    payload = store.documents(ApiToken).get(token_hash)
    if payload is None or payload.revoked:
        return None
    info = _info(payload)
    return Principal(token_id=info.id, name=info.name, role=info.role, token_hash=token_hash)


def verify_token(store: Store, token: str) -> Principal | None:
    """The principal of an active token, or None. Tokens are looked up by their hash."""
    if not token or len(token) > 200:
        return None
    return principal_for_hash(store, hash_token(token))


_PURGE_BATCH = 16
"""Expired sessions deleted per login at most: logins stay O(1) in the number of stored
sessions, and since each login adds one session the backlog still drains."""

_EXPIRY_DIGITS = 12


def _session_key(session_id: str) -> str | None:
    """The store key of a session: its expiry (12-digit unix time, which the id starts with)
    and the SHA-256 of the id, so keys sort by expiry and expired sessions are one range scan
    away. None for an id that is not of this shape."""
    stamp, dot, rest = session_id.partition(".")
    if not dot or not rest or len(stamp) != _EXPIRY_DIGITS or not stamp.isdigit():
        return None
    return f"{stamp}:{hash_token(session_id)}"


def purge_expired_sessions(
    store: Store, *, now: float | None = None, limit: int = _PURGE_BATCH
) -> int:
    """Delete up to ``limit`` expired sessions (one bounded range query on the store key,
    which starts with the expiry); returns how many were deleted."""
    moment = time.time() if now is None else now
    sessions = store.documents(WebSession)
    expired = sessions.keys(below=f"{int(moment):0{_EXPIRY_DIGITS}d}", limit=limit)
    return sum(sessions.delete(key) for key in expired)


def open_session(store: Store, signer: SessionSigner, principal: Principal) -> str:
    """Store a fresh session of ``principal`` (it expires after ``signer.max_age_s``) and
    return the signed cookie value that names it.

    One insert plus one bounded purge (:func:`purge_expired_sessions`): the cost of a login
    does not grow with the number of stored sessions."""
    now = time.time()
    purge_expired_sessions(store, now=now)
    expires = int(now) + signer.max_age_s
    session_id = f"{expires:0{_EXPIRY_DIGITS}d}.{secrets.token_urlsafe(24)}"
    key = _session_key(session_id)
    assert key is not None
    store.documents(WebSession).put(
        key,
        WebSession(
            token_hash=principal.token_hash,
            token_id=principal.token_id,
            created_at=utcnow().isoformat(),
            expires_at=float(expires),
        ),
    )
    return signer.sign_session(session_id, expires=expires)


def session_principal(
    store: Store, signer: SessionSigner, cookie: str
) -> tuple[Principal, str] | None:
    """``(principal, session id)`` of an authentic cookie whose stored session is live and
    whose token is active; None otherwise (an expired session is deleted)."""
    payload = signer.read_session(cookie)
    if payload is None:
        return None
    session_id = str(payload.get("sid", ""))
    key = _session_key(session_id)
    if key is None:
        return None
    sessions = store.documents(WebSession)
    session = sessions.get(key)
    if session is None:
        return None
    if session.expires_at < time.time():
        sessions.delete(key)
        return None
    principal = principal_for_hash(store, session.token_hash)
    if principal is None:
        return None
    return principal, session_id


def close_session(store: Store, session_id: str) -> bool:
    """Delete a session (logout); False when it was already gone."""
    key = _session_key(session_id)
    return key is not None and store.documents(WebSession).delete(key)


def _close_sessions_of(store: Store, token_hash: str) -> None:
    sessions = store.documents(WebSession)
    for key, session in sessions.items():
        if session.token_hash == token_hash:
            sessions.delete(key)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SessionSigner:
    """Signs and verifies session cookies and CSRF tokens with one server secret.

    A session cookie is ``base64(json).base64(hmac)`` of the session id and its expiry (the
    session itself, and the authoritative expiry, are stored: :func:`open_session`).
    A CSRF token is ``hmac(secret, "csrf:" + session id)``: one per session, useless elsewhere.
    """

    def __init__(self, secret: bytes, *, max_age_s: int = 8 * 3600) -> None:
        if len(secret) < 16:
            raise InputError(f"session secret must be at least 16 bytes, got {len(secret)}")
        self._secret = secret
        self.max_age_s = max_age_s

    def _mac(self, purpose: str, data: bytes) -> bytes:
        return hmac.new(self._secret, purpose.encode() + b":" + data, hashlib.sha256).digest()

    def sign_session(self, session_id: str, *, expires: int | None = None) -> str:
        """A cookie value naming the session ``session_id`` (expiring at unix time ``expires``,
        default ``max_age_s`` from now)."""
        body = json.dumps(
            {
                "sid": session_id,
                "exp": expires if expires is not None else int(time.time()) + self.max_age_s,
            },
            separators=(",", ":"),
        ).encode()
        return f"{_b64(body)}.{_b64(self._mac('session', body))}"

    def read_session(self, value: str) -> dict[str, Any] | None:
        """The session payload (``sid``, ``exp``) if the cookie is authentic and fresh."""
        try:
            body_b64, mac_b64 = value.split(".", 1)
            body = _unb64(body_b64)
            mac = _unb64(mac_b64)
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac("session", body)):
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict) or int(payload.get("exp", 0)) < time.time():
            return None
        return payload

    def csrf_token(self, session_id: str) -> str:
        """The CSRF token of a session (a login form uses its pre-session id)."""
        return _b64(self._mac("csrf", session_id.encode()))

    def check_csrf(self, session_id: str, token: str | None) -> bool:
        """True when ``token`` is this session's CSRF token (constant-time comparison)."""
        if not token:
            return False
        return hmac.compare_digest(token.encode(), self.csrf_token(session_id).encode())
