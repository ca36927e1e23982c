"""Guarded execution: the one path by which serving, training and evaluation run SQL.

``Executor.run`` = guard (``mcp_server.sql.guard.check``) → engine (read-only, engine-side timeout)
→ JSON-safe rows under the row and character caps. ``run_async`` runs the same without blocking the
event loop: a cheap statement on an engine that can (SQLite's ``execute_inline``) runs on the loop's
thread under a short engine-enforced budget (``inline_budget_s``); anything that outlasts it, and
everything else, runs in a worker thread, and cancelling the awaiting task stops that query in the
engine. ``validate`` is guard + engine EXPLAIN without data. A "no such column" error gets a precise
hint from the catalog (``mcp_server.sql.column_hint``: "T1 is Employee, which has no column …") in place
of the engine's generic one. This module never decides what SQL is allowed (the guard does) and never
talks to a database driver directly (the engines do).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Hashable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from sqlr1.mcp_server.core.config import DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.core.results import JSONValue, QueryResult, json_safe
from sqlr1.mcp_server.db.cancellation import run_in_thread
from sqlr1.mcp_server.db.engines.base import (
    COLUMN_HINT,
    CancelHandle,
    RawResult,
    ResultFingerprint,
    timeout_error,
)
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.sql import guard
from sqlr1.mcp_server.sql.column_hint import column_hint
from sqlr1.mcp_server.sql.join_completion import foreign_key_links

__all__ = ["INLINE_BUDGET_S", "Executor", "cap_result", "cap_rows"]

_ELLIPSIS = "…"
INLINE_BUDGET_S = 0.002  # how long a statement may run on the event loop's thread before a worker takes over
_INLINE_MAX_SQL = 2000  # longer statements are guarded (parsed) in the worker thread too
_INLINE_MAX_CELLS = 5000  # larger results are converted and capped in the worker thread


def _shorten(value: JSONValue, budget: int) -> JSONValue:
    if isinstance(value, str) and len(value) > budget:
        return value[: max(0, budget - 1)] + _ELLIPSIS
    return value


def cap_rows(raw_rows: Sequence[Sequence[Any]], max_chars: int) -> tuple[list[list[JSONValue]], bool]:
    """JSON-safe rows, whole rows while the character budget lasts; True when characters were cut.

    A first row that alone exceeds the budget is kept with its long strings shortened, so a
    caller always sees the columns' shape.
    """
    rows: list[list[JSONValue]] = []
    used = 0
    for raw_row in raw_rows:
        row: list[JSONValue] = list(raw_row)
        size = 0
        for i, v in enumerate(row):
            if type(v) is str:
                size += len(v)
            elif v is None:
                size += 4
            else:
                if type(v) is not int:
                    v = row[i] = json_safe(v)
                size += len(v) if type(v) is str else len(str(v))
        if used + size > max_chars:
            if not rows:
                per_cell = max(16, max_chars // max(1, len(row)))
                rows.append([_shorten(v, per_cell) for v in row])
            return rows, True
        rows.append(row)
        used += size
    return rows, False


def _capped(raw: RawResult, max_chars: int) -> tuple[list[list[JSONValue]], bool]:
    """``cap_rows`` of ``raw``, skipped when the engine's bound shows it would convert and cut nothing."""
    bound = raw.plain_chars_bound
    if bound is not None and bound <= max_chars:
        # Only str, int and None values, and no more characters than the cap.
        return list(map(list, raw.rows)), False
    return cap_rows(raw.rows, max_chars)


def cap_result(raw: RawResult, max_chars: int) -> QueryResult:
    """Convert engine rows to a :class:`QueryResult` under the character cap (see :func:`cap_rows`).

    ``truncated`` is set when rows or characters were cut.
    """
    rows, cut = _capped(raw, max_chars)
    # Built from JSON-safe values (see _capped): no validation pass needed.
    return QueryResult.model_construct(
        columns=raw.columns,
        rows=rows,
        row_count=len(rows),
        truncated=raw.truncated or cut,
        elapsed_ms=round(raw.elapsed_ms, 3),
        raw_rows=raw.rows if len(rows) == len(raw.rows) else raw.rows[: len(rows)],
    )


def _cap_json(raw: RawResult, max_chars: int) -> dict[str, Any]:
    """``cap_result(raw, max_chars).to_json_dict()``: the ``execute_sql`` tool's structured result."""
    return cap_result(raw, max_chars).to_json_dict()


def _generic_column_error(failed: QueryFailed) -> bool:
    """Whether ``failed`` is an engine's "no such column" (or ambiguous column) error with the generic hint."""
    return failed.error.kind == "execution" and failed.error.message.endswith(COLUMN_HINT)


