"""``generate_sql`` and ``search_values`` through the MCP in-memory Client: structured results,
progress notifications, cancellation, annotations; and the real bundled model (slow)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from model_fixtures import bundled_backend  # noqa: F401  (fixture)
from scripted_backend import ScriptedBackend, answer

from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings, ModelConfig
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server
from sqlr1.mcp_server.sql.guard import check


def _server(databases: list[DatabaseConfig], backend: Any, **model: Any) -> MCPServer:
    config = AppConfig(guard=GuardSettings(timeout_s=5.0), databases=databases, model=ModelConfig(**model))
    return build_server(config, plugins=[generation_plugin(backend)])


async def test_generate_sql_structured_with_progress(spider_copy) -> None:
    backend = ScriptedBackend([answer("SELECT count(*) FROM singer"), answer("SELECT Name FROM singer")])
    server = _server([DatabaseConfig(name="concert", target=str(spider_copy("concert_singer")))], backend)
    updates: list[tuple[float, float | None, str | None]] = []

    # named as the SDK's ProgressFnT names them
    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        updates.append((progress, total, message))

    async with Client(server) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        assert {"generate_sql", "search_values"} <= set(tools)
        for name in ("generate_sql", "search_values"):
            annotations = tools[name].annotations
            assert annotations is not None and annotations.read_only_hint is True, name
        assert tools["generate_sql"].output_schema is not None
        with anyio.fail_after(60):
            result = await client.call_tool(
                "generate_sql",
                {"database": "concert", "question": "How many singers?", "num_candidates": 3},
                progress_callback=on_progress,
            )
    assert not result.is_error
    res = GenerationResult.model_validate(result.structured_content)
    assert res.status == "ok" and len(res.candidates) == 3 and backend.calls[0][1].n == 3
    assert res.vote_counts == [2, 1] and res.sql == "SELECT count(*) FROM singer"
    assert res.preview is not None and res.preview.rows == [[6]]
    assert updates, "no progress notifications"
    values = [p for p, _, _ in updates]
    assert values == sorted(values) and updates[-1][0] == updates[-1][1]


async def test_feedback_and_errors(spider_copy) -> None:
    backend = ScriptedBackend([answer("SELECT count(*) FROM singer")])
    server = _server([DatabaseConfig(name="concert", target=str(spider_copy("concert_singer")))], backend)
    async with Client(server) as client:
        with anyio.fail_after(60):
            ok = await client.call_tool(
                "generate_sql",
                {
                    "database": "concert",
                    "question": "How many singers?",
                    "num_candidates": 1,
                    "feedback": [
                        {"sql": "SELECT count(*) FROM singers", "feedback": "failed with: no such table"}
                    ],
                },
            )
            missing = await client.call_tool("generate_sql", {"database": "nope", "question": "q"})
    assert not ok.is_error
    messages = backend.calls[0][0].messages
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    assert "no such table" in messages[-1].content
    assert missing.is_error and "not_found" in missing.content[0].text  # type: ignore[union-attr]


async def test_cancel_stops_generation(spider_copy) -> None:
    backend = ScriptedBackend([answer("SELECT 1")], wait_for_stop=True)
    server = _server([DatabaseConfig(name="concert", target=str(spider_copy("concert_singer")))], backend)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(server) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool(
                        "generate_sql",
                        {"database": "concert", "question": "q"},
                        progress_callback=on_progress,
                    )

                tg.start_soon(call)
                await started.wait()
                tg.cancel_scope.cancel()
            await anyio.to_thread.run_sync(lambda: backend.stopped.wait(20))
    assert backend.stopped.is_set(), "the model was not told to stop"


async def test_search_values_tool(chinook_copy: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("SQLR1_CACHE", str(tmp_path / "cache"))
    server = _server([DatabaseConfig(name="chinook", target=str(chinook_copy))], ScriptedBackend(["x"]))
    async with Client(server) as client:
        with anyio.fail_after(60):
            result = await client.call_tool(
                "search_values", {"database": "chinook", "text": "albums by AC/DC", "limit": 3}
            )
            bad = await client.call_tool("search_values", {"database": "nope", "text": "x"})
    assert not result.is_error
    hits = result.structured_content["hits"]  # type: ignore[index]
    assert hits[0] | {"score": 100.0} == {
        "table": "Artist",
        "column": "Name",
        "value": "AC/DC",
        "score": 100.0,
        "phrase": "ac/dc",
    }
    assert len(hits) <= 3 and bad.is_error


@pytest.mark.slow
async def test_generate_sql_with_bundled_model(spider_copy, bundled_backend) -> None:  # noqa: F811
    server = _server(
        [DatabaseConfig(name="pets", target=str(spider_copy("pets_1")))], bundled_backend, max_new_tokens=32
    )
    async with Client(server) as client:
        with anyio.fail_after(900):
            result = await client.call_tool(
                "generate_sql",
                {"database": "pets", "question": "How many pets are there?", "num_candidates": 2},
            )
    assert not result.is_error, result.content
    res = GenerationResult.model_validate(result.structured_content)
    assert len(res.candidates) == 2 and res.model == bundled_backend.model_id
    assert res.executable == sum(res.vote_counts) == sum(1 for c in res.candidates if c.status == "ok")
    for cand in res.candidates:
        assert cand.num_tokens <= 32
        if cand.status == "ok":
            check(cand.sql or "", "sqlite")
    if res.status == "ok":
        assert res.candidates[res.chosen or 0].group == 0
