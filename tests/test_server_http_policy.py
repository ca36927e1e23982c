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

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, ServerConfig
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.protocol.http_app import build_http_app, check_bind, host_policy, is_loopback
from sqlr1.mcp_server.protocol.server import ServerDeps, build_server, read_only_annotations

TOKEN = "policy-test-token-0123456789abcdef"
HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def test_defaults_are_the_safe_ones() -> None:
    cfg = AppConfig()
    assert cfg.guard.read_only is True
    assert cfg.guard.timeout_s == 30 and cfg.guard.max_rows == 1000 and cfg.guard.max_chars == 200_000
    assert cfg.server.host == "127.0.0.1" and cfg.server.token is None
    policy = host_policy(cfg.server)
    assert policy.loopback == {"127.0.0.1", "localhost", "[::1]"} and not policy.names and not policy.exact


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
    policy = host_policy(
        ServerConfig(
            host="0.0.0.0",
            token=TOKEN,
            allowed_hosts=["db-box.internal", "proxy.example:443", "dev.example:*"],
        )
    )
    assert policy.allows_host("db-box.internal", 8765) and policy.allows_host("db-box.internal:8765", 8765)
    assert not policy.allows_host("db-box.internal:9000", 8765)
    assert policy.allows_host("proxy.example:443", 8765) and not policy.allows_host("proxy.example:444", 8765)
    assert policy.allows_host("dev.example:1234", 8765)
    assert policy.allows_origin("https://db-box.internal", 8765)
    assert not policy.allows_origin("https://db-box.internal.evil.example", 8765)
    with pytest.raises(QueryFailed):
        host_policy(ServerConfig(allowed_hosts=["user@host"]))


# Host and Origin headers compared as whole authorities (host and port): what a prefix match let through.
BAD_HOSTS = [
    "127.0.0.1:{port}@evil.example",
    "127.0.0.1:{port}.evil.example",
    "localhost:{port}/x",
    "127.0.0.1:{other}",
    "localhost",
    "evil.example:{port}",
    "127.0.0.1:{port} ",
    "",
]
BAD_ORIGINS = [
    "http://127.0.0.1:{port}@evil.example",
    "http://localhost:{port}.evil.example",
    "http://127.0.0.1:{other}",
    "http://evil.example",
    "null",
    "http://localhost:{port}/path",
    "file://localhost:{port}",
]


def test_host_and_origin_compare_the_whole_authority() -> None:
    policy = host_policy(ServerConfig())
    port, other = 8765, 8766
    assert policy.allows_host(f"127.0.0.1:{port}", port) and policy.allows_host(f"[::1]:{port}", port)
    assert policy.allows_origin(f"http://localhost:{port}", port)
    for bad in BAD_HOSTS:
        assert not policy.allows_host(bad.format(port=port, other=other), port), bad
    for bad in BAD_ORIGINS:
        assert not policy.allows_origin(bad.format(port=port, other=other), port), bad


async def test_running_server_refuses_bad_authorities(recording: tuple[MCPServer, list[str]]) -> None:
    server, runs = recording
    async with serving(server, ServerConfig()) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        async with httpx2.AsyncClient(timeout=30) as http:
            for bad in BAD_HOSTS:
                host = bad.format(port=port, other=port + 1)
                if not host or host != host.strip():
                    continue  # the HTTP client itself refuses to send these
                res = await http.post(url, json=_call("bad host"), headers={**HEADERS, "Host": host})
                assert res.status_code in (400, 421), (host, res.status_code)
            for bad in BAD_ORIGINS:
                origin = bad.format(port=port, other=port + 1)
                res = await http.post(url, json=_call("bad origin"), headers={**HEADERS, "Origin": origin})
                assert res.status_code == 403, (origin, res.status_code)
        assert runs == []
        async with Client(url) as client:  # the right authority still works: the refusals above could fail
            assert not (await client.call_tool("canary", {"note": "good"})).is_error
    assert runs == ["good"]


async def test_a_short_body_ends_in_seconds_and_others_are_served(
    recording: tuple[MCPServer, list[str]],
) -> None:
    """A request announcing more body than it sends gets 408 once the body deadline passes (5 s without a
    byte), and a second client is answered meanwhile."""
    server, _ = recording
    async with serving(server, ServerConfig()) as url:
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        stream = await anyio.connect_tcp("127.0.0.1", port)
        head = (
            f"POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            "Accept: application/json, text/event-stream\r\nContent-Length: 1000\r\n\r\n"
        )
        started = anyio.current_time()
        await stream.send(head.encode() + b'{"jsonrpc": "2.0"')
        async with Client(url) as client:  # served while the first request hangs
            result = await client.call_tool("execute_sql", {"database": "chinook", "sql": "SELECT 7"})
            assert result.structured_content["rows"] == [[7]]
        assert anyio.current_time() - started < 5
        with anyio.fail_after(15):
            answer = await stream.receive()
        waited = anyio.current_time() - started
        await stream.aclose()
        assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
        assert 4 < waited < 12, waited


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
            result = await client.call_tool("canary", {"note": "right token"})
            assert not result.is_error
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
            result = await client.call_tool("execute_sql", {"database": "chinook", "sql": "SELECT 7"})
            assert result.structured_content["rows"] == [[7]]
    assert runs == []
