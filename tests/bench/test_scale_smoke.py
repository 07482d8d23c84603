"""The scaling benchmark at toy size: pairs spread over two worker nodes, one node killed, nothing lost."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import URL

from bench.lib.scale import run_scale_bench

PAIRS = 6
NODES = 2


@pytest.mark.slow
async def test_pairs_spread_over_nodes_and_a_killed_node_loses_no_minute(server_urls: dict[str, URL]) -> None:
    result = await run_scale_bench(server_urls["embedded"], PAIRS, NODES, speed=60.0, measure_s=10.0)
    nodes = result["per_node"]
    assert sorted(nodes) == ["w1", "w2"], "pairs go to the ingest nodes only, never the head"
    assert sum(n["pairs"] for n in nodes.values()) == PAIRS
    assert all(n["pairs"] == PAIRS // NODES for n in nodes.values()), "spread evenly"
    assert all(n["connections_open"] == 1 and n["stream_actors"] == 1 for n in nodes.values())
    assert result["steady"]["candles"] > 0 and result["targets"]["lag_p99_s_measured"] > 0
    kill = result["kill"]
    assert kill["pairs_moved"] == PAIRS // NODES
    assert kill["placement_after"] == {"head": 0, "w1": PAIRS, "w2": 0}
    assert result["missing_minutes"] == 0 and result["duplicate_minutes"] == 0
    assert 0 < result["pair_actor_uss_mib_per_pair"] < result["pair_actor_uss_mib_per_process"]
