"""The write guard as the API mounts it: 401 without the token, and prod mode without a token fails
closed (503 on every write) instead of leaving writes open."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from cryptocast.serve import errors
from cryptocast.serve.auth import require_token
from cryptocast.settings import get_settings

TOKEN = "a-random-token-of-32-characters!"
PASSWORD_URL = "postgresql://u:s3cret-Long-Passw0rd@db/x"


def _writes() -> TestClient:
    app = FastAPI()
    errors.install(app)

    @app.post("/pairs", dependencies=[Depends(require_token)])
    async def add() -> dict:
        return {"ok": True}

    return TestClient(app)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    for key in ("CRYPTOCAST_API_TOKEN", "CRYPTOCAST_MODE", "CRYPTOCAST_BIND_HOST"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("CRYPTOCAST_DATABASE_URL", PASSWORD_URL)
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def test_a_configured_token_is_required(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRYPTOCAST_API_TOKEN", TOKEN)
    client = _writes()
    assert client.post("/pairs").status_code == 401
    assert client.post("/pairs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/pairs", headers={"Authorization": f"Bearer {TOKEN}"}).json() == {"ok": True}


def test_prod_mode_without_a_token_refuses_every_write(env: pytest.MonkeyPatch) -> None:
    env.setenv("CRYPTOCAST_MODE", "prod")
    reply = _writes().post("/pairs")
    assert reply.status_code == 503 and "without CRYPTOCAST_API_TOKEN" in reply.json()["message"]


def test_dev_mode_on_loopback_leaves_writes_open(env: pytest.MonkeyPatch) -> None:
    assert _writes().post("/pairs").json() == {"ok": True}
