"""Worker processes that run SQL through the guarded executor, so a hung query never stalls the caller.

Each worker keeps one :class:`~mcp_server.db.executor.Executor` per database target (connections stay
open between tasks) and runs statements read-only with the engine's own timeout. Tasks go out in chunks
and come back one answer per task. The parent enforces a hard deadline per task on top of the engine's
timeout, so a worker that overruns its task (a hung engine) or dies (a crashed engine) is killed and
replaced, that task is reported as a ``timeout`` (or ``execution`` error), and the tasks queued behind it
go to the replacement.

Entry points, one mechanism:

* ``run(jobs)``: one :class:`ExecOutcome` per :class:`ExecJob` (a statement on a database), in order;
* ``map(func, items)``: ``func(ctx, item)`` in the workers, where ``ctx`` is the worker's
  :class:`WorkerContext` (its executors and per-process resources such as a result cache), for
  callers that do more than execute (compare results where the rows are, time repeated runs);
* ``submit(func)``: a :class:`Submission` the caller adds tasks to one by one, then runs with
  ``results()``.

:class:`SerialPool` has the same interface, run in the calling process (tests, small runs, the
benchmark's baseline): engine timeouts only, no hard deadline.
"""

from __future__ import annotations

import logging
import math
import multiprocessing as mp
import pickle
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Generic, TypeVar

from sqlr1.mcp_server.core.config import GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry

__all__ = [
    "ExecJob",
    "ExecOutcome",
    "ExecutionPool",
    "SerialPool",
    "Submission",
    "TaskFailed",
    "WorkerContext",
    "execute_in_process",
    "execute_job",
]

log = logging.getLogger(__name__)

_CHUNK = 32  # most tasks sent to a worker in one message
_BUSY_SEND_BYTES = 16 * 1024  # largest chunk sent to a worker that is still busy (see ExecutionPool._feed)

T = TypeVar("T")
R = TypeVar("R")
Func = Callable[["WorkerContext", T], R]


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


@dataclass(frozen=True)
class TaskFailed:
    """A task that produced no result: its worker missed the deadline (``timeout``, killed and
    replaced), died (``execution``), or ``func`` raised (``execution``, with the exception)."""

    kind: str
    message: str

    def outcome(self) -> ExecOutcome:
        return ExecOutcome(ok=False, error_kind=self.kind, error_message=self.message)


Deadline = float | Callable[[T], float] | None  # seconds per task, or per task as a function of it
OnResult = Callable[[int, R | TaskFailed], None] | None


@dataclass(frozen=True)
class _Limits:
    timeout_s: float
    max_rows: int
    max_chars: int


class WorkerContext:
    """One process's executors (one per database target, built on first use) and resources.

    ``resource(key, factory)`` keeps one object per key for the life of the process (a result
    cache, say); those with a ``flush()`` method are flushed by :meth:`flush` (a serial pool's after
    each ``map``) and when the context closes, and those with ``close()`` are closed with it.
    """

    def __init__(self, limits: _Limits) -> None:
        self.timeout_s = limits.timeout_s
        self.max_rows = limits.max_rows
        self._limits = limits
        self._executors: dict[str, tuple[Executor, str]] = {}
        self._resources: dict[str, Any] = {}

    def executor(self, target: str) -> tuple[Executor, str]:
        """The executor for ``target`` and the database's name in its registry."""
        hit = self._executors.get(target)
        if hit is None:
            settings = GuardSettings(
                timeout_s=self._limits.timeout_s,
                max_rows=self._limits.max_rows,
                max_chars=self._limits.max_chars,
            )
            registry = Registry.from_targets([target], extra_functions=settings.extra_functions)
            names = registry.names()
            if len(names) != 1:
                raise ValueError(f"{target}: expected one database, the registry found {len(names)}")
            hit = self._executors[target] = (Executor(registry, settings), names[0])
        return hit

    def run(self, target: str, sql: str, *, max_rows: int | None = None) -> ExecOutcome:
        """Guard and execute one statement read-only (engine-native rows); never raises."""
        start = time.perf_counter()
        try:
            executor, name = self.executor(target)
            raw = executor.run_raw(name, sql, max_rows=max_rows or self.max_rows, timeout_s=self.timeout_s)
        except QueryFailed as exc:
            kind, message = exc.error.kind, exc.error.message
        except Exception as exc:  # an engine bug is "not executable", not a dead caller
            kind, message = "execution", f"{type(exc).__name__}: {exc}"
        else:
            rows = [r if type(r) is tuple else tuple(r) for r in raw.rows]
            elapsed = (time.perf_counter() - start) * 1000
            return ExecOutcome(ok=True, rows=rows, truncated=raw.truncated, elapsed_ms=elapsed)
        return ExecOutcome(
            ok=False,
            error_kind=kind,
            error_message=message,
            elapsed_ms=(time.perf_counter() - start) * 1000,
        )

    def resource(self, key: str, factory: Callable[[], T]) -> T:
        if key not in self._resources:
            self._resources[key] = factory()
        return self._resources[key]  # type: ignore[no-any-return]

    def flush(self) -> None:
        """Flush resources that buffer writes."""
        for res in self._resources.values():
            flush = getattr(res, "flush", None)
            if callable(flush):
                flush()

    def close(self) -> None:
        self.flush()
        for res in self._resources.values():
            close = getattr(res, "close", None)
            if callable(close):
                close()
        self._resources.clear()
        for executor, _ in self._executors.values():
            executor.registry.close()
        self._executors.clear()


