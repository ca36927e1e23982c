"""Shared fixtures: bundled test databases, the shared benchmark data, and service URLs.

Service-backed tests take their URL from an env var with the documented default. Under
``CI=true`` an unreachable service or missing shared data fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink

TESTS = Path(__file__).parent
FIXTURES = TESTS / "data"
REPO = TESTS.parent
IN_CI = os.environ.get("CI", "").lower() == "true"

# The suite's commands run the small SmolLM2 (+ shipped adapter) unless a test names a model: the
# default model (a 0.5B GGUF on llama.cpp) has its own few slow tests (test_default_model.py).
os.environ.setdefault("SQLR1_DEFAULT_MODEL", "smollm2-135m")

POSTGRES_URL = os.environ.get("SQLR1_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MARIADB_URL = os.environ.get("SQLR1_TEST_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def unavailable(reason: str) -> None:
    """Skip locally, fail under CI: CI must run every test."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: required)")
    pytest.skip(reason)


def shared_data_dir() -> Path | None:
    env = os.environ.get("SQLR1_DATA")
    candidates = [Path(env)] if env else []
    candidates += [REPO.parent / "shared" / "data", REPO / "shared" / "data"]
    for c in candidates:
        if (c / "spider" / "dev.json").is_file():
            return c
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        unavailable("shared benchmark data not found (set SQLR1_DATA or place it at ../shared/data)")
    assert d is not None
    return d


@pytest.fixture
def spider_copy(tmp_path: Path):
    """Copy a bundled Spider fixture database into tmp_path; returns a function db_id -> path."""

    def _copy(db_id: str) -> Path:
        src = FIXTURES / "spider" / db_id / f"{db_id}.sqlite"
        dst = tmp_path / db_id / f"{db_id}.sqlite"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    return _copy


@pytest.fixture(scope="session")
def chinook_tables() -> dict[str, list[str]]:
    """The bundled Chinook's catalog: table name -> its column names (read-only)."""
    import sqlite3

    con = sqlite3.connect(f"file:{REPO / 'examples' / 'chinook.sqlite'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {t: [r[1] for r in con.execute(f'PRAGMA table_info("{t}")')] for t in names}
    finally:
        con.close()


@pytest.fixture(scope="session")
def chinook_links() -> list[ForeignKeyLink]:
    """The bundled Chinook's foreign keys, as ``sql.join_completion`` reads them."""
    import sqlite3

    from sqlr1.mcp_server.sql.join_completion import ForeignKeyLink

    con = sqlite3.connect(f"file:{REPO / 'examples' / 'chinook.sqlite'}?mode=ro", uri=True)
    try:
        names = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        links = []
        for table in names:
            keys: dict[int, list[tuple[str, str, str]]] = {}
            for row in con.execute(f'PRAGMA foreign_key_list("{table}")'):
                keys.setdefault(row[0], []).append((row[2], row[3], row[4]))
            for rows in keys.values():
                cols, refs = (tuple(r[1] for r in rows), tuple(r[2] for r in rows))
                links.append(ForeignKeyLink(table, cols, rows[0][0], refs))
        return links
    finally:
        con.close()


@pytest.fixture
def chinook_copy(tmp_path: Path) -> Path:
    dst = tmp_path / "chinook.sqlite"
    shutil.copyfile(REPO / "examples" / "chinook.sqlite", dst)
    return dst


def _reachable(url: str) -> str | None:
    try:
        import sqlalchemy as sa

        eng = sa.create_engine(url)
        with eng.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        eng.dispose()
        return None
    except Exception as exc:  # report why the service is unusable
        return f"{type(exc).__name__}: {exc}"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    err = _reachable(POSTGRES_URL)
    if err:
        unavailable(f"PostgreSQL not reachable at {POSTGRES_URL}: {err}")
    yield POSTGRES_URL


@pytest.fixture(scope="session")
def mariadb_url() -> Iterator[str]:
    err = _reachable(MARIADB_URL)
    if err:
        unavailable(f"MariaDB not reachable at {MARIADB_URL}: {err}")
    yield MARIADB_URL
