"""A SQLite writer in another process holding its EXCLUSIVE lock, for tests of a locked file."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_WRITER = (
    "import sqlite3, sys\n"
    "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
    "conn.execute('BEGIN EXCLUSIVE')\n"
    "print('locked', flush=True)\n"
    "sys.stdin.readline()\n"
    "conn.execute('ROLLBACK')\n"
)


@contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold ``BEGIN EXCLUSIVE`` on ``path`` in another process until the block ends (then roll back).

    Another process, as in real use: POSIX file locks never conflict within one process, and the
    engine's SQLite (APSW's own copy) does not share the standard library's in-process lock table, so a
    lock taken in the test process would be invisible to the engine.
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        line = proc.stdout.readline().strip()
        assert line == "locked", f"the writer did not take the lock: {line!r}"
        yield
    finally:
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
