"""GCS fault tolerance on a Redis-backed local head: ingestion survives a GCS or a whole-head restart.

Each test runs one experiment of ``bench.lib.gcs_ft`` (own Redis, own head, own replay and
scratch database; 3-5 minutes on two cores) and checks what docs/deploy.md states about it.
"""

from __future__ import annotations

import ipaddress
import os
import shutil

import pytest
from sqlalchemy.engine import URL

from bench.lib.gcs_ft import PAIRS, SUPERVISOR, run_experiment

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def redis_server() -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have redis-server (scripts/system-deps.sh)")
        pytest.skip("redis-server is not installed (scripts/system-deps.sh)")


def _loopback(address: str) -> bool:
    ip = ipaddress.ip_address(address.rpartition(":")[0].strip("[]"))
    return (getattr(ip, "ipv4_mapped", None) or ip).is_loopback


def _no_minute_lost(result: dict) -> None:
    for pair in PAIRS:
        check = result["completeness"][pair]
        assert check["missing"] == 0 and check["duplicates"] == 0, (pair, check)
    assert result["listening"] and all(_loopback(a) for a in result["listening"]), result["listening"]
    assert result["redis_keys"] > 0  # the GCS really wrote its tables to Redis


async def test_gcs_restart_leaves_every_actor_running(server_urls: dict[str, URL]) -> None:
    result = await run_experiment(server_urls["embedded"], "gcs")
    print(result)
    _no_minute_lost(result)
    assert result["gcs_pids"][0] != result["gcs_pids"][1]
    for pair in PAIRS:
        assert result["minutes_stored_while_gcs_down"][pair] >= 1  # ingestion never waited for the GCS
    assert result["hosts"]["before"] and result["hosts"]["alive_after"] == result["hosts"]["before"]
    for name in [SUPERVISOR, *result["hosts"]["before"]]:
        actor = result["actors"][name]
        assert actor["same_actor"] and actor["same_process"], (name, actor)
        assert actor["restarts"][0] == actor["restarts"][1], (name, actor)


async def test_head_restart_brings_back_the_detached_supervisor(server_urls: dict[str, URL]) -> None:
    result = await run_experiment(server_urls["embedded"], "head")
    print(result)
    _no_minute_lost(result)
    assert result["stopped_processes_left"] == 0
    supervisor = result["actors"][SUPERVISOR]
    assert supervisor["same_actor"] and not supervisor["same_process"]  # restarted by Ray, same actor
    assert supervisor["restarts"][1] > supervisor["restarts"][0]
    # The node is new, so are the pair hosts on it (named for their node); the pairs are theirs again.
    assert result["hosts"]["alive_after"] and not set(result["hosts"]["alive_after"]) & set(
        result["hosts"]["before"]
    )
