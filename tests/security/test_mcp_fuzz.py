"""Malformed MCP traffic over streamable HTTP, fuzzed with hypothesis against a real server process.

Raw POSTs to ``sqlr1 serve --http`` on a loopback port (the stdio counterpart is
tests/test_server_fuzz_stdio.py, tool arguments through the in-memory client are in
tests/test_server_tools.py): junk bytes, arbitrary JSON, JSON-RPC requests with random methods and
params, tools/call with wrong types, missing fields, unknown tools and huge strings, and odd headers.
Every request gets an answer that is never a server error: a 4xx with a JSON-RPC error body, or a
JSON-RPC response carrying the request's id (an error, or a tool result flagged ``isError``); and
after every example a valid call still works.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[2]
PROTOCOL = "2025-06-18"
BASE_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


class HttpPeer:
    """A raw HTTP client that initialized MCP on a ``sqlr1 serve --http`` subprocess (stateless by default:
    no session id comes back, and every request stands on its own)."""

    def __init__(self, db: Path) -> None:
        env = {k: v for k, v in os.environ.items() if k != "SQLR1_TOKEN"}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sqlr1.mcp_server.cli.main",
                "--db",
                f"chinook={db}",
                "serve",
                "--http",
                "--port",
                "0",
            ],
            cwd=str(REPO),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stderr is not None
        url = None
        for line in self.proc.stderr:
            if m := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
                url = m.group(1)
                break
        assert url is not None, "the HTTP server did not start"
        self.url = url
        self.http = httpx2.Client(timeout=60)
        res = self.post_json(
            {
                "jsonrpc": "2.0",
                "id": "init",
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "fz", "version": "0"},
                },
            },
            session=False,
        )
        assert res.status_code == 200
        self.session: str | None = res.headers.get("mcp-session-id")
        assert self.post_json({"jsonrpc": "2.0", "method": "notifications/initialized"}).status_code == 202
        self.seq = 0

    def headers(self, session: bool = True) -> dict[str, str]:
        h = dict(BASE_HEADERS)
        if session:
            h |= {"mcp-protocol-version": PROTOCOL}
            if self.session is not None:
                h |= {"mcp-session-id": self.session}
        return h

    def post(self, body: bytes, headers: dict[str, str] | None = None) -> httpx2.Response:
        return self.http.post(self.url, content=body, headers=self.headers() if headers is None else headers)

    def post_json(self, message: Any, session: bool = True) -> httpx2.Response:
        return self.http.post(self.url, content=json.dumps(message).encode(), headers=self.headers(session))

    def close(self) -> None:
        self.http.close()
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def messages(res: httpx2.Response) -> list[dict[str, Any]]:
    """JSON-RPC messages in a response body (plain JSON or server-sent events)."""
    if not res.content:
        return []
    if res.headers.get("content-type", "").startswith("text/event-stream"):
        out = []
        # SSE lines end in CR/LF only; str.splitlines() would also split on U+0085 or U+2028 inside the JSON.
        for line in res.text.replace("\r\n", "\n").split("\n"):
            if line.startswith("data:") and line[5:].strip():
                out.append(json.loads(line[5:]))
        return out
    body = res.json()
    return body if isinstance(body, list) else [body]


def check_answer(res: httpx2.Response, request_id: Any = None) -> None:
    """Never a 5xx; a 4xx carries a JSON-RPC error; a request with a valid id gets its response."""
    assert res.status_code < 500, (res.status_code, res.text[:300])
    if 400 <= res.status_code < 500:
        body = messages(res)
        assert body and all("error" in m for m in body), res.text[:300]
        return
    assert res.status_code in (200, 202), res.status_code
    if request_id is not None:
        got = [m for m in messages(res) if m.get("id") == request_id]
        assert len(got) == 1, (request_id, res.text[:300])
        assert "error" in got[0] or got[0]["result"].get("isError") in (True, False, None)


def alive(peer: HttpPeer) -> None:
    peer.seq += 1
    ident = f"alive-{peer.seq}"
    res = peer.post_json(
        {
            "jsonrpc": "2.0",
            "id": ident,
            "method": "tools/call",
            "params": {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "SELECT 6 * 7"}},
        }
    )
    assert res.status_code == 200, res.text[:300]
    (msg,) = [m for m in messages(res) if m.get("id") == ident]
    assert msg["result"]["structuredContent"]["rows"] == [[42]]
    assert peer.proc.poll() is None


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpPeer]:
    db = tmp_path_factory.mktemp("httpfuzz") / "chinook.sqlite"
    shutil.copyfile(REPO / "examples" / "chinook.sqlite", db)
    p = HttpPeer(db)
    yield p
    p.close()


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
_json = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
_tools = st.sampled_from(
    [
        "execute_sql",
        "validate_sql",
        "describe_schema",
        "sample_values",
        "list_tables",
        "list_databases",
        "nope",
        "",
    ]
)
_args = st.dictionaries(
    st.sampled_from(["database", "sql", "table", "column", "limit", "tables", "max_rows", "extra"]),
    st.one_of(_json, st.sampled_from(["chinook", "Track", "Name", "SELECT 1", "DROP TABLE Track"])),
    max_size=4,
)
_params = st.one_of(_json, st.fixed_dictionaries({"name": _tools, "arguments": st.one_of(_args, _json)}))
_methods = st.one_of(
    st.sampled_from(
        ["tools/call", "tools/list", "resources/read", "resources/list", "ping", "initialize", "nope"]
    ),
    st.text(max_size=20),
)
_ids = st.one_of(st.integers(1, 10**9), st.text(min_size=1, max_size=12))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ident=_ids, method=_methods, params=_params)
@example(ident=1, method="\x85", params=None)  # U+0085 in the echoed method: a line break to str.splitlines
def test_fuzzed_requests_are_answered(peer: HttpPeer, ident: Any, method: str, params: Any) -> None:
    res = peer.post_json({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
    check_answer(res, ident)
    alive(peer)


_bodies = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8", "surrogatepass")),
    _json.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(
        st.sampled_from(["jsonrpc", "id", "method", "params", "result", "error"]), _json, max_size=5
    ).map(lambda v: json.dumps(v).encode()),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_fuzzed_bodies_never_break_the_server(peer: HttpPeer, body: bytes) -> None:
    check_answer(peer.post(body))
    alive(peer)


_header_values = st.one_of(
    st.sampled_from(["", "*/*", "text/plain", "application/json"]),
    # printable ASCII; the HTTP client itself refuses values with surrounding whitespace
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=30).map(str.strip),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    accept=_header_values,
    content_type=_header_values,
    session=st.one_of(st.none(), st.text(st.characters(min_codepoint=33, max_codepoint=126), max_size=40)),
    version=st.one_of(st.none(), st.sampled_from(["1999-01-01", "", PROTOCOL])),
)
def test_fuzzed_headers_get_client_errors(
    peer: HttpPeer, accept: str, content_type: str, session: str | None, version: str | None
) -> None:
    headers = {"Accept": accept, "Content-Type": content_type}
    if session is not None:
        headers["mcp-session-id"] = session
    if version is not None:
        headers["mcp-protocol-version"] = version
    body = json.dumps({"jsonrpc": "2.0", "id": "h", "method": "ping"}).encode()
    res = peer.post(body, headers)
    assert res.status_code < 500, (headers, res.status_code, res.text[:200])
    alive(peer)


def test_huge_and_deep_bodies(peer: HttpPeer) -> None:
    huge_sql = {
        "jsonrpc": "2.0",
        "id": "huge-sql",
        "method": "tools/call",
        "params": {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "SELECT 1 " * 200_000}},
    }
    res = peer.post_json(huge_sql)
    check_answer(res, "huge-sql")
    if res.status_code == 200:
        (msg,) = [m for m in messages(res) if m.get("id") == "huge-sql"]
        assert "error" in msg or msg["result"]["isError"] is True
    for body in (
        b"[" * 100_000 + b"]" * 100_000,  # nesting far past any parser's recursion limit
        b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"a": "' + b"a" * 3_000_000 + b'"}}',
        json.dumps(
            {"jsonrpc": "2.0", "id": "d", "method": "tools/call", "params": {"name": "x" * 100_000}}
        ).encode(),
    ):
        check_answer(peer.post(body))
        alive(peer)


def test_unknown_tools_and_wrong_types_are_tool_errors(peer: HttpPeer) -> None:
    cases: list[tuple[str, Any]] = [
        ("nope", {}),
        ("execute_sql", {"database": "chinook"}),  # missing sql
        ("execute_sql", {"database": 5, "sql": ["SELECT 1"]}),
        ("execute_sql", {"database": "chinook", "sql": "SELECT 1", "max_rows": "all"}),
        ("sample_values", {"database": "chinook", "table": "Genre", "column": "Name", "limit": 10**12}),
        ("describe_schema", {"database": "chinook", "tables": "Track"}),
        ("describe_schema", {"database": "chinook", "tables": ["Track"] * 5000}),
    ]
    for i, (name, args) in enumerate(cases):
        ident = f"t{i}"
        res = peer.post_json(
            {
                "jsonrpc": "2.0",
                "id": ident,
                "method": "tools/call",
                "params": {"name": name, "arguments": args},
            }
        )
        check_answer(res, ident)
        (msg,) = [m for m in messages(res) if m.get("id") == ident]
        assert "error" in msg or msg["result"]["isError"] is True, (name, args, msg)
    alive(peer)
