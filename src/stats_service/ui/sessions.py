"""Dashboard sessions: a random id in an HttpOnly, SameSite=Strict cookie names a session
kept in this process's memory. The API key itself never leaves the server again after
sign-in; each request with the cookie is authenticated with it afresh (so a revoked key
ends its sessions). Requests that change state must also send the session's CSRF token in
the `X-CSRF-Token` header."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from starlette.requests import HTTPConnection

from ..model import Principal

COOKIE = "stats_session"
CSRF_HEADER = "x-csrf-token"
TTL_S = 12 * 3600
MAX_SESSIONS = 10_000
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    id: str
    csrf: str
    expires: float
    key: str | None = None  # signed in with an API key
    principal: Principal | None = None  # anonymous read, when the tenant allows it

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(), self.csrf.encode())


class SessionStore:
    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, *, key: str | None = None, principal: Principal | None = None) -> Session:
        session = Session(
            secrets.token_urlsafe(32),
            secrets.token_urlsafe(32),
            time.monotonic() + TTL_S,
            key=key,
            principal=principal,
        )
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._expire()
            if len(self._sessions) >= MAX_SESSIONS:  # still full: drop the oldest
                oldest = min(self._sessions.values(), key=lambda s: s.expires)
                del self._sessions[oldest.id]
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires <= time.monotonic():
                del self._sessions[session_id]
                return None
        return session

    def drop(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(session_id, None)

    def _expire(self) -> None:
        now = time.monotonic()
        for sid in [sid for sid, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[sid]


def sessions_of(conn: HTTPConnection) -> SessionStore:
    """The app's session store (made on first use)."""
    state = conn.app.state
    store: SessionStore | None = getattr(state, "ui_sessions", None)
    if store is None:
        store = state.ui_sessions = SessionStore()
    return store


def session_of(conn: HTTPConnection) -> Session | None:
    return sessions_of(conn).get(conn.cookies.get(COOKIE))
