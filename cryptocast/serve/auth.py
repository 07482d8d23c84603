"""Bearer token on mutating endpoints, when a token is configured (always, outside dev mode)."""

from __future__ import annotations

import hmac

from fastapi import Request

from cryptocast.serve.errors import ApiError
from cryptocast.settings import get_settings


def require_token(request: Request) -> None:
    """FastAPI dependency: ``Authorization: Bearer <CRYPTOCAST_API_TOKEN>`` or 401."""
    token = get_settings().api_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.get_secret_value().encode()):
        raise ApiError(401, "this endpoint needs 'Authorization: Bearer <token>' with the configured API token")