class Executor:
    """Guarded, capped, cancellable execution over a :class:`Registry`. Thread-safe and picklable."""

    def __init__(
        self,
        registry: Registry,
        settings: GuardSettings | None = None,
        *,
        max_threads: int = 16,
        inline_budget_s: float = INLINE_BUDGET_S,
    ) -> None:
        self.registry = registry
        self.settings = settings or GuardSettings()
        self.max_threads = max_threads
        self.inline_budget_s = inline_budget_s  # 0 sends every statement to a worker thread
        # The engines' own function allowlists must admit what the guard admits.
        registry.allow_functions(self.settings.extra_functions)
        registry.limit_values(self.settings.max_value_bytes)
        registry.limit_sqlite_heap(self.settings.max_sqlite_heap_bytes)
        self._limiters: weakref.WeakKeyDictionary[Any, anyio.CapacityLimiter] = weakref.WeakKeyDictionary()
        self._limiters_lock = threading.Lock()

    @classmethod
    def from_targets(
        cls, targets: Sequence[str | DatabaseConfig], settings: GuardSettings | None = None
    ) -> Executor:
        settings = settings or GuardSettings()
        return cls(Registry.from_targets(targets, extra_functions=settings.extra_functions), settings)

    def __reduce__(self) -> tuple[Any, ...]:
        make = partial(Executor, max_threads=self.max_threads, inline_budget_s=self.inline_budget_s)
        return (make, (self.registry, self.settings), None, None, None)

    # -- synchronous ---------------------------------------------------------------------------
    def check(self, database: str, sql: str) -> guard.GuardedStatement:
        """Guard ``sql`` in ``database``'s dialect (raises ``QueryFailed`` blocked/syntax/not_found)."""
        spec = self.registry.get(database)
        return guard.check(sql, spec.kind, extra_functions=self.settings.extra_functions)

    def run(
        self,
        database: str,
        sql: str,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        cancel: CancelHandle | None = None,
    ) -> QueryResult:
        """Guard, execute read-only and cap one statement. Raises ``QueryFailed`` with a structured error."""
        raw = self.run_raw(database, sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel)
        return cap_result(raw, self.settings.max_chars)

    def run_raw(
        self,
        database: str,
        sql: str,
        *,
        max_rows: int | None = None,
        timeout_s: float | None = None,
        cancel: CancelHandle | None = None,
    ) -> RawResult:
        """Guard and execute read-only, returning engine-native rows (no JSON conversion, no character cap).

        For result comparison (evaluation, rewards, voting), where values must keep their types.
        """
        statement = self.check(database, sql)
        engine = self.registry.engine(database)
        with self._column_hints(database, sql):
            return engine.execute(
                statement.sql,
                max_rows=max_rows if max_rows is not None else self.settings.max_rows,
                timeout_s=timeout_s if timeout_s is not None else self.settings.timeout_s,
                cancel=cancel,
            )

    def fingerprint(
        self,
        database: str,
        sql: str,
        *,
        timeout_s: float | None = None,
        cancel: CancelHandle | None = None,
    ) -> Hashable:
        """A fingerprint of the statement's WHOLE result, past the row and character caps
        (:class:`~mcp_server.db.engines.base.ResultFingerprint`: equal for results that are equal as bags).

        Guarded and read-only like ``run``; the engine streams every row into the fingerprint and keeps
        none, so memory stays flat whatever the result's size. Raises ``QueryFailed`` like ``run``
        (a result that cannot be read whole within the timeout is a ``timeout``).
        """
        statement = self.check(database, sql)
        fp = ResultFingerprint()
        with self._column_hints(database, sql):
            self.registry.engine(database).execute(
                statement.sql,
                max_rows=0,
                timeout_s=timeout_s if timeout_s is not None else self.settings.timeout_s,
                cancel=cancel,
                fingerprint=fp,
            )
        return fp.key()

    def validate(self, database: str, sql: str) -> guard.GuardedStatement:
        """Guard + engine dry run (EXPLAIN); returns the guarded statement or raises ``QueryFailed``."""
        return self.explain(database, sql)[0]

    def explain(self, database: str, sql: str) -> tuple[guard.GuardedStatement, RawResult]:
        """:meth:`validate`, also returning the engine's plan rows (``Engine.explain``)."""
        statement = self.check(database, sql)
        with self._column_hints(database, sql):
            plan = self.registry.engine(database).explain(statement.sql, timeout_s=self.settings.timeout_s)
        return statement, plan

    @contextmanager
    def _column_hints(self, database: str, sql: str) -> Iterator[None]:
        """Re-raise a "no such column" error with the precise hint of ``column_hint`` where it has one."""
        try:
            yield
        except QueryFailed as failed:
            hinted = self._with_column_hint(database, sql, failed)
            if hinted is failed:
                raise
            raise hinted from None

    def _with_column_hint(self, database: str, sql: str, failed: QueryFailed) -> QueryFailed:
        """``failed`` with the catalog's precise hint in place of the engine's generic one, where there is
        one (reads the catalog: call it off the event loop); else ``failed`` itself."""
        if not _generic_column_error(failed):
            return failed
        error = failed.error
        try:
            catalog = self.registry.engine(database).catalog()
            tables = {t.name: [c.name for c in t.columns] for t in catalog}
            hint = column_hint(
                error.message, sql, self.registry.get(database).kind, tables, foreign_key_links(catalog)
            )
        except Exception:  # a hint must never hide the engine's own error
            hint = None
        if hint is None:
            return failed
        message = f"{error.message.removesuffix(COLUMN_HINT)} (hint: {hint})"
        return QueryFailed(error.model_copy(update={"message": message}))

    # -- async (never blocks the event loop) ----------------------------------------------------
    def _limiter(self) -> anyio.CapacityLimiter:
        try:
            key: Any = asyncio.get_running_loop()
        except RuntimeError:  # another anyio backend: one limiter for it
            key = anyio
        with self._limiters_lock:
            limiter = self._limiters.get(key) if key is not anyio else None
            if limiter is None:
                limiter = anyio.CapacityLimiter(self.max_threads)
                if key is not anyio:
                    self._limiters[key] = limiter
            return limiter

    async def run_async(
        self, database: str, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None
    ) -> QueryResult:
        """``run`` without blocking the event loop; cancelling the awaiting task stops the query in the engine.

        A cheap statement finishes inline within ``inline_budget_s`` (no thread hand-off, so no
        cancellation point either); one that outlasts it is stopped by the engine and run again in a
        worker thread with what is left of the timeout (statements are read-only, so a second run
        returns what the first would have).
        """
        result: QueryResult = await self._run_shaped(database, sql, max_rows, timeout_s, cap_result)
        return result

    async def run_json_async(
        self, database: str, sql: str, *, max_rows: int | None = None, timeout_s: float | None = None
    ) -> dict[str, Any]:
        """``run_async(...).to_json_dict()``: the ``execute_sql`` tool's structured result."""
        result: dict[str, Any] = await self._run_shaped(database, sql, max_rows, timeout_s, _cap_json)
        return result

    async def _run_shaped(
        self,
        database: str,
        sql: str,
        max_rows: int | None,
        timeout_s: float | None,
        shape: Callable[[RawResult, int], Any],
    ) -> Any:
        """``shape(raw, max_chars)`` of the statement's engine result, run as ``run_async`` describes."""
        rows = max_rows if max_rows is not None else self.settings.max_rows
        timeout = timeout_s if timeout_s is not None else self.settings.timeout_s
        started = time.monotonic()
        try:
            raw = self._run_inline(database, sql, rows, timeout)
        except QueryFailed as failed:
            if not _generic_column_error(failed):
                raise
            # the hint reads the catalog: in a worker thread, not on the event loop
            hinted = await self._in_thread(partial(self._with_column_hint, database, sql, failed), None)
            if hinted is failed:
                raise
            raise hinted from None
        if raw is not None:
            if len(raw.rows) * max(1, len(raw.columns)) <= _INLINE_MAX_CELLS:
                return shape(raw, self.settings.max_chars)
            return await self._in_thread(partial(shape, raw, self.settings.max_chars), None)
        left = timeout - (time.monotonic() - started)
        if left <= 0:
            raise timeout_error(timeout)
        handle = CancelHandle()
        call = partial(self._run_then_shape, database, sql, rows, left, handle, shape)
        return await self._in_thread(call, handle)

    def _run_then_shape(
        self,
        database: str,
        sql: str,
        max_rows: int,
        timeout_s: float,
        cancel: CancelHandle,
        shape: Callable[[RawResult, int], Any],
    ) -> Any:
        raw = self.run_raw(database, sql, max_rows=max_rows, timeout_s=timeout_s, cancel=cancel)
        return shape(raw, self.settings.max_chars)

    def _run_inline(self, database: str, sql: str, max_rows: int, timeout_s: float) -> RawResult | None:
        """The statement's result if it ran inline within the budget, else ``None`` (run it in a thread)."""
        if self.inline_budget_s <= 0 or len(sql) > _INLINE_MAX_SQL:
            return None
        execute_inline = getattr(self.registry.engine(database), "execute_inline", None)
        if execute_inline is None:
            return None
        statement = self.check(database, sql)
        result: RawResult | None = execute_inline(
            statement.sql,
            statement.expression,
            max_rows=max_rows,
            timeout_s=timeout_s,
            budget_s=self.inline_budget_s,
        )
        return result

    async def validate_async(self, database: str, sql: str) -> guard.GuardedStatement:
        statement: guard.GuardedStatement = await self._in_thread(partial(self.validate, database, sql), None)
        return statement

    async def explain_async(self, database: str, sql: str) -> tuple[guard.GuardedStatement, RawResult]:
        result: tuple[guard.GuardedStatement, RawResult] = await self._in_thread(
            partial(self.explain, database, sql), None
        )
        return result

    async def _in_thread(self, call: Any, handle: CancelHandle | None) -> Any:
        return await run_in_thread(
            call, handle.cancel if handle is not None else None, limiter=self._limiter()
        )
