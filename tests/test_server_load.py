"""A small run of the HTTP load script: concurrent clients, mixed calls, runaway queries that stall no one."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _load_script():  # benchmarks/ is not a package: load the script itself, so the test runs what it runs
    spec = importlib.util.spec_from_file_location("http_load", REPO / "benchmarks" / "http_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["http_load"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
async def test_concurrent_clients_with_runaway_queries() -> None:
    load = _load_script()
    stats, _wall = await load.run_load(clients=8, calls=12, slow=2, deadline_s=240)
    assert stats.failures == []
    assert len(stats.latencies) == 6 * 12 + 2 * 11  # every normal call answered
    assert stats.slow_done == 2  # both runaways were stopped by the engine (as timeouts)
    assert stats.during_slow, "no other call completed while the runaway queries ran"
    assert stats.rss_kb[0][0] == "idle" and stats.rss_kb[-1][0] == "after"
