"""On-disk cache of query results keyed by database content + SQL.

Gold results are computed once and reused across runs, epochs and workers. The
store is one SQLite file in WAL mode so several worker processes can share it.
Content hashes of database files are memoised by (path, size, mtime) so large
BIRD databases are hashed once, not once per run.
"""

from __future__ import annotations

import hashlib
import pickle
import sqlite3
import threading
from pathlib import Path
from typing import Any

__all__ = ["ResultCache", "file_digest"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, ok INTEGER NOT NULL, payload BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER, digest TEXT);
"""


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResultCache:
    """Results (rows or an error message) keyed by ``sha256(db digest, sql)``."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(path, timeout=60, check_same_thread=False, isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._digests: dict[Path, str] = {}
        self._pending: dict[str, tuple[int, bytes]] = {}

    def digest(self, db: Path) -> str:
        """Content digest of a database file, memoised by size and mtime."""
        if db in self._digests:
            return self._digests[db]
        st = db.stat()
        with self._lock:
            row = self._conn.execute(
                "SELECT digest FROM digests WHERE path = ? AND size = ? AND mtime_ns = ?",
                (str(db.resolve()), st.st_size, st.st_mtime_ns),
            ).fetchone()
        if row:
            digest = str(row[0])
        else:
            digest = file_digest(db)
            with self._lock:
                self._conn.execute(
                    "INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?)",
                    (str(db.resolve()), st.st_size, st.st_mtime_ns, digest),
                )
        self._digests[db] = digest
        return digest

    def key(self, db: Path, sql: str) -> str:
        return hashlib.sha256(f"{self.digest(db)}\0{sql}".encode()).hexdigest()

    def get(self, key: str) -> tuple[bool, Any] | None:
        """``(True, rows)`` or ``(False, error message)``; None when not cached."""
        row: tuple[int, bytes] | None = self._pending.get(key)
        if row is None:
            with self._lock:
                row = self._conn.execute("SELECT ok, payload FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        return bool(row[0]), pickle.loads(row[1])

    def put(self, key: str, ok: bool, payload: Any) -> None:
        """Buffer a result; :meth:`flush` writes the buffer in one short transaction."""
        self._pending[key] = (int(ok), pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
        if len(self._pending) >= 256:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        with self._lock:
            rows = [(k, ok, blob) for k, (ok, blob) in self._pending.items()]
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.executemany("INSERT OR REPLACE INTO results VALUES (?, ?, ?)", rows)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._pending.clear()

    def close(self) -> None:
        self.flush()
        self._conn.close()
