"""Viewers' sign-ins: the API token a viewer pasted, kept in this process and never sent back.

The dashboard has no token of its own: a change (add, remove, purge, retrain) goes to the API with
the token of the viewer who asked for it, or with none. The browser holds only an opaque random
session id in an HttpOnly, SameSite=Strict cookie, so no script on the page and no other site can
read or send it, and the token itself appears in no page, component, store or callback answer.
The store is bounded and every entry expires, so forgotten sign-ins neither pile up nor live on.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

import flask

SESSION_COOKIE = "cryptocast_session"
SESSION_TTL_S = 8 * 3600  # a sign-in lasts a working day, then the token must be pasted again
MAX_SESSIONS = 1000  # beyond this the oldest sign-in is forgotten
MAX_TOKEN_CHARS = 512  # a pasted value longer than this is not a token (and would not be held)
SESSION_ID_BYTES = 32
_COOKIE_CHANGE = "cryptocast_session_cookie"  # flask.g: the session id to set, "" to clear


class SessionStore:
    """Session id → (token, expiry), oldest first; thread-safe (Dash callbacks run on many threads).

    Every session lives the same ``ttl_s``, so insertion order is expiry order and pruning only ever
    looks at the oldest entries.
    """

    def __init__(
        self,
        max_sessions: int = MAX_SESSIONS,
        ttl_s: float = SESSION_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_sessions = max_sessions
        self.ttl_s = ttl_s
        self.clock = clock
        self._sessions: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def open(self, token: str) -> str:
        """A new session holding ``token``; its random id is what the cookie carries."""
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        with self._lock:
            self._prune(room_for=1)
            self._sessions[session_id] = (token, self.clock() + self.ttl_s)
        return session_id

    def token(self, session_id: str | None) -> str | None:
        """The token of a live session, or None (no id, unknown, expired)."""
        if not session_id:
            return None
        with self._lock:
            self._prune()
            held = self._sessions.get(session_id)
        return held[0] if held else None

    def close(self, session_id: str | None) -> None:
        with self._lock:
            self._sessions.pop(session_id or "", None)

    def __len__(self) -> int:
        with self._lock:
            self._prune()
            return len(self._sessions)

    def _prune(self, room_for: int = 0) -> None:
        now = self.clock()
        while self._sessions:
            oldest, (_, expires) = next(iter(self._sessions.items()))
            if expires > now and len(self._sessions) + room_for <= self.max_sessions:
                return
            del self._sessions[oldest]


def token_problem(text: object) -> str | None:
    """Why a pasted value cannot be a token (a sentence), or None when it can be sent as one."""
    token = text.strip() if isinstance(text, str) else ""
    if not token:
        return "Paste an API token to sign in."
    if len(token) > MAX_TOKEN_CHARS:
        return f"That is not an API token: it is longer than {MAX_TOKEN_CHARS} characters."
    if not (token.isascii() and token.isprintable()) or " " in token:
        return "That is not an API token: it holds spaces or characters other than printable ASCII."
    return None


def install(server: flask.Flask) -> None:
    """Write the cookie change a callback of this request asked for (a sign-in or a sign-out)."""

    @server.after_request
    def _write_cookie(response: flask.Response) -> flask.Response:
        session_id = flask.g.pop(_COOKIE_CHANGE, None)
        if session_id:
            response.set_cookie(
                SESSION_COOKIE,
                session_id,
                max_age=SESSION_TTL_S,
                path="/",
                httponly=True,
                samesite="Strict",
                secure=flask.request.is_secure,
            )
        elif session_id is not None:
            response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="Strict")
        return response


def viewer_token(store: SessionStore) -> str | None:
    """The signed-in viewer's token for the request being answered (a Dash callback's), or None."""
    return store.token(flask.request.cookies.get(SESSION_COOKIE))


def sign_in(store: SessionStore, token: str) -> None:
    """Open a session for ``token`` in place of the viewer's current one; its id goes in the cookie."""
    store.close(flask.request.cookies.get(SESSION_COOKIE))
    setattr(flask.g, _COOKIE_CHANGE, store.open(token))


def sign_out(store: SessionStore) -> None:
    """Forget the viewer's session here, and its cookie in the browser."""
    store.close(flask.request.cookies.get(SESSION_COOKIE))
    setattr(flask.g, _COOKIE_CHANGE, "")
