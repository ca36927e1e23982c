"""Thread counts that follow the free cores: real readings stay in range; simulated loads round right."""

from __future__ import annotations

import os

import pytest

from sqlr1.mcp_server.backends import cpu_threads
from sqlr1.mcp_server.backends.cpu_threads import FreeCores, usable_cores


def test_real_readings_are_between_one_and_the_usable_cores() -> None:
    cores = FreeCores(window_s=0.05)
    for fresh in (True, False, True):
        assert 1 <= cores.measure(fresh=fresh) <= usable_cores()


@pytest.mark.parametrize(
    ("others_busy", "own_busy", "expected"),
    [(0.0, 0.0, 4), (0.0, 3.9, 4), (1.0, 0.0, 3), (1.5, 1.0, 2), (2.7, 0.0, 1), (4.0, 0.0, 1)],
)
def test_free_cores_are_the_idle_share_of_other_processes(
    monkeypatch: pytest.MonkeyPatch, others_busy: float, own_busy: float, expected: int
) -> None:
    """4 cores over 1 s: busy core-seconds of other processes and of this one (its own work never
    counts against it); a core counts as free when at least 60 % of it was idle."""
    machine = iter([(0.0, 0.0), (others_busy + own_busy, 4.0)])
    own = iter([0.0, own_busy])
    monkeypatch.setattr(cpu_threads, "usable_cores", lambda: 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 4)
    monkeypatch.setattr(cpu_threads, "_machine_busy_s", lambda: next(machine))
    monkeypatch.setattr(cpu_threads, "_own_cpu_s", lambda: next(own))
    cores = FreeCores()
    assert cores.measure(fresh=False) == expected
