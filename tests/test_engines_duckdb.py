"""DuckDB engine on a concert_singer DuckDB file: read-only, locked configuration, interrupt, and the
memory-capped worker process it runs in (bounded memory for big results, a killed worker replaced)."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from child_process import run_json_child
from engine_contract import RUNAWAY, EngineContract
from service_data import duckdb_concert  # noqa: F401  (fixture)

from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.engines.base import MAX_RESULT_BYTES, DatabaseSpec
from sqlr1.mcp_server.db.engines.duckdb import DuckdbEngine


@pytest.fixture
def engine(duckdb_concert: Path) -> Iterator[DuckdbEngine]:  # noqa: F811
    eng = DuckdbEngine(
        DatabaseSpec(
            name="concert_singer", kind="duckdb", url=f"duckdb:///{duckdb_concert}", path=duckdb_concert
        )
    )
    yield eng
    eng.close()


class TestDuckdbEngine(EngineContract):
    write_attempts = (
        "INSERT INTO singer (Singer_ID, Name) VALUES (99, 'x')",
        "UPDATE singer SET Age = 0",
        "DELETE FROM singer",
        "CREATE TABLE evil (a INTEGER)",
        "CREATE TEMP TABLE evil (a INTEGER)",
        "DROP TABLE singer",
        "ATTACH 'evil.duckdb' AS evil",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
        "PRAGMA threads = 1",
        "COPY singer TO 'evil.csv'",
        "EXPORT DATABASE 'evil_dir'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CHECKPOINT",
        "SELECT 1; DELETE FROM singer",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
    )
    json_sql = "SELECT b, d, day, ts FROM blobs"
    json_expected = ("\x01\x02", 1.25, "2020-01-02", "2020-01-02T03:04:05")


def test_file_unchanged_and_nothing_written(engine: DuckdbEngine, duckdb_concert: Path) -> None:  # noqa: F811
    before = hashlib.sha256(duckdb_concert.read_bytes()).hexdigest()
    for sql in TestDuckdbEngine.write_attempts:
        with pytest.raises(QueryFailed):
            engine.execute(sql, max_rows=5, timeout_s=5)
    assert hashlib.sha256(duckdb_concert.read_bytes()).hexdigest() == before
    assert not Path("evil.csv").exists() and not Path("evil_dir").exists()


def test_file_readers_refused_by_the_engine(engine: DuckdbEngine, duckdb_concert: Path) -> None:  # noqa: F811
    # DuckDB's own reading of the statement names read_csv, which is not allowed ...
    with pytest.raises(QueryFailed) as info:
        engine.execute("SELECT * FROM read_csv('/etc/passwd')", max_rows=1, timeout_s=5)
    assert info.value.error.kind == "blocked" and info.value.error.rule == "function_not_allowed"
    assert "DuckDB reads this statement as calling read_csv" in info.value.error.message
    # ... and were it allowed, the locked configuration (no external access) still refuses the file.
    spec = DatabaseSpec(
        name="concert_singer", kind="duckdb", url=f"duckdb:///{duckdb_concert}", path=duckdb_concert
    )
    permissive = DuckdbEngine(spec, extra_functions=["read_csv"])
    try:
        with pytest.raises(QueryFailed) as info:
            permissive.execute("SELECT * FROM read_csv('/etc/passwd')", max_rows=1, timeout_s=5)
        assert info.value.error.kind == "blocked" and info.value.error.rule == "engine_read_only"
    finally:
        permissive.close()


# A process that opens the engine, warms it up, then runs one big query and reports its own peak RSS growth
# (VmHWM after resetting it) and its children's peak (the DuckDB worker, reaped by engine.close()). Its
# own data segment is capped too (the soft limit, which the worker replaces with its own), so an engine
# that computed in-process again would fail here, not swap.
_MEASURE = """
import json, os, resource, sys
from pathlib import Path
from sqlr1.mcp_server.db.engines.base import DatabaseSpec
from sqlr1.mcp_server.db.engines.duckdb import DuckdbEngine
from sqlr1.mcp_server.core.errors import QueryFailed

