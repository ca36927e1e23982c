"""On-disk cache of query outcomes keyed by database content + SQL.

Gold results are computed once and reused across runs, epochs, evaluations and worker processes:
the key is ``sha256(content hash of the database file, sql)``, so editing a database invalidates
only its entries. The store is one SQLite file in WAL mode that several processes share; writes
are buffered and committed in one short transaction by :meth:`ResultCache.flush`. Content hashes
are memoised by (path, size, mtime) in the process and in the file, so a large BIRD database is
hashed once, not once per run. Rows are stored as tagged JSON (bytes, decimals and dates survive
the round trip), never pickled. Timeouts are never stored: they depend on the machine's load.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import functools
import hashlib
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mcp_server.exec_pool import ExecOutcome

__all__ = ["ResultCache", "db_content_hash", "result_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, rows TEXT,
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


def result_key(digest: str, sql: str) -> str:
    """The cache key of ``sql`` on a database whose content hash (or fingerprint) is ``digest``."""
    return hashlib.sha256(f"{digest}\0{sql}".encode()).hexdigest()


_TAGS = {"$b", "$d", "$dt", "$date", "$time", "$td", "$s"}


def _enc(v: Any) -> Any:
    """JSON's ``default``: values JSON has no type for, tagged."""
    if isinstance(v, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(v)).decode("ascii")}
    if isinstance(v, decimal.Decimal):
        return {"$d": str(v)}
    if isinstance(v, dt.datetime):
        return {"$dt": v.isoformat()}
    if isinstance(v, dt.date):
        return {"$date": v.isoformat()}
    if isinstance(v, dt.time):
        return {"$time": v.isoformat()}
    if isinstance(v, dt.timedelta):
        return {"$td": v.total_seconds()}
    return {"$s": str(v)}


_DECODE: dict[str, Callable[[Any], Any]] = {
    "$b": base64.b64decode,
    "$d": decimal.Decimal,
    "$dt": dt.datetime.fromisoformat,
    "$date": dt.date.fromisoformat,
    "$time": dt.time.fromisoformat,
    "$td": lambda s: dt.timedelta(seconds=s),
    "$s": str,
}


def _dec(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, value),) = obj.items()
        if tag in _TAGS:
            return _DECODE[tag](value)
    return obj


def _rows_to_json(rows: list[tuple[Any, ...]]) -> str:
    return json.dumps(rows, default=_enc, ensure_ascii=False)


def _rows_from_json(text: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in json.loads(text, object_hook=_dec)]


class ResultCache:
    """Outcomes (rows, or an error kind and message) by :func:`result_key`; safe for several processes."""

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
        return result_key(self.digest(db), sql)

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
        return ExecOutcome(
            ok=bool(ok),
            rows=_rows_from_json(rows) if rows is not None else None,
            truncated=bool(truncated),
            error_kind=kind,
            error_message=message,
        )

    def put(self, key: str, outcome: ExecOutcome) -> None:
        """Buffer an outcome (timeouts are dropped); :meth:`flush` writes the buffer."""
        if outcome.error_kind == "timeout":
            return
        rows = _rows_to_json(outcome.rows) if outcome.ok and outcome.rows is not None else None
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
