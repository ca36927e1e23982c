"""Fuzzed JSON-RPC over a real stdio server process: every request with an id is answered, the server survives."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent
WAIT_S = 30.0


class StdioPeer:
    """A line-oriented JSON-RPC peer over a subprocess's stdin/stdout (reader thread, bounded waits)."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--db", f"chinook={db}", "serve"],
            cwd=str(REPO),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.seq = 0

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data if data.endswith(b"\n") else data + b"\n")
        self.proc.stdin.flush()

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode())

    def wait_for(self, ids: set[Any]) -> dict[Any, dict[str, Any]]:
        """Collect responses until every id in ``ids`` has one; other messages are skipped."""
        got: dict[Any, dict[str, Any]] = {}
        while not ids <= got.keys():
            try:
                line = self.lines.get(timeout=WAIT_S)
            except queue.Empty:
                pytest.fail(f"no response for ids {ids - got.keys()} within {WAIT_S} s")
            msg = json.loads(line)
            if isinstance(msg, dict) and "id" in msg and ("result" in msg or "error" in msg):
                got[msg["id"]] = msg
        return got

    def call(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        ident = f"probe-{self.seq}"
        self.send({"jsonrpc": "2.0", "id": ident, "method": method, "params": params})
        return self.wait_for({ident})[ident]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StdioPeer]:
    import shutil

    db = tmp_path_factory.mktemp("fuzz") / "chinook.sqlite"
    shutil.copyfile(REPO / "examples" / "chinook.sqlite", db)
    p = StdioPeer(db)
    init = p.call(
        "initialize",
        {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "fuzz", "version": "0"}},
    )
    assert init["result"]["serverInfo"]["name"] == "sqlr1"
    p.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    yield p
    p.close()


def _alive(p: StdioPeer) -> None:
    res = p.call(
        "tools/call", {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "SELECT 6 * 7"}}
    )
    assert res["result"]["structuredContent"]["rows"] == [[42]]
    assert p.proc.poll() is None


_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=50)
)
_json = st.recursive(
    _scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c, max_size=4),
    max_leaves=12,
)
_methods = st.one_of(
    st.sampled_from(
        ["tools/call", "tools/list", "resources/read", "prompts/get", "initialize", "nope/x", ""]
    ),
    st.text(max_size=20),
)
_tool_args = st.dictionaries(
    st.sampled_from(["database", "sql", "table", "column", "limit", "tables", "max_rows"]), _json, max_size=4
)
_params = st.one_of(
    _json,
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["execute_sql", "describe_schema", "sample_values", "nope"]),
            "arguments": _tool_args,
        }
    ),
)


@st.composite
def requests(draw: st.DrawFn, n: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": f"fz-{n}-{draw(st.integers(0, 10**6))}",
        "method": draw(_methods),
        "params": draw(_params),
    }


_junk_lines = st.one_of(
    st.text(max_size=200).map(lambda s: s.replace("\n", " ").encode("utf-8", "surrogatepass")),
    _json.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=100).map(lambda b: b.replace(b"\n", b" ")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.lists(st.one_of(st.integers(0, 10**9).flatmap(requests), _junk_lines), min_size=1, max_size=8)
)
def test_fuzzed_stdio_traffic(peer: StdioPeer, batch: list[Any]) -> None:
    ids: set[Any] = set()
    for item in batch:
        if isinstance(item, dict):
            peer.send(item)
            ids.add(item["id"])
        else:
            peer.send_raw(item)
    answers = peer.wait_for(ids)
    for ident in ids:
        assert "result" in answers[ident] or "error" in answers[ident]
    _alive(peer)


def test_huge_line_and_huge_sql(peer: StdioPeer) -> None:
    peer.send_raw(
        b'{"jsonrpc": "2.0", "id": "huge", "method": "tools/call", "params": {"x": "'
        + b"a" * 3_000_000
        + b'"}}'
    )
    assert "huge" in peer.wait_for({"huge"})
    res = peer.call(
        "tools/call",
        {"name": "execute_sql", "arguments": {"database": "chinook", "sql": "SELECT 1 " * 200_000}},
    )
    assert res["result"]["isError"] is True
    _alive(peer)


def _verdict(line: str) -> Any:
    """The SDK's own parse verdict on ``line`` (the exception its stdio reader passes on)."""
    import mcp_types
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as info:
        mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False)
    return info.value