def status(key):
    with open("/proc/self/status", encoding="ascii") as fh:
        return next(int(line.split()[1]) // 1024 for line in fh if line.startswith(key + ":"))

path, sql, max_rows, memory_mib = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
cap = (status("VmData") + 1536) << 20
resource.setrlimit(resource.RLIMIT_DATA, (cap, resource.getrlimit(resource.RLIMIT_DATA)[1]))
engine = DuckdbEngine(DatabaseSpec(name="d", kind="duckdb", url="", path=Path(path)), memory_bytes=memory_mib << 20)
engine.execute("SELECT 1", max_rows=1, timeout_s=60)
with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
    fh.write("5")
before = status("VmRSS")
out = {}
try:
    raw = engine.execute(sql, max_rows=max_rows, timeout_s=120)
    out.update(rows=len(raw.rows), truncated=raw.truncated, chars=sum(len(r[1]) for r in raw.rows))
except QueryFailed as exc:
    out.update(kind=exc.error.kind, message=exc.error.message)
out["server_growth_mib"] = status("VmHWM") - before
out["after"] = engine.execute("SELECT 42", max_rows=1, timeout_s=60).rows
engine.close()
out["worker_peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024
print(json.dumps(out))
"""


def _measure(db: Path, sql: str, *, max_rows: int, memory_mib: int) -> dict[str, Any]:
    result = run_json_child(_MEASURE, str(db), sql, str(max_rows), str(memory_mib), timeout=600)
    print(f"\n{sql[:70]}: {result}")
    return result


def test_many_large_rows_stream_with_bounded_memory(duckdb_concert: Path) -> None:  # noqa: F811
    """100,000 rows of 100 kB (10 GB if held): rows stream until the 64 MiB text bound with `truncated` set;
    DuckDB's vectors (2,048 rows, 200 MB) live in the worker, the server only receives the capped rows."""
    sql = "SELECT i, repeat('x', 100000) AS s FROM range(100000) AS t(i)"
    got = _measure(duckdb_concert, sql, max_rows=10_000, memory_mib=2048)
    assert got.get("truncated") is True, got
    assert 1 <= got["rows"] < 10_000  # cut by the text bound before the row cap
    assert got["chars"] <= MAX_RESULT_BYTES + 100_000
    assert got["server_growth_mib"] < 192  # the capped rows arriving (in process: ~540 MiB, two vectors more)
    assert got["worker_peak_mib"] < 1024
    assert got["after"] == [[42]]


def test_huge_values_stop_at_the_worker_memory_cap(duckdb_concert: Path) -> None:  # noqa: F811
    """5,000 rows of 1 MB: DuckDB builds 2,048 of them (2 GiB) before the first row can be fetched, so no
    fetch size helps. The worker's cap stops it with a clear error; the server's memory is untouched and
    the next query runs (on a fresh worker)."""
    sql = "SELECT i, repeat('x', 1000000) AS s FROM range(5000) AS t(i)"
    got = _measure(duckdb_concert, sql, max_rows=1000, memory_mib=512)
    assert got.get("kind") == "execution" and "out of memory" in got["message"], got
    assert "512 MiB" in got["message"] and "fewer" in got["message"]
    assert got["server_growth_mib"] < 64
    assert got["worker_peak_mib"] < 512 + 256  # its cap plus what it held at start
    assert got["after"] == [[42]]


def test_a_killed_worker_fails_its_query_and_is_replaced(engine: DuckdbEngine) -> None:
    assert engine.execute("SELECT 1", max_rows=1, timeout_s=5).rows == [(1,)]
    pid = engine.worker_pid
    assert pid is not None
    killer = threading.Timer(0.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    with pytest.raises(QueryFailed) as info:
        engine.execute(RUNAWAY, max_rows=5, timeout_s=60)
    killer.join()
    assert info.value.error.kind == "execution" and "stopped" in info.value.error.message
    assert engine.execute("SELECT 2", max_rows=1, timeout_s=5).rows == [(2,)]
    assert engine.worker_pid not in (None, pid)


def test_worker_exits_with_the_engine(engine: DuckdbEngine) -> None:
    engine.execute("SELECT 1", max_rows=1, timeout_s=5)
    pid = engine.worker_pid
    assert pid is not None
    engine.close()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped, not a zombie


def test_a_huge_wide_row_reaches_the_server_only_as_far_as_any_cap_shows_it(duckdb_concert: Path) -> None:  # noqa: F811
    """One row of 10 x 20 MB values (one vector, within the worker's cap): the worker sends a bit over
    50 M characters of it (more than any character cap shows), not 200 MB."""
    sql = "SELECT 0 AS i, " + ", ".join(f"repeat('x', 20000000) AS c{i}" for i in range(10))
    got = _measure(duckdb_concert, sql, max_rows=10, memory_mib=2048)
    assert got.get("truncated") is True and got["rows"] == 1, got
    assert 50_000_000 // 11 < got["chars"] < 20_000_000  # cut, and by less than any cap shows
    assert got["server_growth_mib"] < 192  # the whole row, received: ~400 MiB


def test_trimming_the_last_row_leaves_every_capped_result_unchanged() -> None:
    from sqlr1.mcp_server.core.config import GuardSettings
    from sqlr1.mcp_server.db.engines.duckdb import _MAX_CHARS, _trim_last_row
    from sqlr1.mcp_server.db.executor import cap_rows

    assert GuardSettings.model_fields["max_chars"].metadata[-1].le == _MAX_CHARS
    # 2,400 columns, 52 M characters as the cap counts them (the bytes as text or base64)
    wide = tuple(["a" * 30_000, "é" * 30_000, ("ü" * 30_000).encode(), b"\xff" * 30_000, None, 7] * 400)
    trimmed = _trim_last_row([wide])
    assert len(trimmed) == 1 and len(trimmed[0]) == len(wide) and trimmed[0] != wide
    for max_chars in (1, 16 * 2400, 200_000, 20_000_000, 49_999_999, 50_000_000):
        assert cap_rows(trimmed, max_chars) == cap_rows([wide], max_chars), max_chars
    huge = ("z" * 90_000_000, 1)
    assert sum(len(str(v)) for v in _trim_last_row([huge])[0]) == _MAX_CHARS + 1
    for max_chars in (1, 200_000, 50_000_000):
        assert cap_rows(_trim_last_row([huge]), max_chars) == cap_rows([huge], max_chars)
    # a later row that passed the text bound: dropped when every cap stops before it, else kept
    over = [("x" * 10,), ("y" * 70_000_000,)]
    assert _trim_last_row(over) == over[:1]
    for max_chars in (1, 200_000, 50_000_000):
        assert cap_rows(_trim_last_row(over), max_chars)[0] == cap_rows(over, max_chars)[0]
    multibyte = [("x",), (("ü" * 20_000_000).encode(),)]  # 40 MB of bytes, 20 M characters
    assert _trim_last_row(multibyte) == multibyte
