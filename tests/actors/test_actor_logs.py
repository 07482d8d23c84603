"""With JSON logging chosen where Ray is started, a pair actor in its own Ray worker process logs
JSON lines too (the choice travels in the environment; ``cryptocast/logs.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray
from sqlalchemy.engine import URL

from cryptocast.logs import JSON_ENV, LEVEL_ENV, setup_logging
from cryptocast.sql.urlfile import write_url
from tests.helpers import eventually, free_port

pytestmark = [pytest.mark.embedded_only, pytest.mark.slow]
UNTRACKED = "LTCBTC"  # the actor fails at its start (no such pair row) and logs why


@pytest.fixture
def ray_json_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    from cryptocast.actors.ray_runtime import start_ray, stop_ray

    for name in (LEVEL_ENV, JSON_ENV):
        monkeypatch.delenv(name, raising=False)  # restored after the test
    setup_logging("INFO", json_lines=True)  # what `cryptocast --log-json ...` does first
    start_ray(num_cpus=2)
    try:
        yield Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    finally:
        stop_ray()
        setup_logging("INFO")


def _lines_about(logs: Path, needle: str) -> list[str]:
    return [
        line
        for path in logs.glob("worker-*.err")
        for line in path.read_text(errors="replace").splitlines()
        if needle in line
    ]


async def test_a_pair_actor_logs_json_lines(ray_json_logs: Path, db_url: URL, tmp_path: Path) -> None:
    from cryptocast.actors.nodes import NAMESPACE
    from cryptocast.actors.pair import PairActor

    port = free_port()  # nothing listens: the pair fails before it asks the exchange anything
    url_file = write_url(db_url.render_as_string(hide_password=False), tmp_path)
    actor = PairActor.options(namespace=NAMESPACE).remote(  # type: ignore[attr-defined]
        url_file, f"http://127.0.0.1:{port}/api", f"ws://127.0.0.1:{port}/", None, 0, 6000
    )
    try:
        await actor.add.remote(UNTRACKED)
        statuses = await eventually(
            actor.status.remote, "the pair's start failed", until=lambda s: s[UNTRACKED]["finished"]
        )
        assert "not a tracked pair" in statuses[UNTRACKED]["error"]
        lines = await eventually(
            lambda: _lines_about(ray_json_logs, "ingestion failed"), "the actor's log line", until=bool
        )
    finally:
        ray.kill(actor)
    entry = json.loads(lines[-1])
    assert entry["level"] == "error" and entry["pair"] == UNTRACKED
    assert entry["logger"] == "cryptocast.actors.pair" and "WriteError" in entry["exc"]
