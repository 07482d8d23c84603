"""The database password stays out of everything Ray and Serve record.

The served URL carries a password (``DB_PASSWORD``). Serve keeps application args in its deployed
config and checkpoints and shows them in ``serve status``; Ray writes logs, runtime environments and
more under its session folder. The password must be in none of them, while the replicas and the
background actors still reach the database through the owner-only file the driver wrote.
"""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from sqlalchemy.engine import URL

from cryptocast.serve.config import ROUTER_APP, pair_app_name
from cryptocast.serve.deploy import deployed_applications
from cryptocast.settings import get_settings
from cryptocast.sql import command_queue
from cryptocast.sql.database import Database
from cryptocast.sql.urlfile import read_url, write_url
from tests.helpers import eventually
from tests.serve.conftest import DB_PASSWORD, PAIR, Served

pytestmark = pytest.mark.slow

ACTORS_PASSWORD = "background-actors-db-password-3c8f0a61"
OWNER_ONLY = 0o600


def _session_files() -> Iterator[Path]:
    session = Path(ray._private.worker._global_node.get_session_dir_path())
    return (path for path in session.rglob("*") if path.is_file() and not path.is_symlink())


def _files_holding(secret: str) -> list[str]:
    needle = secret.encode()
    return [str(path) for path in _session_files() if needle in path.read_bytes()]


def _serve_details() -> str:
    from ray.serve.context import _get_global_client

    return json.dumps(_get_global_client().get_serve_details(), default=str)


async def test_password_is_in_no_serve_config_status_or_ray_file(served: Served, client) -> None:
    assert DB_PASSWORD in served.db_url  # the fixture really served a URL with a password
    reply = await client.get(f"/pairs/{PAIR}")  # the replicas did reach the database
    assert reply.status_code == 200 and reply.json()["status"] == "live", reply.text

    deployed = await asyncio.to_thread(deployed_applications)
    router_args = deployed[ROUTER_APP]["args"]
    for app in (ROUTER_APP, pair_app_name(PAIR)):
        assert DB_PASSWORD not in json.dumps(deployed[app]), app
        assert "database_url" not in deployed[app]["args"], app
    assert DB_PASSWORD not in await asyncio.to_thread(_serve_details)

    secret_file = Path(router_args["database_url_file"])
    assert stat.S_IMODE(secret_file.stat().st_mode) == OWNER_ONLY
    assert stat.S_IMODE(secret_file.parent.stat().st_mode) == 0o700
    assert read_url(str(secret_file)) == served.db_url

    assert await asyncio.to_thread(_files_holding, DB_PASSWORD) == []


async def test_background_actors_connect_without_the_password_in_ray(
    served: Served, db_url: URL, tmp_path: Path
) -> None:
    from cryptocast.system import start_background, stop_background

    url = db_url if db_url.password else db_url.set(password=ACTORS_PASSWORD)
    plain = url.render_as_string(hide_password=False)
    settings = get_settings().model_copy(update={"data_dir": tmp_path})
    background = start_background(settings, plain, training=True, tune_storage=tmp_path / "tune")
    db = Database(url)
    try:
        assert (await background.supervisor.snapshot.remote())["pairs"] == {}  # it read the database
        assert await eventually(
            lambda: command_queue.service(db, command_queue.SCHEDULER_SERVICE),
            "the training scheduler registered",
            timeout_s=60,
            every_s=0.25,
        )
        assert await asyncio.to_thread(_files_holding, url.password) == []
    finally:
        await asyncio.to_thread(stop_background, background)
        await db.dispose()


def test_url_file_is_owner_only_and_read_back(tmp_path: Path) -> None:
    url = "postgresql://cryptocast:p%40ss@db.example:5432/cryptocast"
    path = Path(write_url(url, tmp_path / "secrets"))
    assert stat.S_IMODE(path.stat().st_mode) == OWNER_ONLY
    assert "p%40ss" not in path.name and read_url(str(path)) == url
    assert write_url(url.replace("p%40ss", "rotated"), tmp_path / "secrets") == str(
        path
    )  # one file per database
    assert read_url(str(path)).endswith("rotated@db.example:5432/cryptocast")


def test_missing_url_file_falls_back_to_the_environment_or_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = str(tmp_path / "absent")
    monkeypatch.setenv("CRYPTOCAST_DATABASE_URL", "postgresql://u:from-env@db/x")
    get_settings.cache_clear()
    try:
        assert read_url(missing) == "postgresql://u:from-env@db/x"  # a pod on another machine
        monkeypatch.delenv("CRYPTOCAST_DATABASE_URL")
        get_settings.cache_clear()
        with pytest.raises(
            RuntimeError, match=f"{missing} is missing and CRYPTOCAST_DATABASE_URL is not set"
        ):
            read_url(missing)
    finally:
        get_settings.cache_clear()
