"""Gold results: computed once through the execution pool and cached on disk.

The cache key is the database's content hash plus the gold SQL, so epochs, GRPO steps and
evaluations never re-run a gold query, and editing a database invalidates only its entries.
Rows are stored as tagged JSON (bytes and decimals survive the round trip), never pickled.
"""

from __future__ import annotations

import base64
import decimal
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.pool import ExecJob, ExecOutcome, ExecutionPool, InProcessExecutor

__all__ = ["GoldCache", "GoldResolver", "db_content_hash"]

_HASHES: dict[tuple[str, int, int], str] = {}


def db_content_hash(path: str | Path) -> str:
    """SHA-256 of a database file's bytes (memoized by path, size and mtime)."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    hit = _HASHES.get(key)
    if hit is not None:
        return hit
    h = hashlib.sha256()
    with p.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    digest = h.hexdigest()
    _HASHES[key] = digest
    return digest


def _enc(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, decimal.Decimal):
        return {"$d": str(v)}
    return {"$s": str(v)}


def _dec(v: Any) -> Any:
    if isinstance(v, dict):
        if "$b" in v:
            return base64.b64decode(v["$b"])
        if "$d" in v:
            return decimal.Decimal(v["$d"])
        return v.get("$s")
    return v


def _rows_to_json(rows: list[tuple[Any, ...]]) -> str:
    return json.dumps([[_enc(v) for v in r] for r in rows], ensure_ascii=False)


def _rows_from_json(text: str) -> list[tuple[Any, ...]]:
    return [tuple(_dec(v) for v in r) for r in json.loads(text)]


class GoldCache:
    """A small SQLite key-value store of gold outcomes (safe for several trainer ranks)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), timeout=60, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS gold (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, rows TEXT,"
            " truncated INTEGER NOT NULL DEFAULT 0, error_kind TEXT, error_message TEXT)"
        )
        self._conn.commit()

    @staticmethod
    def key(db_path: str, sql: str) -> str:
        return hashlib.sha256(f"{db_content_hash(db_path)}\0{sql}".encode()).hexdigest()

    def get(self, key: str) -> ExecOutcome | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT ok, rows, truncated, error_kind, error_message FROM gold WHERE key = ?", (key,)
            ).fetchone()
        if row is None:
            return None
        ok, rows, truncated, kind, message = row
        return ExecOutcome(
            ok=bool(ok),
            rows=_rows_from_json(rows) if rows is not None else None,
            truncated=bool(truncated),
            error_kind=kind,
            error_message=message,
        )

    def put(self, key: str, outcome: ExecOutcome) -> None:
        rows = _rows_to_json(outcome.rows) if outcome.ok and outcome.rows is not None else None
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO gold (key, ok, rows, truncated, error_kind, error_message)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (
                    key,
                    int(outcome.ok),
                    rows,
                    int(outcome.truncated),
                    outcome.error_kind,
                    outcome.error_message,
                ),
            )
            self._conn.commit()

    def __len__(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM gold").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def default_cache_path() -> Path:
    """``$SQLR1_CACHE/gold.sqlite``, else the user cache directory."""
    env = os.environ.get("SQLR1_CACHE")
    if env:
        return Path(env) / "gold.sqlite"
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("sqlr1")) / "gold.sqlite"


class GoldResolver:
    """Gold outcomes for (db, sql) pairs: memory, then disk, then the pool (once)."""

    def __init__(self, pool: ExecutionPool | InProcessExecutor, cache: GoldCache | None = None) -> None:
        self.pool = pool
        self.cache = cache
        self._memory: dict[str, ExecOutcome] = {}
        self.executed = 0  # gold queries actually run (cache misses)

    def resolve(self, pairs: Sequence[tuple[str, str]]) -> list[ExecOutcome]:
        keys = [GoldCache.key(db, sql) for db, sql in pairs]
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
                self._memory[key] = outcome
                # a timeout depends on the machine's load: remember it for this run only
                if self.cache is not None and outcome.error_kind != "timeout":
                    self.cache.put(key, outcome)
        return [self._memory[k] for k in keys]
