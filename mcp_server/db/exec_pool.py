"""Worker processes that run SQL through the guarded executor, so a hung query never stalls the caller.

Each worker keeps one :class:`~mcp_server.db.executor.Executor` per database target (connections stay
open between tasks) and runs statements read-only with the engine's own timeout. Tasks go out in
chunks, at most two in flight per worker (a worker never waits for its next chunk), and come back a
chunk per message. The parent enforces a hard deadline per task on top of the engine's timeout: each
worker publishes in shared memory which task it runs since when, so a worker that overruns a task
(a hung engine) or dies (a crashed engine) is killed and replaced, that very task is reported as a
``timeout`` (or ``execution`` error), and the worker's other unanswered tasks go to the next one.

Three entry points, one mechanism:

* ``run(jobs)``: one :class:`ExecOutcome` per :class:`ExecJob` (a statement on a database), in order;
* ``map(func, items)``: ``func(ctx, item)`` in the workers, where ``ctx`` is the worker's
  :class:`WorkerContext` (its executors and per-process resources such as a result cache), for
  callers that do more than execute (compare results where the rows are, time repeated runs);
* ``submit(func)``: a :class:`Submission` the caller adds tasks to one by one while it goes on
  working (parsing the next completion, say), then collects; workers start on the first chunk.

:class:`SerialPool` has the same interface, run in the calling process (tests, small runs, the
benchmark's baseline): engine timeouts only, no hard deadline.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing as mp
import os
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

from mcp_server.core.config import GuardSettings
from mcp_server.core.errors import QueryFailed
from mcp_server.db.executor import Executor
from mcp_server.db.registry import Registry

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

T = TypeVar("T")
R = TypeVar("R")
Func = Callable[["WorkerContext", T], R]

_PREFETCH_BYTES = 16 * 1024  # largest chunk sent to a worker that is still busy
_STREAM_CHUNK = 4  # tasks per chunk while the caller is still adding


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
    cache, say); those with a ``flush()`` method are flushed whenever the worker runs out of work,
    and those with ``close()`` are closed with the context.
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

    def buffers(self) -> bool:
        """Whether some resource has a ``flush()`` (for :meth:`idle`)."""
        return any(callable(getattr(r, "flush", None)) for r in self._resources.values())

    def idle(self) -> None:
        """Out of work: flush resources that buffer writes."""
        for res in self._resources.values():
            flush = getattr(res, "flush", None)
            if callable(flush):
                flush()

    def close(self) -> None:
        self.idle()
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


class Submission(ABC, Generic[T, R]):
    """Tasks handed to a pool one by one (``add``) while the caller goes on with other work; the
    pool runs them meanwhile and ``results()`` waits for the rest. Use it as a context manager: a
    submission left unfinished (an exception) is cancelled and its workers replaced."""

    def __init__(self, func: Func[T, R], on_result: OnResult[R]) -> None:
        self.func = func
        self.on_result = on_result
        self.items: list[T] = []
        self._results: list[R | TaskFailed | None] = []
        self.left = 0

    def add(self, item: T) -> int:
        """Queue one task; returns its index in ``results()``."""
        index = self._put(item)
        self._pump()
        return index

    def extend(self, items: Sequence[T]) -> None:
        for item in items:
            self._put(item)
        self._pump()

    def _put(self, item: T) -> int:
        self.items.append(item)
        self._results.append(None)
        self.left += 1
        return len(self.items) - 1

    def _pump(self) -> None:
        """Let the pool start on what is queued."""

    def done(self, index: int, result: R | TaskFailed) -> None:
        self._results[index] = result
        self.left -= 1
        if self.on_result is not None:
            self.on_result(index, result)

    def results(self) -> list[R | TaskFailed]:
        """Every task's result, in order (waits for those still running)."""
        self._finish()
        return [r if r is not None else TaskFailed("execution", "no result") for r in self._results]

    def outcomes(self: Submission[ExecJob, ExecOutcome]) -> list[ExecOutcome]:
        """``results()`` of :func:`execute_job` tasks, failures as unsuccessful outcomes."""
        return _as_outcomes(self.results())

    @abstractmethod
    def _finish(self) -> None: ...

    def _cancel(self) -> None:
        """Release the pool without waiting for the results."""

    def __enter__(self) -> Submission[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cancel()


class _PoolBase(ABC):
    """``map`` and ``run`` on top of a pool's ``submit``."""

    deadline_s = math.inf

    def submit(
        self, func: Func[T, R], *, deadline_s: Deadline[T] = None, on_result: OnResult[R] = None
    ) -> Submission[T, R]:
        """Start a submission: tasks added to it run while the caller goes on (in a process pool,
        which it holds until its ``results()`` or the end of its ``with``)."""
        limit = deadline_s if deadline_s is not None else self.deadline_s
        deadline = limit if callable(limit) else (lambda _item: float(limit))
        return self._open(func, deadline, on_result)

    @abstractmethod
    def _open(
        self, func: Func[T, R], deadline: Callable[[T], float], on_result: OnResult[R]
    ) -> Submission[T, R]: ...

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
        with self.submit(func, deadline_s=deadline_s, on_result=on_result) as sub:
            sub.extend(items)
            return sub.results()

    def run(self, jobs: Sequence[ExecJob]) -> list[ExecOutcome]:
        """Execute each job; a job whose worker missed the deadline is a ``timeout`` outcome."""
        with self.submit(execute_job) as sub:
            sub.extend(jobs)
            return sub.outcomes()


class _SerialSubmission(Submission[T, R]):
    def __init__(self, ctx: WorkerContext, func: Func[T, R], on_result: OnResult[R]) -> None:
        super().__init__(func, on_result)
        self.ctx = ctx

    def _put(self, item: T) -> int:
        index = super()._put(item)
        ok, value = _call(self.func, self.ctx, item)
        self.done(index, value if ok else TaskFailed("execution", value))  # type: ignore[arg-type]
        return index

    def _finish(self) -> None:
        self.ctx.idle()

    def _cancel(self) -> None:
        self.ctx.idle()


class SerialPool(_PoolBase):
    """The pool's interface in the calling process: engine timeouts only, no hard deadline, so never
    use it where a hung engine must not stall the caller (a trainer)."""

    def __init__(
        self, *, timeout_s: float = 30.0, max_rows: int = 100_000, max_chars: int = 50_000_000
    ) -> None:
        self.timeout_s = timeout_s
        self._limits = _Limits(timeout_s, max_rows, max_chars)
        self.context = WorkerContext(self._limits)

    def _open(
        self, func: Func[T, R], deadline: Callable[[T], float], on_result: OnResult[R]
    ) -> Submission[T, R]:
        return _SerialSubmission(self.context, func, on_result)  # tasks run as they are added

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


def _worker_main(conn: Connection, limits: _Limits, beat: Any) -> None:
    """Answer each chunk ``(func, [(task id, item), ...])`` with ``[(task id, ok, result), ...]``.

    ``beat`` (shared memory) says which task runs since when: ``[task id, start]``, the start
    zeroed while the id changes, so the parent can time out the very task that hangs.
    """
    if hasattr(os, "SCHED_BATCH"):
        # woken by a new chunk, a batch-class worker does not preempt the parent that sent it
        with contextlib.suppress(OSError):
            os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    ctx = WorkerContext(limits)
    conn.send("ready")
    try:
        while True:
            if ctx.buffers() and not conn.poll(0):
                ctx.idle()
            try:
                msg = conn.recv()
            except EOFError:
                return
            if msg is None:
                return
            func, chunk = msg
            replies = []
            for task_id, item in chunk:
                beat[1] = 0.0
                beat[0] = task_id
                beat[1] = time.monotonic()
                replies.append((task_id, *_call(func, ctx, item)))
            try:
                conn.send(replies)
            except (BrokenPipeError, OSError):
                return
            except Exception as exc:  # an unpicklable result
                why = f"result not transferable: {type(exc).__name__}: {exc}"
                conn.send([(task_id, False, why) for task_id, _ in chunk])
    finally:
        ctx.close()


class _Worker:
    def __init__(self, ctx: Any, limits: _Limits) -> None:
        self.conn, child = ctx.Pipe(duplex=True)
        self.beat = ctx.RawArray("d", [-1.0, 0.0])
        self.proc = ctx.Process(target=_worker_main, args=(child, limits, self.beat), daemon=True)
        self.proc.start()
        child.close()
        self.inflight: deque[list[int]] = deque()  # chunks of task ids, sent and unanswered, in order
        self.since = 0.0  # when the worker became busy with inflight[0] (as far as the parent knows)

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        if not self.conn.poll(timeout_s) or self.conn.recv() != "ready":
            self.kill()
            raise RuntimeError(f"SQL worker did not start within {timeout_s:.0f}s")

    def current(self) -> tuple[int, float]:
        """The task the worker runs and since when, from its beat; the oldest unanswered one (and
        when it was sent or the last answer came) when the beat names none of them."""
        while True:
            started, task_id, again = self.beat[1], self.beat[0], self.beat[1]
            if started == again:
                break
        if started and any(int(task_id) in c for c in self.inflight):
            return int(task_id), started
        return self.inflight[0][0], self.since

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(timeout=5)
        self.conn.close()


class _PoolSubmission(Submission[T, R]):
    """The parent's book-keeping for one submission; task ids are ``base + index``."""

    def __init__(
        self,
        pool: ExecutionPool,
        func: Func[T, R],
        deadline: Callable[[T], float],
        on_result: OnResult[R],
    ) -> None:
        super().__init__(func, on_result)
        self.pool = pool
        self.base = pool._next_id
        self.deadline = deadline
        self.queue: deque[int] = deque()  # task ids not sent yet
        self.finishing = False
        self.released = False

    def _put(self, item: T) -> int:
        if self.released:
            raise RuntimeError("this submission is finished")
        index = super()._put(item)
        self.queue.append(self.base + index)
        return index

    def _pump(self) -> None:
        if len(self.queue) >= _STREAM_CHUNK:
            self.pool._step(self, block=False)  # workers start while the caller adds more

    def chunk(self) -> int:
        """About two chunks per worker for what is queued; small ones only once all is added."""
        size = min(32, math.ceil(len(self.queue) / (self.pool.num_workers * 2)))
        return max(1 if self.finishing else _STREAM_CHUNK, size)

    def limit(self, task_id: int) -> float:
        return self.deadline(self.items[task_id - self.base])

    def done_task(self, task_id: int, result: R | TaskFailed) -> None:
        self.done(task_id - self.base, result)

    def _finish(self) -> None:
        self.finishing = True
        try:
            while self.left:
                self.pool._step(self, block=True)
        finally:
            self._cancel()

    def _cancel(self) -> None:
        if self.released:
            return
        self.released = True
        pool = self.pool
        try:
            pool._next_id = self.base + len(self.items)
            for w in list(pool._workers):  # unfinished: stale answers must not reach a later submission
                if w.inflight:
                    pool._replace(w, failed=False)
        finally:
            pool._lock.release()


class ExecutionPool(_PoolBase):
    """A fixed set of worker processes executing SQL with engine timeouts plus a hard deadline.

    ``run(jobs)`` / ``map(func, items)`` return one result per task, in order; ``submit(func)``
    takes tasks one by one while the caller works. Thread-safe (one submission at a time). Use as a
    context manager or call :meth:`close`. Workers are forked when that is safe
    (:func:`fork_is_safe`: a single-threaded parent without torch) and spawned otherwise, so a
    script using the pool needs the usual ``if __name__ == "__main__":`` guard.
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
        self._next_id = 0
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

    def _open(
        self, func: Func[T, R], deadline: Callable[[T], float], on_result: OnResult[R]
    ) -> Submission[T, R]:
        self._lock.acquire()
        try:
            self._ensure_started()
        except BaseException:
            self._lock.release()
            raise
        return _PoolSubmission(self, func, deadline, on_result)

    def _step(self, sub: _PoolSubmission[T, R], *, block: bool) -> None:
        """Take the workers' answers, send them what they can take, and (when ``block``) wait for
        the next answer, until the next deadline at most, replacing workers past their deadline."""
        for w in self._workers:
            if w.inflight and w.conn.poll():
                self._receive(w, sub)
        for w in list(self._workers):
            if sub.queue and len(w.inflight) < 2:
                self._send(w, sub)
        busy = [w for w in self._workers if w.inflight]
        if not block or not busy:
            return
        due = {}
        for w in busy:
            task_id, since = w.current()
            due[w] = since + sub.limit(task_id)
        timeout = max(0.0, min(due.values()) - time.monotonic())
        if len(busy) == 1:
            if busy[0].conn.poll(timeout):
                self._receive(busy[0], sub)
        else:
            by_conn = {w.conn: w for w in busy}
            for conn in wait(list(by_conn), timeout=timeout):
                self._receive(by_conn[conn], sub)
        for w in busy:
            if not w.inflight or due[w] > time.monotonic():
                continue
            task_id, since = w.current()
            limit = sub.limit(task_id)
            if since + limit <= time.monotonic():
                log.warning("SQL pool: killing a worker stuck past %.1fs", limit)
                self._fail(w, sub, task_id, "timeout", f"no answer within {limit:.1f}s; worker killed")

    def _send(self, w: _Worker, sub: _PoolSubmission[T, R]) -> None:
        take = [sub.queue.popleft() for _ in range(min(sub.chunk(), len(sub.queue)))]
        msg = (sub.func, [(i, sub.items[i - sub.base]) for i in take])
        data = pickle.dumps(msg, pickle.HIGHEST_PROTOCOL)
        if w.inflight and len(data) > _PREFETCH_BYTES:
            # A busy worker may be blocked sending a large answer: a large chunk could fill the
            # socket both ways. It waits until the worker is idle (then reading, never writing).
            sub.queue.extendleft(reversed(take))
            return
        try:
            w.conn.send_bytes(data)
        except (BrokenPipeError, OSError):
            sub.queue.extendleft(reversed(take))
            self._replace(w, failed=False)
            return
        if not w.inflight:
            w.since = time.monotonic()
        w.inflight.append(take)

    def _receive(self, w: _Worker, sub: _PoolSubmission[T, R]) -> None:
        """Take every answer the worker has sent so far (one message per chunk)."""
        try:
            while w.inflight and w.conn.poll():
                replies = w.conn.recv()
                if [r[0] for r in replies] != w.inflight[0]:
                    raise RuntimeError("SQL pool: a worker answered tasks it was not given")
                w.inflight.popleft()
                w.since = time.monotonic()
                for task_id, ok, value in replies:
                    sub.done_task(task_id, value if ok else TaskFailed("execution", value))
        except (EOFError, OSError) as exc:
            task_id, _ = w.current()
            self._fail(w, sub, task_id, "execution", f"worker died: {exc!r}")

    def _fail(self, w: _Worker, sub: _PoolSubmission[T, R], task_id: int, kind: str, message: str) -> None:
        """``task_id`` fails; the worker's other unanswered tasks go back to the queue."""
        rest = [t for c in w.inflight for t in c if t != task_id]
        sub.queue.extendleft(reversed(rest))
        self._replace(w)
        sub.done_task(task_id, TaskFailed(kind, message))

    def _replace(self, w: _Worker, *, failed: bool = True) -> None:
        self.killed += int(failed)
        w.inflight.clear()
        w.kill()
        i = self._workers.index(w)
        self._workers[i] = self._start()
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