def test_repair_line_marks_invalid_requests_for_a_32600_reply() -> None:
    from sqlr1.mcp_server.protocol.stdio_app import INVALID_REQUEST, parse_error_reply, repair_line

    for ok in (
        '{"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}\n',
        '{"jsonrpc": "2.0", "method": "notifications/initialized"}',
        '{"id": 1, "result": {}}',
        "not json",
        "   ",
    ):
        assert repair_line(ok) == ok
    for bad, ident, problem in (
        ('{"jsonrpc": "2.0", "id": 1, "method": 5}', 1, "method must be a string"),
        ('{"id": "a", "method": "x"}', "a", "jsonrpc must be '2.0'"),
        ('{"jsonrpc": "2.0", "id": 2, "method": "x", "params": [1]}', 2, "params must be an object"),
        ("[]", None, "a message must be a JSON object"),
        ("7", None, "a message must be a JSON object"),
        ('{"jsonrpc": "2.0", "method": 5}', None, "method must be a string"),
        ('{"id": true, "method": 1}', None, "jsonrpc must be '2.0'"),
    ):
        reply = parse_error_reply(_verdict(repair_line(bad)))
        assert reply is not None, bad
        assert reply.id == ident and reply.error.code == INVALID_REQUEST
        assert reply.error.message == f"Invalid Request: {problem}"


def test_unparseable_lines_get_a_parse_error_and_the_server_keeps_serving(tmp_path: Path) -> None:
    """JSON-RPC 2.0: invalid JSON gets ``-32700`` with ``id: null``, valid JSON that is no valid request
    ``-32600`` (on its id if it has one); blank lines get nothing; serving goes on."""
    import shutil

    db = tmp_path / "chinook.sqlite"
    shutil.copyfile(REPO / "examples" / "chinook.sqlite", db)
    p = StdioPeer(db)
    try:
        unparseable = [
            b"{not json",
            b'{"jsonrpc": "2.0", "id": 7, "method": "tools/list"',  # cut short: its id cannot be read
            b"\xff\xfe\x00 binary",
            b"}" * 100_000,
        ]
        invalid = [  # valid JSON, not a valid request: -32600 on the id when it has one
            (b"[]", None),
            (b'{"jsonrpc": "2.0", "method": 5}', None),
            (b'{"jsonrpc": "2.0", "id": 3, "method": "ping", "params": [1]}', 3),
        ]
        for line in [*unparseable, b"   ", b"", *(raw for raw, _ in invalid)]:
            p.send_raw(line)
        # Lines are read in order and a parse error is answered before the next line is read, so every
        # reply comes before the answer to this request.
        p.send({"jsonrpc": "2.0", "id": "after", "method": "ping"})
        replies: list[dict[str, Any]] = []
        while True:
            try:
                msg = json.loads(p.lines.get(timeout=WAIT_S))
            except queue.Empty:
                pytest.fail(f"no answer to the request after the bad lines within {WAIT_S} s; got {replies}")
            if msg.get("id") == "after":
                assert msg["result"] == {}
                break
            replies.append(msg)
        assert len(replies) == len(unparseable) + len(invalid), replies  # one each; none for blank lines
        for msg in replies[: len(unparseable)]:
            assert msg["jsonrpc"] == "2.0" and msg["id"] is None and "result" not in msg
            assert msg["error"]["code"] == -32700 and msg["error"]["message"].startswith("Parse error: ")
        for msg, (_, ident) in zip(replies[len(unparseable) :], invalid, strict=True):
            assert msg["jsonrpc"] == "2.0" and msg["id"] == ident and "result" not in msg
            assert msg["error"]["code"] == -32600 and msg["error"]["message"].startswith("Invalid Request: ")
        init = p.call(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "t", "version": "0"},
            },
        )
        assert init["result"]["serverInfo"]["name"] == "sqlr1"
        p.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        _alive(p)
    finally:
        p.close()


def test_parse_error_reply_only_for_invalid_json() -> None:
    from sqlr1.mcp_server.protocol.stdio_app import PARSE_ERROR, parse_error_reply

    verdict = _verdict
    reply = parse_error_reply(verdict("{not json"))
    assert reply is not None and reply.id is None and reply.error.code == PARSE_ERROR
    assert json.loads(reply.model_dump_json(by_alias=True, exclude_unset=True)) == {
        "jsonrpc": "2.0",
        "id": None,
        "error": {"code": -32700, "message": reply.error.message},
    }
    assert parse_error_reply(verdict("  \n")) is None  # blank line
    assert parse_error_reply(verdict("[]")) is None  # JSON, just not a message: repair_line marks those
    assert parse_error_reply(verdict('{"jsonrpc": "2.0", "method": 5}')) is None
    assert parse_error_reply(RuntimeError("x")) is None
