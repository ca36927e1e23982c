"""The agent over the other two transports: a ``sqlr1 serve`` stdio subprocess and streamable HTTP
with a bearer token. Only model-free tools are called here (no model is loaded in the subprocess);
the loop itself is tested in memory (``test_agent_loop.py``), it uses the same tool calls.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from sqlr1.agent import Agent, HttpTarget, StdioTarget
from sqlr1.mcp_server.core.errors import QueryFailed

TOKEN = "chat-test-token-0123456789"
RUNAWAY = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


async def _exercise(agent: Agent) -> None:
    assert agent.database == "chinook"
    assert {"describe_schema", "execute_sql", "validate_sql", "generate_sql", "search_values"} <= (
        await agent.tools.tool_names()
    )
    schema = await agent.schema()
    assert "Artist" in {t.name for t in schema.tables}
    ok = await agent.run_sql("SELECT count(*) FROM Artist")
    assert ok.status == "ok" and ok.result is not None and ok.result.rows == [[275]]
    blocked = await agent.run_sql("DELETE FROM Artist")
    assert blocked.status == "failed" and blocked.error is not None and blocked.error.kind == "blocked"
    assert blocked.error.rule  # the structured error survives the wire
    hits = await agent.tools.search_values("chinook", "songs by AC/DC")
    assert hits is not None and any(h.value == "AC/DC" for h in hits.hits)
    # cancel reaches the server over the wire (notifications/cancelled) and the agent stays usable
    async with anyio.create_task_group() as tg:
        out = []

        async def run() -> None:
            out.append(await agent.run_sql(RUNAWAY))

        tg.start_soon(run)
        await anyio.sleep(0.5)
        agent.cancel()
    assert out[0].status == "cancelled"
    again = await agent.run_sql("SELECT count(*) FROM Album")
    assert again.result is not None and again.result.rows == [[347]]


async def test_stdio_subprocess(chinook_copy: Path) -> None:
    target = StdioTarget(args=("--db", f"chinook={chinook_copy}", "serve"))
    with anyio.fail_after(120):
        async with Agent.connect(target) as agent:
            await _exercise(agent)


@pytest.fixture
def http_server(chinook_copy: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sqlr1.mcp_server.cli.main",
            "--db",
            f"chinook={chinook_copy}",
            "serve",
            "--http",
            "--port",
            "0",
            "--token",
            TOKEN,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        encoding="utf-8",
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 60
        url = None
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"(http://\S+/mcp)", line)
            url = m.group(1) if m else None
        assert url, f"the HTTP server did not start: {line}"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


async def test_http_with_bearer_token(http_server: str) -> None:
    with anyio.fail_after(120):
        async with Agent.connect(HttpTarget(http_server, token=TOKEN)) as agent:
            await _exercise(agent)


async def test_http_with_a_wrong_token_is_a_clear_error(http_server: str) -> None:
    with anyio.fail_after(60), pytest.raises(QueryFailed) as info:
        async with Agent.connect(HttpTarget(http_server, token="wrong-token-wrong-token")):
            pass
    assert info.value.error.kind == "config"
    assert http_server in info.value.error.message and "--token" in info.value.error.message
