"""Board sessions: a token exchanged once for a random session id in an HttpOnly cookie.

The session keeps the token it was opened with and every request identifies it again
(:func:`flow.server.auth.identify`), so a user removed or rotated (``flow user``) loses
the board at once, as it loses the API. Sessions live in the server's memory: a restart
asks people to log in again, and no token is ever written to disk or sent back.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, field

#: the cookie's name; its value is an opaque session id
COOKIE = "fedweave_board"
#: the header a state-changing request carries the session's CSRF token in
CSRF_HEADER = "X-CSRF-Token"
#: seconds a session lasts from login
TTL = 12 * 3600
#: sessions kept at most; the oldest goes first
MAX_SESSIONS = 1000


@dataclass
class Session:
    token: str
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = field(default_factory=lambda: time.monotonic() + TTL)


class Sessions:
    """Session id -> :class:`Session`, thread-safe (routes run in a thread pool)."""

    def __init__(self) -> None:
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        with self._lock:
            self._prune()
            while len(self._by_id) >= MAX_SESSIONS:
                self._by_id.pop(next(iter(self._by_id)))
            self._by_id[sid] = session = Session(token)
        return sid, session

    def get(self, sid: str | None) -> Session | None:
        if not sid:
            return None
        with self._lock:
            session = self._by_id.get(sid)
            if session is not None and session.expires < time.monotonic():
                del self._by_id[sid]
                return None
            return session

    def close(self, sid: str | None) -> None:
        with self._lock:
            self._by_id.pop(sid or "", None)

    def _prune(self) -> None:
        now = time.monotonic()
        for sid in [s for s, v in self._by_id.items() if v.expires < now]:
            del self._by_id[sid]


def csrf_ok(session: Session, given: str | None) -> bool:
    """Constant-time check of a request's CSRF header against its session's token."""
    return bool(given) and secrets.compare_digest(session.csrf.encode(), (given or "").encode())
