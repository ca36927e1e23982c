"""The process pool that runs reward-time SQL: predictions and gold queries, never in the trainer.

Each worker process builds its own :class:`mcp_server.executor.Executor` (guarded, read-only, with
engine-level timeouts) per database file and answers one job at a time over a pipe. The parent adds
a hard deadline on top of the engine's timeout: a worker that has not answered by
``timeout_s + margin_s`` (a hung query, a crashed engine) is killed and replaced, and its job is
reported as a ``timeout``. So a runaway query can never stall a training step.

This module owns the pool and the job/outcome values; it never decides what a result means
(that is ``training.rewards`` and ``mcp_server.compare``).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any

__all__ = ["ExecJob", "ExecOutcome", "ExecutionPool", "InProcessExecutor", "execute_in_process"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExecJob:
    """One statement to run on one database file (or any target the registry accepts)."""

    db_path: str
    sql: str


@dataclass
class ExecOutcome:
    """What happened: rows (engine-native) or an error kind with its message."""

    ok: bool
    rows: list[tuple[Any, ...]] | None = None
    truncated: bool = False
    error_kind: str | None = None
    error_message: str | None = None
    elapsed_ms: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class _ExecutorCache:
    """Per-process executors, one per database target (built lazily)."""

    def __init__(self, timeout_s: float, max_rows: int) -> None:
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self._by_target: dict[str, tuple[Any, str]] = {}

    def _executor_for(self, target: str) -> tuple[Any, str]:
        hit = self._by_target.get(target)
        if hit is not None:
            return hit
        from mcp_server.config import GuardSettings
        from mcp_server.executor import Executor
        from mcp_server.registry import Registry

        registry = Registry.from_targets([target])
        names = registry.names()
        if len(names) != 1:
            raise ValueError(f"{target}: expected one database, the registry found {len(names)}")
        settings = GuardSettings(timeout_s=self.timeout_s, max_rows=self.max_rows, max_chars=50_000_000)
        made = (Executor(registry, settings), names[0])
        self._by_target[target] = made
        return made

    def run(self, job: ExecJob) -> ExecOutcome:
        from mcp_server.errors import QueryFailed

        start = time.perf_counter()
        try:
            executor, name = self._executor_for(job.db_path)
            result = executor.run(name, job.sql, max_rows=self.max_rows, timeout_s=self.timeout_s)
        except QueryFailed as exc:
            return ExecOutcome(
                ok=False,
                error_kind=exc.error.kind,
                error_message=exc.error.message,
                elapsed_ms=(time.perf_counter() - start) * 1000,
            )
        except Exception as exc:  # an engine bug must score as "not executable", not kill the step
            return ExecOutcome(
                ok=False,
                error_kind="execution",
                error_message=f"{type(exc).__name__}: {exc}",
                elapsed_ms=(time.perf_counter() - start) * 1000,
            )
        rows = [tuple(r) for r in (result.raw_rows or [])]
        return ExecOutcome(ok=True, rows=rows, truncated=result.truncated, elapsed_ms=result.elapsed_ms)


def execute_in_process(
    jobs: Sequence[ExecJob], *, timeout_s: float = 30.0, max_rows: int = 100_000
) -> list[ExecOutcome]:
    """Run jobs serially in this process (the baseline the benchmark compares the pool against)."""
    return InProcessExecutor(timeout_s=timeout_s, max_rows=max_rows).run(jobs)


class InProcessExecutor:
    """The pool's interface, run serially in the calling process: the baseline of
    ``benchmarks/reward_throughput_bench.py``. Engine timeouts only, no hard deadline: never use it
    inside a trainer."""

    def __init__(self, *, timeout_s: float = 30.0, max_rows: int = 100_000) -> None:
        self.timeout_s = timeout_s
        self._cache = _ExecutorCache(timeout_s, max_rows)

    def run(self, jobs: Sequence[ExecJob]) -> list[ExecOutcome]:
        return [self._cache.run(j) for j in jobs]

    def close(self) -> None:
        self._cache = _ExecutorCache(self._cache.timeout_s, self._cache.max_rows)


def _worker_main(conn: Connection, timeout_s: float, max_rows: int) -> None:
    import mcp_server.executor
    import mcp_server.registry  # noqa: F401

    cache = _ExecutorCache(timeout_s, max_rows)
    conn.send("ready")
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(cache.run(job))


class _Worker:
    def __init__(self, ctx: Any, timeout_s: float, max_rows: int) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, timeout_s, max_rows), daemon=True)
        self.proc.start()
        child.close()
        self.job_index: int | None = None
        self.deadline = 0.0

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        if not self.conn.poll(timeout_s) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"reward executor worker did not start within {timeout_s:.0f}s")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class ExecutionPool:
    """A fixed set of worker processes executing SQL with engine timeouts plus a hard deadline.

    ``run(jobs)`` returns one :class:`ExecOutcome` per job, in order. Thread-safe (one batch at a
    time). Use as a context manager or call :meth:`close`. Workers are started with ``spawn`` (never
    ``fork`` from a process holding torch threads), so a script using the pool needs the usual
    ``if __name__ == "__main__":`` guard.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = 30.0,
        max_rows: int = 100_000,
        margin_s: float = 5.0,
        deadline_s: float | None = None,
        start_method: str = "spawn",
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.margin_s = margin_s
        # the parent's hard limit per job; the engine's own timeout normally answers first
        self.deadline_s = deadline_s if deadline_s is not None else timeout_s + margin_s
        self.num_workers = workers
        self._ctx = mp.get_context(start_method)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self.killed = 0  # workers replaced after missing the hard deadline

    def _ensure_started(self) -> None:
        fresh = []
        while len(self._workers) < self.num_workers:
            fresh.append(_Worker(self._ctx, self.timeout_s, self.max_rows))
            self._workers.append(fresh[-1])
        for w in fresh:  # started together, awaited together
            w.wait_ready()

    def run(self, jobs: Sequence[ExecJob]) -> list[ExecOutcome]:
        with self._lock:
            self._ensure_started()
            results: list[ExecOutcome | None] = [None] * len(jobs)
            pending = list(range(len(jobs)))
            pending.reverse()
            busy: dict[Connection, _Worker] = {}
            while pending or busy:
                for w in list(self._workers):
                    if not pending:
                        break
                    if w.job_index is None:
                        idx = pending.pop()
                        w.job_index = idx
                        w.deadline = time.monotonic() + self.deadline_s
                        try:
                            w.conn.send(jobs[idx])
                        except (BrokenPipeError, OSError):
                            self._replace(w)
                            pending.append(idx)
                            continue
                        busy[w.conn] = w
                if not busy:
                    continue
                now = time.monotonic()
                next_deadline = min(w.deadline for w in busy.values())
                ready = wait(list(busy), timeout=max(0.0, next_deadline - now))
                for conn in ready:
                    w = busy.pop(conn)  # type: ignore[arg-type]
                    idx = w.job_index
                    assert idx is not None
                    try:
                        results[idx] = conn.recv()  # type: ignore[union-attr]
                    except (EOFError, OSError) as exc:
                        results[idx] = ExecOutcome(
                            ok=False, error_kind="execution", error_message=f"worker died: {exc!r}"
                        )
                        self._replace(w)
                        continue
                    w.job_index = None
                now = time.monotonic()
                for conn, w in list(busy.items()):
                    if w.deadline <= now:
                        idx = w.job_index
                        assert idx is not None
                        log.warning("reward executor: killing a worker stuck past %.1fs", self.deadline_s)
                        results[idx] = ExecOutcome(
                            ok=False,
                            error_kind="timeout",
                            error_message=f"no answer within {self.deadline_s:.1f}s; worker killed",
                            elapsed_ms=self.deadline_s * 1000,
                        )
                        del busy[conn]
                        self._replace(w)
            return [r if r is not None else ExecOutcome(ok=False, error_kind="execution") for r in results]

    def _replace(self, w: _Worker) -> None:
        self.killed += 1
        w.kill()
        i = self._workers.index(w)
        self._workers[i] = _Worker(self._ctx, self.timeout_s, self.max_rows)
        self._workers[i].wait_ready()

    def close(self) -> None:
        with self._lock:
            for w in self._workers:
                try:
                    w.conn.send(None)
                except (BrokenPipeError, OSError):
                    log.debug("worker pipe already closed")
            for w in self._workers:
                w.proc.join(timeout=2)
                if w.proc.is_alive():
                    w.proc.kill()
                    w.proc.join(timeout=2)
                w.conn.close()
            self._workers = []

    def __enter__(self) -> ExecutionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_workers", None):
            self.close()
