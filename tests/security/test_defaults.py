"""Safe defaults and strict configuration, as a real ``sqlr1 serve`` process applies them.

Complements tests/test_server_http_policy.py (config defaults, token/401, loopback rules in-process),
tests/test_server_transports.py (banner, DNS rebinding, refusal off loopback) and tests/test_cli.py
(a guard-key typo): here the running server enforces the default caps and timeout, prints the
effective settings it was given, and every kind of bad configuration stops it with exit code 2 and
a message naming the offending key, option or value, before anything is served.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import anyio
import pytest
from mcp import Client
from mcp_text import first_text

from sqlr1.mcp_server.core.config import AppConfig, load_config
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.protocol.http_app import host_policy

REPO = Path(__file__).resolve().parents[2]
TRACKS = 3503
START_S = 60


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SQLR1_TOKEN"}


def sqlr1(*args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sqlr1.mcp_server.cli.main", *args],
        cwd=str(REPO),
        env={**env(), **(extra_env or {})},
        capture_output=True,
        text=True,
        timeout=START_S,
        stdin=subprocess.DEVNULL,
    )


class Served:
    def __init__(self, proc: subprocess.Popen[str], url: str, banner: str) -> None:
        self.proc, self.url, self.banner = proc, url, banner


def start(*args: str) -> Generator[Served, None, None]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sqlr1.mcp_server.cli.main", *args, "serve", "--http", "--port", "0"],
        cwd=str(REPO),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = ""
    try:
        for line in proc.stderr:
            banner += line
            if m := re.search(r"(http://[^\s]+/mcp)", line):
                yield Served(proc, m.group(1), banner)
                break
        else:
            pytest.fail(f"the server did not start: {banner}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def default_server(chinook_copy: Path) -> Iterator[Served]:
    yield from start("--db", f"chinook={chinook_copy}")


def test_config_defaults_are_the_safe_ones() -> None:
    cfg = AppConfig()
    assert (cfg.guard.read_only, cfg.guard.timeout_s, cfg.guard.max_rows, cfg.guard.max_chars) == (
        True,
        30.0,
        1000,
        200_000,
    )
    assert cfg.guard.extra_functions == [] and cfg.databases == []
    assert (cfg.server.host, cfg.server.token, cfg.server.allowed_hosts) == ("127.0.0.1", None, [])
    policy = host_policy(cfg.server)  # DNS-rebinding protection: loopback names on the server's own port only
    assert policy.allows_host("127.0.0.1:8765", 8765) and not policy.allows_host("evil.example:8765", 8765)


async def test_running_server_applies_the_defaults(default_server: Served) -> None:
    banner = default_server.banner
    # bound to loopback, and the effective guard settings are printed at start
    assert default_server.url.startswith("http://127.0.0.1:")
    for setting in (
        "read_only=True",
        "timeout_s=30",
        "max_rows=1000",
        "max_chars=200000",
        "max_value_bytes=16777216",
        "max_sqlite_heap_bytes=268435456",
        "extra_functions=none",
    ):
        assert setting in banner, (setting, banner)
    with anyio.fail_after(60):
        async with Client(default_server.url) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
            assert "1000" in (tools["execute_sql"].description or "")  # the cap is advertised
            assert "30 s" in (tools["execute_sql"].description or "")
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": "SELECT * FROM Track"})
            data = res.structured_content
            assert data["row_count"] == 1000 and data["truncated"] is True  # default row cap (of 3503)
            res = await client.call_tool(
                "execute_sql",
                {"database": "chinook", "sql": "SELECT t.Name, a.Title, t.Composer FROM Track t, Album a"},
            )
            data = res.structured_content
            assert data["truncated"] is True
            chars = sum(len(str(v)) for row in data["rows"] for v in row if v is not None)
            assert chars <= 200_000  # default character cap
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": "DELETE FROM Track"})
            assert res.is_error and "blocked" in first_text(res)  # read-only
            res = await client.call_tool(
                "execute_sql", {"database": "chinook", "sql": "SELECT count(*) FROM Track"}
            )
            assert res.structured_content["rows"] == [[TRACKS]]


def test_effective_settings_printed_are_the_configured_ones(tmp_path: Path, chinook_copy: Path) -> None:
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text(
        "[guard]\ntimeout_s = 7.5\nmax_rows = 12\nmax_chars = 3456\nmax_sqlite_heap_bytes = 67108864\n"
        'extra_functions = ["unicode"]\n',
        encoding="utf-8",
    )
    served = start("--config", str(cfg), "--db", f"chinook={chinook_copy}")
    s = next(served)
    try:
        for setting in (
            "read_only=True",
            "timeout_s=7.5",
            "max_rows=12",
            "max_chars=3456",
            "max_sqlite_heap_bytes=67108864",
            "extra_functions=unicode",
        ):
            assert setting in s.banner, (setting, s.banner)
    finally:
        served.close()


BAD_CONFIGS = [
    ("[guard]\nmax_rowz = 10\n", "max_rowz"),
    ("[guard]\ntimeout = 10\n", "timeout"),
    ("[guard]\nread_only = false\n", "read_only"),  # cannot be turned off
    ("[guard]\ntimeout_s = 0\n", "timeout_s"),
    ("[guard]\ntimeout_s = -5\n", "timeout_s"),
    ("[guard]\nmax_rows = 0\n", "max_rows"),
    ('[guard]\nmax_chars = "lots"\n', "max_chars"),
    ('[guard]\nextra_functions = "load_extension"\n', "extra_functions"),
    ("[gaurd]\ntimeout_s = 5\n", "gaurd"),
    ('[server]\nhots = "0.0.0.0"\n', "hots"),
    ("[server]\nport = 99999\n", "port"),
    ('[[databases]]\nname = "x"\ntarget = "/tmp/x.sqlite"\nreadonly = true\n', "readonly"),
    ('[[databases]]\nname = "x"\n', "target"),
    ('[model]\nbakend = "openai"\n', "bakend"),
    ("[generation]\nnum_candidate = 4\n", "num_candidate"),
    ("verbose = true\n", "verbose"),
    ("[guard\ntimeout_s = 5\n", "invalid TOML"),
]


@pytest.mark.parametrize(("toml", "named"), BAD_CONFIGS)
def test_bad_configuration_is_an_error_naming_the_key(tmp_path: Path, toml: str, named: str) -> None:
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text(toml, encoding="utf-8")
    with pytest.raises(QueryFailed) as info:
        load_config(cfg)
    assert info.value.error.kind == "config" and named in info.value.error.message


@pytest.mark.parametrize(
    "case", [0, 2, 8, 11, 16]
)  # a guard typo, read_only=false, a section, a db key, TOML
def test_bad_configuration_stops_the_server(tmp_path: Path, chinook_copy: Path, case: int) -> None:
    toml, named = BAD_CONFIGS[case]
    cfg = tmp_path / "sqlr1.toml"
    cfg.write_text(toml, encoding="utf-8")
    res = sqlr1("--config", str(cfg), "--db", f"chinook={chinook_copy}", "serve", "--http", "--port", "0")
    assert res.returncode == 2, (res.returncode, res.stderr[-500:])
    assert named in res.stderr, res.stderr[-500:]
    assert "Traceback" not in res.stderr
    assert "http://" not in res.stderr  # it stopped before serving


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("postgresql+psycopg://postgres@127.0.0.1:5432/test?sslmod=require", "sslmod"),
        (
            "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-cdefault_transaction_read_only%3Doff&x=1",
            "x",
        ),
        ("mysql+pymysql://root@127.0.0.1:3306/test?read_only=0", "read_only"),
        ("duckdb:////tmp/sqlr1-never.duckdb?access_mode=read_write", "access_mode"),
    ],
)
def test_unknown_url_options_stop_the_server(url: str, named: str) -> None:
    res = sqlr1("--db", f"db={url}", "serve")
    assert res.returncode == 2, (url, res.returncode, res.stderr[-500:])
    assert named in res.stderr and "Traceback" not in res.stderr, res.stderr[-500:]


@pytest.mark.parametrize("host", ["::", "192.0.2.10"])
def test_non_loopback_bind_without_a_good_token_refuses_to_start(chinook_copy: Path, host: str) -> None:
    base = ["--db", f"chinook={chinook_copy}", "serve", "--http", "--host", host, "--port", "0"]
    res = sqlr1(*base)
    assert res.returncode == 2 and "non-loopback" in res.stderr and "--token" in res.stderr, res.stderr[-400:]
    if host != "::":
        return
    res = sqlr1(*base, "--token", "short")
    assert res.returncode == 2 and "at least 16 characters" in res.stderr, res.stderr[-400:]
    res = sqlr1(*base, extra_env={"SQLR1_TOKEN": "tiny"})
    assert res.returncode == 2 and "at least 16 characters" in res.stderr, res.stderr[-400:]
