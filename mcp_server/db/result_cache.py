"""On-disk cache of query outcomes keyed by database content + SQL.

Gold results are computed once and reused across runs, epochs, evaluations and worker processes:
the key is ``sha256(content hash of the database file, sql)``, so editing a database invalidates
only its entries. The store is one SQLite file in WAL mode that several processes share; writes
are buffered and committed in one short transaction by :meth:`ResultCache.flush`. Content hashes
are memoised by (path, size, mtime) in the process and in the file, so a large BIRD database is
hashed once, not once per run. Rows are pickled (several times faster to read back than JSON, which
matters for large gold results) and read back by an unpickler that admits builtins and engine value
types only (decimals, dates, UUIDs), so a cache file cannot run code; an entry holding another type
reads as a miss. Timeouts are never stored: they depend on the machine's load; nor are results cut at a
row cap: they depend on the caller's ``max_rows``, and training and evaluation cap differently.

This is the one home of gold results: training's rewards (``training.gold``) and the evaluation scorer
(``agent.evaluation.scoring``) both read and write :func:`default_cache_path` unless told otherwise, so a
gold query run by one is never run again by the other.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

from sqlr1.mcp_server.core.locations import cache_root
from sqlr1.mcp_server.db.exec_pool import ExecOutcome

__all__ = ["ResultCache", "cache_key", "db_content_hash", "default_cache_path"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, rows BLOB,
    truncated INTEGER NOT NULL DEFAULT 0, error_kind TEXT, error_message TEXT);
CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, digest TEXT);
"""
_HASHES: dict[tuple[str, int, int], str] = {}


@functools.lru_cache(maxsize=4096)
def _resolved(path: str | Path) -> str:
    return str(Path(path).resolve())


def _stat_key(path: str | Path) -> tuple[str, int, int]:
    """(absolute path, size, mtime): what a memoised content hash is valid for."""
    real = _resolved(path)
    st = os.stat(real)
    return real, st.st_size, st.st_mtime_ns


def _sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def db_content_hash(path: str | Path) -> str:
    """SHA-256 of a database file's bytes (memoised in this process by path, size and mtime)."""
    key = _stat_key(path)
    hit = _HASHES.get(key)
    if hit is None:
        hit = _HASHES[key] = _sha256_file(key[0])
    return hit


def default_cache_path() -> Path:
    """The shared gold-result cache: ``gold.sqlite`` under the cache root (``mcp_server.core.locations``)."""
    return cache_root() / "gold.sqlite"


def cache_key(digest: str, sql: str) -> str:
    """The cache key of ``sql`` on a database whose content hash (or fingerprint) is ``digest``."""
    return hashlib.sha256(f"{digest}\0{sql}".encode()).hexdigest()


# What a stored row may hold besides builtins (which need no lookup): engine value types.
_VALUE_TYPES = {
    ("decimal", "Decimal"),
    ("datetime", "date"),
    ("datetime", "datetime"),
    ("datetime", "time"),
    ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("uuid", "UUID"),
}


class _ValuesUnpickler(pickle.Unpickler):
    """Reads rows back, refusing every global but value types: a cache file can't run code."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _VALUE_TYPES:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"{module}.{name} is not a value type")


def _rows_to_blob(rows: list[tuple[Any, ...]]) -> bytes:
    return pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL)


def _rows_from_blob(blob: bytes) -> list[tuple[Any, ...]]:
    rows: list[tuple[Any, ...]] = _ValuesUnpickler(io.BytesIO(blob)).load()
    return rows


class ResultCache:
    """Outcomes (rows, or an error kind and message) by :func:`cache_key`; safe for several processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._pending: dict[str, tuple[Any, ...]] = {}

    def digest(self, db: str | Path) -> str:
        """Content hash of a database file, memoised by size and mtime (here and on disk)."""
        key = _stat_key(db)
        hit = _HASHES.get(key)
        if hit is not None:
            return hit
        with self._lock:
            row = self._conn.execute(
                "SELECT digest FROM digests WHERE path = ? AND size = ? AND mtime_ns = ?", key
            ).fetchone()
        if row is not None:
            _HASHES[key] = str(row[0])
            return _HASHES[key]
        digest = db_content_hash(db)
        with self._lock:
            self._conn.execute("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)", (*key, digest))
        return digest

    def key(self, db: str | Path, sql: str) -> str:
        return cache_key(self.digest(db), sql)

    def get(self, key: str) -> ExecOutcome | None:
        row = self._pending.get(key)
        if row is None:
            with self._lock:
                row = self._conn.execute(
                    "SELECT key, ok, rows, truncated, error_kind, error_message FROM outcomes WHERE key = ?",
                    (key,),
                ).fetchone()
        if row is None:
            return None
        _, ok, rows, truncated, kind, message = row
        try:
            values = _rows_from_blob(rows) if rows is not None else None
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
            return None  # a value of another type (or a damaged entry): run the query again
        return ExecOutcome(
            ok=bool(ok),
            rows=values,
            truncated=bool(truncated),
            error_kind=kind,
            error_message=message,
        )

    def put(self, key: str, outcome: ExecOutcome) -> None:
        """Buffer an outcome (timeouts, results cut at a row cap and unstorable values are dropped);
        :meth:`flush` writes it."""
        if outcome.error_kind == "timeout" or outcome.truncated:
            return
        try:
            rows = _rows_to_blob(outcome.rows) if outcome.ok and outcome.rows is not None else None
        except (pickle.PicklingError, TypeError, AttributeError):
            return  # a value that cannot be stored: the query runs again next time
        self._pending[key] = (
            key,
            int(outcome.ok),
            rows,
            int(outcome.truncated),
            outcome.error_kind,
            outcome.error_message,
        )
        if len(self._pending) >= 256:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany(
                    "INSERT OR REPLACE INTO outcomes VALUES (?, ?, ?, ?, ?, ?)", list(self._pending.values())
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._pending.clear()

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM outcomes").fetchone()[0])

    def close(self) -> None:
        self.flush()
        with self._lock:
            self._conn.close()
