"""The MCP server over its real transports: a stdio subprocess and streamable HTTP on loopback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_text import first_text

REPO = Path(__file__).resolve().parent.parent
TOKEN = "s3cret-token-for-tests-0123456789"
LOOKUP = "SELECT ArtistId, Name FROM Artist WHERE ArtistId = 1"


def serve_args(db: Path, *extra: str) -> list[str]:
    return ["-m", "sqlr1.mcp_server.cli.main", "--db", f"chinook={db}", "serve", *extra]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SQLR1_TOKEN", None)
    return env


async def test_stdio_subprocess_round_trip(chinook_copy: Path, tmp_path: Path) -> None:
    errlog = tmp_path / "stderr.txt"
    params = StdioServerParameters(
        command=sys.executable, args=serve_args(chinook_copy), cwd=str(REPO), env=child_env()
    )
    with errlog.open("w", encoding="utf-8") as err, anyio.fail_after(60):
        async with Client(stdio_client(params, errlog=err)) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"execute_sql", "validate_sql", "describe_schema"} <= tools
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": LOOKUP})
            assert not res.is_error and res.structured_content["rows"] == [[1, "AC/DC"]]
            res = await client.call_tool(
                "execute_sql", {"database": "chinook", "sql": "UPDATE Artist SET Name = 'x'"}
            )
            assert res.is_error and "blocked" in first_text(res)
            res = await client.call_tool("list_tables", {"database": "chinook"})
            assert "Track" in res.structured_content["tables"]
    logged = errlog.read_text(encoding="utf-8")
    # the effective guard settings are logged at start, on stderr (stdout is the protocol)
    assert "read_only=True" in logged and "timeout_s=30" in logged and "max_rows=1000" in logged


async def test_stdio_survives_invalid_json_rpc(chinook_copy: Path) -> None:
    """Garbage lines on stdin get an error (or are dropped) and the server keeps answering."""
    proc = await anyio.open_process(
        [sys.executable, *serve_args(chinook_copy)], cwd=str(REPO), env=child_env(), stderr=subprocess.DEVNULL
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout
    buf = b""

    async def next_message() -> dict[str, Any]:
        nonlocal buf
        while b"\n" not in buf:
            chunk = await stdout.receive()
            buf += chunk
        line, _, buf = buf.partition(b"\n")
        return json.loads(line)

    try:
        with anyio.fail_after(60):
            for junk in (b"{not json\n", b'{"jsonrpc": "2.0", "id": 7, "method": 42}\n', b"[]\n"):
                await proc.stdin.send(junk)
            init = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "initialize",
                "params": {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {},
                    "clientInfo": {"name": "t", "version": "0"},
                },
            }
            await proc.stdin.send((json.dumps(init) + "\n").encode())
            while True:
                msg = await next_message()
                if msg.get("id") == 1:
                    break
                assert "error" in msg, msg  # anything else before our answer must be an error response
            assert msg["result"]["serverInfo"]["name"] == "sqlr1"
            await proc.stdin.send(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
            call = {
                "jsonrpc": "2.0",
                "id": 2,
                "method": "tools/call",
                "params": {
                    "name": "execute_sql",
                    "arguments": {"database": "chinook", "sql": "SELECT 41 + 1"},
                },
            }
            await proc.stdin.send((json.dumps(call) + "\n").encode())
            while (msg := await next_message()).get("id") != 2:
                pass
            assert msg["result"]["structuredContent"]["rows"] == [[42]]
            assert proc.returncode is None
    finally:
        proc.terminate()
        with anyio.move_on_after(10):
            await proc.wait()


class HttpServer:
    def __init__(self, proc: subprocess.Popen[str], url: str, banner: str) -> None:
        self.proc, self.url, self.banner = proc, url, banner


@pytest.fixture
def http_server(chinook_copy: Path, request: pytest.FixtureRequest) -> Iterator[HttpServer]:
    extra: list[str] = list(getattr(request, "param", []))
    env = child_env()
    if extra and extra[0].startswith("SQLR1_TOKEN="):  # the token from the environment instead of a flag
        env["SQLR1_TOKEN"] = extra.pop(0).partition("=")[2]
    proc = subprocess.Popen(
        [sys.executable, *serve_args(chinook_copy, "--http", "--port", "0", *extra)],
        cwd=str(REPO),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = ""
    try:
        for line in proc.stderr:  # bounded: the server prints its URL right after binding
            banner += line
            if m := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
                # keep draining stderr so a chatty server can never block on a full pipe
                threading.Thread(target=proc.stderr.read, daemon=True).start()
                yield HttpServer(proc, m.group(1), banner)
                break
        else:
            pytest.fail(f"HTTP server did not start: {banner}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_http_loopback_without_token(http_server: HttpServer) -> None:
    assert "read_only=True" in http_server.banner
    assert "no token (loopback only)" in http_server.banner
    with anyio.fail_after(60):
        async with Client(http_server.url) as client:
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": LOOKUP})
            assert res.structured_content["rows"] == [[1, "AC/DC"]]
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": "DROP TABLE Artist"})
            assert res.is_error and "blocked" in first_text(res)


def _initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "0"},
        },
    }


_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def test_http_dns_rebinding_protection(http_server: HttpServer) -> None:
    async with httpx2.AsyncClient(timeout=30) as http:
        ok = await http.post(http_server.url, json=_initialize_body(), headers=_HEADERS)
        assert ok.status_code == 200
        bad_host = await http.post(
            http_server.url, json=_initialize_body(), headers={**_HEADERS, "Host": "evil.example:80"}
        )
        assert bad_host.status_code == 421
        bad_origin = await http.post(
            http_server.url, json=_initialize_body(), headers={**_HEADERS, "Origin": "http://evil.example"}
        )
        assert bad_origin.status_code == 403
        junk = await http.post(http_server.url, content=b"{not json", headers=_HEADERS)
        assert junk.status_code >= 400
        still = await http.post(http_server.url, json=_initialize_body(), headers=_HEADERS)
        assert still.status_code == 200


@pytest.mark.parametrize("http_server", [["--token", TOKEN], [f"SQLR1_TOKEN={TOKEN}"]], indirect=True)
async def test_http_token_required(http_server: HttpServer) -> None:
    assert "bearer token required" in http_server.banner
    call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "SELECT 1"}},
    }
    async with httpx2.AsyncClient(timeout=30) as http:
        for auth in (None, "Bearer wrong-token-wrong-token-00", f"Basic {TOKEN}", f"Bearer {TOKEN}x"):
            headers = dict(_HEADERS) if auth is None else {**_HEADERS, "Authorization": auth}
            for body in (_initialize_body(), call):
                res = await http.post(http_server.url, json=body, headers=headers)
                assert res.status_code == 401, (auth, res.status_code)
                assert (
                    res.json()["error"] == "invalid_token"
                )  # our middleware answered: the MCP session never saw it
    with anyio.fail_after(60):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
            Client(streamable_http_client(http_server.url, http_client=http)) as client,
        ):
            result = await client.call_tool("execute_sql", {"database": "chinook", "sql": LOOKUP})
            assert result.structured_content["rows"] == [[1, "AC/DC"]]


def test_http_refuses_non_loopback_without_token(chinook_copy: Path) -> None:
    res = subprocess.run(
        [sys.executable, *serve_args(chinook_copy, "--http", "--host", "0.0.0.0", "--port", "0")],
        cwd=str(REPO),
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert "non-loopback" in res.stderr and "--token" in res.stderr
