"""HTTP exposure policy: safe defaults, token checks proven with a tool that records every run, and fuzzed traffic."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
import uvicorn
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer

from mcp_server.config import AppConfig, DatabaseConfig, ServerConfig
from mcp_server.errors import QueryFailed
from mcp_server.http_app import build_http_app, check_bind, is_loopback, transport_security
from mcp_server.server import ServerDeps, build_server, read_only_annotations

TOKEN = "policy-test-token-0123456789abcdef"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_defaults_are_the_safe_ones() -> None:
    cfg = AppConfig()
    assert cfg.guard.read_only is True
    assert cfg.guard.timeout_s == 30 and cfg.guard.max_rows == 1000 and cfg.guard.max_chars == 200_000
    assert cfg.server.host == "127.0.0.1" and cfg.server.token is None
    sec = transport_security(cfg.server)
    assert sec.enable_dns_rebinding_protection is True
    assert all(h.split(":")[0] in ("127.0.0.1", "localhost", "[") for h in sec.allowed_hosts)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "[::1]", "127.0.0.2"])
def test_loopback_hosts_need_no_token(host: str) -> None:
    assert is_loopback(host)
    check_bind(ServerConfig(host=host))


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_non_loopback_needs_a_token(host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(QueryFailed) as info:
        check_bind(ServerConfig(host=host))
    assert info.value.error.kind == "config" and "token" in info.value.error.message
    with pytest.raises(QueryFailed):
        check_bind(ServerConfig(host=host, token="short"))
    check_bind(ServerConfig(host=host, token=TOKEN))


def test_extra_allowed_hosts() -> None:
    sec = transport_security(ServerConfig(host="0.0.0.0", token=TOKEN, allowed_hosts=["db-box.internal"]))
    assert "db-box.internal" in sec.allowed_hosts and "db-box.internal:*" in sec.allowed_hosts
    assert "http://db-box.internal:*" in sec.allowed_origins


@asynccontextmanager
async def serving(server: MCPServer, settings: ServerConfig) -> AsyncIterator[str]:
    """Run the real HTTP app under uvicorn on a free loopback port, in this event loop."""
    app = build_http_app(server, settings)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    async with anyio.create_task_group() as tg:
        tg.start_soon(uv.serve, [sock])
        with anyio.fail_after(30):
            while not uv.started:
                await anyio.sleep(0.02)
        try:
            yield f"http://127.0.0.1:{port}/mcp"
        finally:
            uv.should_exit = True
    sock.close()


@pytest.fixture
def recording(chinook_copy: Path) -> tuple[MCPServer, list[str]]:
    runs: list[str] = []

    def plugin(server: MCPServer, deps: ServerDeps) -> None:
        @server.tool(name="canary", annotations=read_only_annotations("Canary"))
        def canary(note: str) -> str:
            runs.append(note)
            return "ran"

    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(chinook_copy))])
    return build_server(config, plugins=[plugin]), runs


def _call(note: str) -> dict[str, object]:
    return {
        "jsonrpc": "2.0",
        "id": 3,
        "method": "tools/call",
        "params": {"name": "canary", "arguments": {"note": note}},
    }


async def test_wrong_token_gets_401_and_no_tool_runs(recording: tuple[MCPServer, list[str]]) -> None:
    server, runs = recording
    async with serving(server, ServerConfig(token=TOKEN)) as url:
        async with httpx2.AsyncClient(timeout=30) as http:
            for auth in (None, "Bearer nope-nope-nope-nope-nope", f"bearer {TOKEN[:-1]}", TOKEN):
                headers = HEADERS if auth is None else {**HEADERS, "Authorization": auth}
                res = await http.post(url, json=_call("wrong token"), headers=headers)
                assert res.status_code == 401
                assert res.headers["www-authenticate"].startswith("Bearer")
        assert runs == []
        # the same call with the token does run: the assertion above could have failed
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            res = await client.call_tool("canary", {"note": "right token"})
            assert not res.is_error
    assert runs == ["right token"]


async def test_oversized_and_malformed_http_bodies(recording: tuple[MCPServer, list[str]]) -> None:
    server, runs = recording
    async with serving(server, ServerConfig()) as url, httpx2.AsyncClient(timeout=60) as http:
        huge = await http.post(url, content=b'{"x": "' + b"a" * (5 * 1024 * 1024) + b'"}', headers=HEADERS)
        assert huge.status_code == 413
        for body in (b"", b"null", b"[1, 2", b'{"jsonrpc": "2.0", "method": 5, "id": 1}', "\u0000".encode()):
            res = await http.post(url, content=body, headers=HEADERS)
            assert 400 <= res.status_code < 500, (body, res.status_code)
        wrong_type = await http.post(url, json=_call("x"), headers={**HEADERS, "Content-Type": "text/plain"})
        assert wrong_type.status_code in (400, 415)
        async with Client(url) as client:  # still serving
            res = await client.call_tool("execute_sql", {"database": "chinook", "sql": "SELECT 7"})
            assert res.structured_content["rows"] == [[7]]
    assert runs == []
