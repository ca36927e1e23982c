"""A small run of benchmarks/load_test.py: concurrent HTTP clients without and with slow clients.

The full 50 x 100 run and its figures are in benchmarks/RESULTS.md; this one (10 clients x 20 calls,
2 of them also sending 2 s queries) checks the same properties: no failed call, every slow query
stopped by the engine, normal calls answered while slow queries run, and a server that stays up.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("load_test", REPO / "benchmarks" / "load_test.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["load_test"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_slow_clients_stall_no_one() -> None:
    script = _script()
    figures, failures = script.compare(clients=10, calls=20, slow=2, deadline_s=240)
    assert failures == []
    none, slow = figures["none"], figures["slow"]
    assert none["calls"] == 10 * 20 and none["slow_done"] == 0
    assert slow["calls"] == 10 * 20 - 2 * 2 and slow["slow_done"] == 2 * 2  # every slow query was stopped
    assert slow["during_n"] > 0  # other calls completed while slow queries were in flight
    text = script.render(figures, argparse.Namespace(clients=10, calls=20, slow=2))
    print("\n" + text)
    assert "| no slow clients | 0 |" in text and "| 2 slow clients | 0 |" in text
