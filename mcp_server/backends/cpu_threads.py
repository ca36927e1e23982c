"""How many CPU threads a CPU runtime should use right now: the cores other processes leave free.

llama.cpp's threads meet at a barrier after every operation, so one thread on a core that another
process holds stalls all of them: on a 2-core machine with one core busy, 2 threads decode several
times slower than 1 (measured, benchmarks/RESULTS.md). :class:`FreeCores` measures the busy time of
the machine minus this process's own over a short window (``/proc/stat`` and the process's CPU
times) and rounds the idle share down to whole cores, never below 1 and never above the cores this
process may run on. Off Linux (no ``/proc/stat``) it answers the usable core count.
It never changes any process's priority or affinity.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

__all__ = ["FreeCores", "usable_cores"]

_PROC_STAT = Path("/proc/stat")
_FREE_SHARE = 0.6  # a core counts as free when at least this much of it was idle


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _machine_busy_s() -> tuple[float, float] | None:
    """(busy seconds, total seconds) summed over all cores since boot, or ``None`` off Linux."""
    try:
        fields = _PROC_STAT.read_text(encoding="ascii").split("\n", 1)[0].split()[1:]
    except OSError:
        return None
    ticks = [int(x) for x in fields[:8]]  # user nice system idle iowait irq softirq steal
    hz = os.sysconf("SC_CLK_TCK")
    idle = ticks[3] + ticks[4]
    total = sum(ticks)
    return (total - idle) / hz, total / hz


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system


class FreeCores:
    """Cores not used by other processes, measured between calls (or over ``window_s``)."""

    def __init__(self, window_s: float = 0.15) -> None:
        self.window_s = window_s
        self.cores = usable_cores()
        self._last = self._sample()

    def _sample(self) -> tuple[float, float, float] | None:
        machine = _machine_busy_s()
        return None if machine is None else (*machine, _own_cpu_s())

    def measure(self, *, fresh: bool) -> int:
        """Free cores: over a new ``window_s`` window (``fresh``: before work starts, as the time since
        the previous call may be long stale), else since the previous call (during work)."""
        if self._last is None:
            return self.cores
        if fresh:
            self._last = self._sample()
            time.sleep(self.window_s)
        now = self._sample()
        assert now is not None and self._last is not None
        busy, total, own = (b - a for a, b in zip(self._last, now, strict=True))
        self._last = now
        if total <= 0:
            return self.cores
        wall_cores = total / max(1, os.cpu_count() or 1)  # seconds of wall time per core
        others = max(0.0, busy - own) / max(wall_cores, 1e-9)  # cores held by other processes
        free = int(self.cores - others + (1 - _FREE_SHARE))
        return max(1, min(self.cores, free))
