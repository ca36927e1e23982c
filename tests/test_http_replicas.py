"""Two ``sqlr1 serve --http`` replicas behind a round-robin load balancer serve one MCP client.

The replicas are stateless (the default), share one OpenAI-compatible model server (a scripted model,
tests/serve_fixtures.py) and sit behind a small reverse proxy that sends each HTTP request to the next
replica in turn, forwarding the client's Host header as nginx's ``proxy_set_header Host $host`` does.
One MCP client session then lists, executes and generates with its requests alternating between the
replicas; the bearer token and the Host check still hold on every replica (docs/deploy.md).
"""

from __future__ import annotations

import itertools
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from openai_compat_server import serve
from serve_fixtures import (
    MODEL_SQL,
    HttpServer,
    child_env,
    http_server,
    scripted_model,
    serve_command,
    write_config,
)
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

TOKEN = "replica-token-0123456789abcdef"
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


@dataclass
class RoundRobinProxy:
    """An ASGI reverse proxy: request i goes to ``upstreams[i % len]``; ``routed`` records where each
    JSON-RPC message went (upstream index, method, tool name)."""

    upstreams: list[str] = field(default_factory=list)
    routed: list[tuple[int, str, str | None]] = field(default_factory=list)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _client: httpx2.AsyncClient | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        body = await request.body()
        index = next(self._turn) % len(self.upstreams)
        self.routed.append((index, *_describe(request.method, body)))
        if self._client is None:
            self._client = httpx2.AsyncClient(timeout=120)
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        url = self.upstreams[index] + request.url.path
        upstream = await self._client.send(
            self._client.build_request(request.method, url, headers=headers, content=body), stream=True
        )
        response = StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers={k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP},
            background=BackgroundTask(upstream.aclose),
        )
        await response(scope, receive, send)


def _describe(method: str, body: bytes) -> tuple[str, str | None]:
    """The JSON-RPC method (and tool name) of a POST body; the HTTP method otherwise."""
    try:
        message: Any = json.loads(body) if body else None
    except ValueError:
        return method, None
    if not isinstance(message, dict) or "method" not in message:
        return method, None
    params = message.get("params") or {}
    return str(message["method"]), params.get("name") if isinstance(params, dict) else None


@dataclass
class Deployment:
    url: str  # the load balancer's MCP endpoint
    proxy: RoundRobinProxy
    replicas: list[HttpServer]
    model_calls: list[Any]


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    database = tmp_path / "chinook.sqlite"
    database.write_bytes(
        (Path(__file__).resolve().parent.parent / "examples" / "chinook.sqlite").read_bytes()
    )
    proxy = RoundRobinProxy()
    with scripted_model() as (model_url, backend), serve(proxy) as proxy_base:  # type: ignore[arg-type]
        lb_port = urlsplit(proxy_base).port
        config = write_config(tmp_path / "sqlr1.toml", database, model_url, num_candidates=2)
        # Each replica accepts the load balancer's Host (the client's, forwarded) and wants the token.
        extra = ("--token", TOKEN, "--allow-host", f"127.0.0.1:{lb_port}")
        with http_server(config, *extra) as one, http_server(config, *extra) as two:
            proxy.upstreams[:] = [urlsplit(s.url)._replace(path="").geturl() for s in (one, two)]
            yield Deployment(f"http://127.0.0.1:{lb_port}/mcp", proxy, [one, two], backend.calls)


@pytest.mark.parametrize("mode", ["legacy", "auto"])
async def test_one_client_alternating_between_two_replicas(deployment: Deployment, mode: Any) -> None:
    """``legacy``: the initialize handshake of the 2025 revisions (what most clients speak), which needs
    the stateless server; ``auto``: the SDK negotiates the 2026-07-28 revision, stateless by design."""
    for replica in deployment.replicas:
        assert "stateless" in replica.banner, replica.banner
    with anyio.fail_after(120):
        async with (
            httpx2.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as http,
            Client(streamable_http_client(deployment.url, http_client=http), mode=mode) as client,
        ):
            tools = {t.name for t in (await client.list_tools()).tools}
            assert {"execute_sql", "generate_sql"} <= tools
            for _ in range(2):
                res = await client.call_tool("list_databases", {})
                assert [d["name"] for d in res.structured_content["databases"]] == ["chinook"]
                res = await client.call_tool(
                    "execute_sql",
                    {"database": "chinook", "sql": "SELECT Name FROM Artist WHERE ArtistId = 1"},
                )
                assert not res.is_error and res.structured_content["rows"] == [["AC/DC"]]
                res = await client.call_tool(
                    "generate_sql", {"database": "chinook", "question": "How many artists are there?"}
                )
                assert not res.is_error, res.content
                assert res.structured_content["sql"] == MODEL_SQL
                assert res.structured_content["preview"]["rows"] == [[275]]

    calls = [(index, tool) for index, method, tool in deployment.proxy.routed if method == "tools/call"]
    assert len(calls) == 6
    # Consecutive calls of the one session were answered by different replicas ...
    assert any(a[0] != b[0] for a, b in itertools.pairwise(calls)), deployment.proxy.routed
    # ... and each replica ran each kind of call at least once (generation included).
    for index in (0, 1):
        assert {t for i, t in calls if i == index} == {"list_databases", "execute_sql", "generate_sql"}, calls
    assert len(deployment.model_calls) >= 2  # both replicas generated with the one shared model server


async def test_replicas_keep_their_http_guards(deployment: Deployment) -> None:
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
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx2.AsyncClient(timeout=30) as http:
        for _ in range(2):  # through the load balancer: once to each replica
            assert (await http.post(deployment.url, json=init, headers=headers)).status_code == 401
            assert (
                await http.post(deployment.url, json=init, headers={**headers, **auth})
            ).status_code == 200
        for replica in deployment.replicas:
            bad_host = await http.post(
                replica.url, json=init, headers={**headers, **auth, "Host": "evil.example"}
            )
            assert bad_host.status_code == 421
            bad_origin = {**headers, **auth, "Origin": "http://evil.example"}
            assert (await http.post(replica.url, json=init, headers=bad_origin)).status_code == 403


async def test_stateless_by_default_stateful_on_request(tmp_path: Path) -> None:
    """No session id by default; ``--stateful`` hands one out; ``--stateful`` without ``--http`` is a
    usage error."""
    database = tmp_path / "chinook.sqlite"
    database.write_bytes(
        (Path(__file__).resolve().parent.parent / "examples" / "chinook.sqlite").read_bytes()
    )
    config = write_config(tmp_path / "sqlr1.toml", database, "http://127.0.0.1:9/v1")
    headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
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
    async with httpx2.AsyncClient(timeout=30) as http:
        for extra, has_session in (((), False), (("--stateful",), True)):
            with http_server(config, *extra) as server:
                res = await http.post(server.url, json=init, headers=headers)
                assert res.status_code == 200
                assert ("mcp-session-id" in res.headers) is has_session, (extra, dict(res.headers))
    usage = subprocess.run(
        serve_command(config, "--stateful"), env=child_env(), capture_output=True, text=True, timeout=60
    )
    assert usage.returncode == 2 and "--stateful applies to --http only" in usage.stderr
