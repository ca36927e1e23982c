"""Gold results: computed once through the execution pool and cached on disk.

The cache is :class:`mcp_server.db.result_cache.ResultCache` (key: the database's content hash plus
the gold SQL) in its one shared file (:func:`~mcp_server.db.result_cache.default_cache_path`, which
``sqlr1 eval`` uses too), so epochs, GRPO steps and evaluations never re-run a gold query, and
editing a database invalidates only its entries.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlr1.mcp_server.db.result_cache import ResultCache, cache_key, db_content_hash, default_cache_path
from sqlr1.training.pool import ExecJob, ExecOutcome, ExecutionPool, InProcessExecutor

__all__ = ["GoldCache", "GoldResolver", "db_content_hash", "default_cache_path"]

GoldCache = ResultCache  # training's name for the shared result cache


class GoldResolver:
    """Gold outcomes for (db, sql) pairs: memory, then disk, then the pool (once)."""

    def __init__(self, pool: ExecutionPool | InProcessExecutor, cache: ResultCache | None = None) -> None:
        self.pool = pool
        self.cache = cache
        self._memory: dict[str, ExecOutcome] = {}
        self.executed = 0  # gold queries actually run (cache misses)

    def _key(self, db: str, sql: str) -> str:
        return self.cache.key(db, sql) if self.cache is not None else cache_key(db_content_hash(db), sql)

    def resolve(self, pairs: Sequence[tuple[str, str]]) -> list[ExecOutcome]:
        keys = [self._key(db, sql) for db, sql in pairs]
        missing: dict[str, tuple[str, str]] = {}
        for key, pair in zip(keys, pairs, strict=True):
            if key in self._memory or key in missing:
                continue
            stored = self.cache.get(key) if self.cache is not None else None
            if stored is not None:
                self._memory[key] = stored
            else:
                missing[key] = pair
        if missing:
            todo = list(missing.items())
            outcomes = self.pool.run([ExecJob(db_path=db, sql=sql) for _, (db, sql) in todo])
            self.executed += len(todo)
            for (key, _), outcome in zip(todo, outcomes, strict=True):
                self._memory[key] = outcome  # a timeout is remembered for this run only
                if self.cache is not None:
                    self.cache.put(key, outcome)
            if self.cache is not None:
                self.cache.flush()
        return [self._memory[k] for k in keys]
