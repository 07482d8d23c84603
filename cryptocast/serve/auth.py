"""Bearer token on mutating endpoints, when a token is configured (always, outside dev mode).

Prod mode fails closed: the router refuses to start without a token, and should a replica run
without one all the same, every write is refused rather than open.
"""

from __future__ import annotations

import hmac

from fastapi import Request

from cryptocast.serve.errors import ApiError
from cryptocast.settings import Mode, get_settings


def require_token(request: Request) -> None:
    """FastAPI dependency: ``Authorization: Bearer <CRYPTOCAST_API_TOKEN>`` or 401."""
    settings = get_settings()
    token = settings.api_token
    if token is None:
        if settings.mode is Mode.PROD:
            raise ApiError(503, "writes are disabled: the API runs in prod mode without CRYPTOCAST_API_TOKEN")
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise ApiError(
            401, "this endpoint needs 'Authorization: Bearer <token>' with the configured API token"
        )