def execute_job(ctx: WorkerContext, job: ExecJob) -> ExecOutcome:
    """The task of ``run``: one statement on one database."""
    return ctx.run(job.db_path, job.sql)


def _as_outcomes(results: Sequence[ExecOutcome | TaskFailed]) -> list[ExecOutcome]:
    return [r.outcome() if isinstance(r, TaskFailed) else r for r in results]


def _call(func: Func[T, R], ctx: WorkerContext, item: T) -> tuple[bool, R | str]:
    try:
        return True, func(ctx, item)
    except Exception as exc:
        return False, f"{type(exc).__name__}: {exc}"


class Submission(Generic[T, R]):
    """Tasks handed over one by one (``add``) and run together by ``results()``, for a caller that
    finds its tasks while it works (parsing completions, say). Usable as a context manager."""

    def __init__(
        self, pool: _PoolBase, func: Func[T, R], deadline: Deadline[T], on_result: OnResult[R]
    ) -> None:
        self._pool = pool
        self._func = func
        self._deadline = deadline
        self._on_result = on_result
        self.items: list[T] = []
        self._results: list[R | TaskFailed] | None = None

    def add(self, item: T) -> int:
        """Queue one task; returns its index in ``results()``."""
        if self._results is not None:
            raise RuntimeError("this submission is finished")
        self.items.append(item)
        return len(self.items) - 1

    def extend(self, items: Sequence[T]) -> None:
        for item in items:
            self.add(item)

    def results(self) -> list[R | TaskFailed]:
        """Every task's result, in order (runs those not run yet)."""
        if self._results is None:
            self._results = self._pool.map(
                self._func, self.items, deadline_s=self._deadline, on_result=self._on_result
            )
        return self._results

    def outcomes(self: Submission[ExecJob, ExecOutcome]) -> list[ExecOutcome]:
        """``results()`` of :func:`execute_job` tasks, failures as unsuccessful outcomes."""
        return _as_outcomes(self.results())

    def __enter__(self) -> Submission[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        """Nothing runs before ``results()``: a submission left unfinished costs nothing."""


class _PoolBase(ABC):
    """``map``, ``run`` and ``submit`` on top of a pool's ``_map``."""

    deadline_s = math.inf

    def map(
        self,
        func: Func[T, R],
        items: Sequence[T],
        *,
        deadline_s: Deadline[T] = None,
        on_result: OnResult[R] = None,
    ) -> list[R | TaskFailed]:
        """``func(ctx, item)`` for each item, in order (``func`` must be importable by name).

        ``deadline_s`` (default: the pool's) bounds each task, or is a function of the task for
        tasks that run several statements; ``on_result(index, result)`` is called in this process
        as results arrive.
        """
        limit = deadline_s if deadline_s is not None else self.deadline_s
        deadline = limit if callable(limit) else (lambda _item: float(limit))
        return self._map(func, items, deadline, on_result)

    @abstractmethod
    def _map(
        self,
        func: Func[T, R],
        items: Sequence[T],
        deadline: Callable[[T], float],
        on_result: OnResult[R],
    ) -> list[R | TaskFailed]: ...

    def submit(
        self, func: Func[T, R], *, deadline_s: Deadline[T] = None, on_result: OnResult[R] = None
    ) -> Submission[T, R]:
        """A :class:`Submission`: tasks added one by one, run by its ``results()``."""
        return Submission(self, func, deadline_s, on_result)

    def run(self, jobs: Sequence[ExecJob]) -> list[ExecOutcome]:
        """Execute each job; a job whose worker missed the deadline is a ``timeout`` outcome."""
        return _as_outcomes(self.map(execute_job, jobs))


class SerialPool(_PoolBase):
    """The pool's interface in the calling process: engine timeouts only, no hard deadline, so never
    use it where a hung engine must not stall the caller (a trainer)."""

    def __init__(
        self, *, timeout_s: float = 30.0, max_rows: int = 100_000, max_chars: int = 50_000_000
    ) -> None:
        self.timeout_s = timeout_s
        self._limits = _Limits(timeout_s, max_rows, max_chars)
        self.context = WorkerContext(self._limits)

    def _map(
        self,
        func: Func[T, R],
        items: Sequence[T],
        deadline: Callable[[T], float],
        on_result: OnResult[R],
    ) -> list[R | TaskFailed]:
        results: list[R | TaskFailed] = []
        try:
            for index, item in enumerate(items):
                ok, value = _call(func, self.context, item)
                results.append(value if ok else TaskFailed("execution", value))  # type: ignore[arg-type]
                if on_result is not None:
                    on_result(index, results[-1])
        finally:
            self.context.flush()
        return results

    def close(self) -> None:
        self.context.close()
        self.context = WorkerContext(self._limits)

    def __enter__(self) -> SerialPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def execute_in_process(
    jobs: Sequence[ExecJob], *, timeout_s: float = 30.0, max_rows: int = 100_000
) -> list[ExecOutcome]:
    """Run jobs serially in this process."""
    with SerialPool(timeout_s=timeout_s, max_rows=max_rows) as pool:
        return pool.run(jobs)


def fork_is_safe() -> bool:
    """fork only from a single-threaded process without torch (its threads do not survive a fork)."""
    return threading.active_count() == 1 and "torch" not in sys.modules


def _worker_main(conn: Connection, limits: _Limits) -> None:
    """Answer each task of each chunk ``(func, [item, ...])`` with its own ``(ok, result or error
    message)``, in order, until ``None``: the parent knows which task runs from the answers."""
    ctx = WorkerContext(limits)
    conn.send("ready")
    try:
        while True:
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            func, chunk = msg
            for item in chunk:
                reply = _call(func, ctx, item)
                try:
                    conn.send(reply)
                except (BrokenPipeError, OSError):
                    return
                except Exception as exc:  # an unpicklable result
                    conn.send((False, f"result not transferable: {type(exc).__name__}: {exc}"))
    finally:
        ctx.close()


class _Worker:
    def __init__(self, ctx: Any, limits: _Limits) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_worker_main, args=(child, limits), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: deque[int] = deque()  # task indices sent and not answered, the running one first
        self.since = 0.0  # when the running task started, as far as the parent knows (no earlier)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        if not self.conn.poll(timeout_s) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"SQL worker did not start within {timeout_s:.0f}s")

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class ExecutionPool(_PoolBase):
    """A fixed set of worker processes executing SQL with engine timeouts plus a hard deadline.

    ``run(jobs)`` / ``map(func, items)`` return one result per task, in order. Tasks go to a worker in
    chunks, the next chunk sent while it still works on the last one, and come back one answer per task,
    so the parent always knows which task a worker runs. A worker still on a task at that task's deadline
    (a hung engine), counted from its previous answer, is killed and replaced and the task reported as a
    ``timeout``; a worker that dies (a crashed engine) fails its running task as an ``execution`` error;
    either way the tasks queued behind it go to the replacement. Thread-safe (one ``map`` at a time).
    Use as a context manager or call :meth:`close`. Workers are forked when that is safe
    (:func:`fork_is_safe`: a single-threaded parent without torch; a spawned worker's start-up, ~0.5-1.5 s
    on a busy 2-core machine, would be most of a short evaluation run) and spawned otherwise, so a script
    using the pool needs the usual ``if __name__ == "__main__":`` guard.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        timeout_s: float = 30.0,
        max_rows: int = 100_000,
        margin_s: float = 5.0,
        deadline_s: float | None = None,
        start_method: str | None = None,
        max_chars: int = 50_000_000,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be >= 1")
        self.timeout_s = timeout_s
        self.max_rows = max_rows
        self.margin_s = margin_s
        # the parent's hard limit per job; the engine's own timeout normally answers first
        self.deadline_s = deadline_s if deadline_s is not None else timeout_s + margin_s
        self.num_workers = workers
        self.start_method = start_method
        self._limits = _Limits(timeout_s, max_rows, max_chars)
        self._lock = threading.Lock()
        self._workers: list[_Worker] = []
        self.killed = 0  # workers replaced after missing the hard deadline or dying

    def _start(self) -> _Worker:
        method = self.start_method or ("fork" if fork_is_safe() else "spawn")
        return _Worker(mp.get_context(method), self._limits)

    def _ensure_started(self) -> None:
        fresh = []
        while len(self._workers) < self.num_workers:
            fresh.append(self._start())
            self._workers.append(fresh[-1])
        for w in fresh:  # started together, awaited together
            w.wait_ready()

    def _map(
        self,
        func: Func[T, R],
        items: Sequence[T],
        deadline: Callable[[T], float],
        on_result: OnResult[R],
    ) -> list[R | TaskFailed]:
        results: list[R | TaskFailed | None] = [None] * len(items)

        def done(index: int, result: R | TaskFailed) -> None:
            results[index] = result
            if on_result is not None:
                on_result(index, result)

        def fail(slot: int, kind: str, message: str) -> None:
            """The slot's running task fails; its worker is replaced, its other tasks go back to the queue."""
            w = self._workers[slot]
            index = w.inflight.popleft()
            todo.extendleft(reversed(w.inflight))
            self._replace(slot)
            done(index, TaskFailed(kind, message))

        todo = deque(range(len(items)))
        with self._lock:
            self._ensure_started()
            try:
                while True:
                    for slot in range(len(self._workers)):
                        self._feed(slot, func, items, todo)
                    busy = [slot for slot, w in enumerate(self._workers) if w.inflight]
                    if not busy:
                        break
                    due = {
                        s: self._workers[s].since + deadline(items[self._workers[s].inflight[0]])
                        for s in busy
                    }
                    by_conn = {self._workers[s].conn: s for s in busy}
                    for conn in wait(list(by_conn), timeout=max(0.0, min(due.values()) - time.monotonic())):
                        slot = by_conn[conn]
                        w = self._workers[slot]
                        try:
                            while w.inflight and w.conn.poll():
                                ok, value = w.conn.recv()
                                index = w.inflight.popleft()
                                w.since = time.monotonic()
                                done(index, value if ok else TaskFailed("execution", value))
                        except (EOFError, OSError) as exc:
                            fail(slot, "execution", f"worker died: {exc!r}")
                    now = time.monotonic()
                    for slot in busy:
                        w = self._workers[slot]
                        if w.inflight and w.since + deadline(items[w.inflight[0]]) <= now:
                            limit = deadline(items[w.inflight[0]])
                            log.warning("SQL pool: killing a worker stuck past %.1fs", limit)
                            fail(slot, "timeout", f"no answer within {limit:.1f}s; worker killed")
            finally:
                for slot, w in enumerate(self._workers):
                    if w.inflight:  # abandoned (the caller's on_result raised): no stale answer may come back
                        self._replace(slot, failed=False)
        return [r if r is not None else TaskFailed("execution", "no result") for r in results]

    def _feed(self, slot: int, func: Func[T, R], items: Sequence[T], todo: deque[int]) -> None:
        """Send the worker a chunk of tasks while it holds at most one chunk's worth, so it never waits
        for the parent between tasks (one message per chunk, not per task: a message per task cost an
        evaluation run more CPU than its statements). A large chunk waits until the worker is idle (a
        worker blocked sending a large answer could not read it, and the parent would block sending it)."""
        w = self._workers[slot]
        size = max(1, min(_CHUNK, math.ceil(len(todo) / (2 * len(self._workers)))))
        if not todo or len(w.inflight) > size:
            return
        take = [todo.popleft() for _ in range(min(size, len(todo)))]
        data = pickle.dumps((func, [items[i] for i in take]), pickle.HIGHEST_PROTOCOL)
        if w.inflight and len(data) > _BUSY_SEND_BYTES:
            todo.extendleft(reversed(take))
            return
        try:
            w.conn.send_bytes(data)
        except (BrokenPipeError, OSError):  # it died: its replacement takes its tasks
            todo.extendleft(reversed([*w.inflight, *take]))
            self._replace(slot)
            return
        if not w.inflight:
            w.since = time.monotonic()
        w.inflight.extend(take)

    def _replace(self, slot: int, *, failed: bool = True) -> None:
        """A fresh worker in ``slot`` (the old one's unanswered tasks are the caller's to requeue)."""
        self.killed += int(failed)
        self._workers[slot].kill()
        self._workers[slot] = self._start()
        self._workers[slot].wait_ready()

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
