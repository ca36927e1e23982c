"""A user cancel stops a runaway query in the ENGINE, not just the awaiting task.

``generate_sql`` runs each candidate's SQL through the guarded executor; when the MCP client cancels
the call (in memory: the handler's task; stdio: ``notifications/cancelled``) the request's
``Cancellation`` interrupts the candidate that is running. Likewise for a value-index build, and for
the agent (in memory through the chat, over stdio and streamable HTTP), whose cancel is an MCP cancel
of the in-flight request. The guard timeout is
60 s; "stopped" is read from the engine's own state (statements in flight), and the bounds on how long
that may take (20 s) are generous can-fail checks, not timings. Everything is real except the model
(a scripted stand-in that answers with the runaway SQL): server, transport, guard, executor, SQLite.
"""

from __future__ import annotations

import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from agent_scripted import TurnScriptedBackend, sql_answer
from mcp import Client
from scripted_backend import ScriptedBackend, answer
from stdio_scripted_server import TIMEOUT_S, running_statements, scripted_server

from sqlr1.agent import Agent, HttpTarget, StdioTarget, embedded_server
from sqlr1.agent.events import AgentEvent, GenerationProgress
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryError, QueryFailed
from sqlr1.mcp_server.db.cancellation import Cancellation
from sqlr1.mcp_server.db.executor import Executor
from sqlr1.mcp_server.db.registry import Registry
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.method.values import ValueIndex
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server

HERE = Path(__file__).parent
# 3503^4 rows: hours of work for SQLite, far beyond the 60 s guard timeout.
RUNAWAY = "SELECT count(*) FROM Track AS a, Track AS b, Track AS c, Track AS d"
STOPPED_WITHIN_S = 20.0  # generous, against the 60 s timeout


def _config(db: Path) -> AppConfig:
    config = AppConfig(
        guard=GuardSettings(timeout_s=TIMEOUT_S), databases=[DatabaseConfig(name="chinook", target=str(db))]
    )
    config.generation.num_candidates = 1
    # No value-index queries: once the model has been called, the only statement is the candidate.
    config.generation.value_retrieval = False
    return config


async def _until(predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float) -> None:
    with anyio.fail_after(timeout_s):
        while True:
            out = predicate()
            if not isinstance(out, bool):
                out = await out
            if out:
                return
            await anyio.sleep(0.05)


async def test_mcp_cancel_interrupts_a_runaway_candidate(chinook_copy: Path) -> None:
    config = _config(chinook_copy)
    registry = Registry.from_config(config)
    backend = ScriptedBackend([answer(RUNAWAY)])
    server = build_server(config, registry=registry, plugins=[generation_plugin(backend)])
    try:
        async with Client(server) as client:
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.call_tool, "generate_sql", {"database": "chinook", "question": "q"})
                # sampled, and the candidate's statement is running in the engine
                await _until(lambda: bool(backend.calls) and running_statements(registry) > 0, 60)
                tg.cancel_scope.cancel()
            await _until(lambda: running_statements(registry) == 0, STOPPED_WITHIN_S)
            # the server serves the next request (and the engine runs the next statement)
            backend.texts = [answer("SELECT count(*) FROM Artist")]
            with anyio.fail_after(60):
                result = await client.call_tool("generate_sql", {"database": "chinook", "question": "q"})
        assert not result.is_error, result.content
        res = GenerationResult.model_validate(result.structured_content)
        assert res.status == "ok" and res.preview is not None and res.preview.rows == [[275]]
    finally:
        registry.close()


async def test_cancelled_candidate_is_reported_when_generation_was_told_to_stop(chinook_copy: Path) -> None:
    """Without MCP: ``Generator.generate_sql(cancel=...)`` run in a thread, cancelled mid-query, returns
    a ``cancelled`` result whose candidate says it was stopped (not timed out)."""
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.inference.generation import Generator

    config = _config(chinook_copy)
    registry = Registry.from_config(config)
    executor = Executor(registry, config.guard)
    backend = ScriptedBackend([answer(RUNAWAY)])
    generator = Generator(registry, executor, SchemaInspector(registry), backend, config.generation)
    cancel = Cancellation()
    out: list[GenerationResult] = []
    thread = threading.Thread(
        target=lambda: out.append(generator.generate_sql("chinook", "q", cancel=cancel))
    )
    try:
        thread.start()
        await _until(lambda: bool(backend.calls) and running_statements(registry) > 0, 60)
        cancel.cancel()
        await anyio.to_thread.run_sync(thread.join, STOPPED_WITHIN_S)
        assert not thread.is_alive(), "the candidate kept running after the cancel"
        res = out[0]
        assert res.status == "cancelled" and res.sql is None
        cand = res.candidates[0]
        assert cand.status == "cancelled" and cand.error is not None and cand.error.kind != "timeout"
        assert running_statements(registry) == 0
    finally:
        cancel.cancel()
        thread.join(TIMEOUT_S + 5)
        registry.close()


def _add_slow_view(db: Path) -> None:
    """A view sorting before every table, so it is the value index's FIRST text column, whose
    ``SELECT DISTINCT`` has to scan 25 * 3503^3 rows."""
    con = sqlite3.connect(db)
    try:
        con.execute(
            'CREATE VIEW "AAA_slow" AS SELECT g.Name AS Name FROM Genre AS g, Track AS a, Track AS b, Track AS c'
        )
        con.commit()
    finally:
        con.close()


def test_cancel_stops_a_value_index_build_in_the_engine(chinook_copy: Path, tmp_path: Path) -> None:
    _add_slow_view(chinook_copy)
    registry = Registry.from_targets([f"chinook={chinook_copy}"])
    executor = Executor(registry, GuardSettings(timeout_s=TIMEOUT_S))
    cache = tmp_path / "values"
    index = ValueIndex(registry, executor, cache_dir=cache, timeout_s=TIMEOUT_S)
    cancel = Cancellation()
    errors: list[QueryError] = []

    def search() -> None:
        try:
            index.search("chinook", "songs by AC/DC", cancel=cancel)
        except QueryFailed as exc:
            errors.append(exc.error)

    thread = threading.Thread(target=search)
    try:
        assert registry.engine("chinook").catalog()[0].name == "AAA_slow"
        thread.start()
        deadline = time.monotonic() + 60
        while running_statements(registry) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        cancel.cancel()
        thread.join(STOPPED_WITHIN_S)
        assert not thread.is_alive(), "the index query kept running after the cancel"
        assert errors and errors[0].kind == "execution" and "cancelled" in errors[0].message
        assert running_statements(registry) == 0
        assert not list(cache.glob("*.json")), "an incomplete index was written to disk"
        # Not kept in memory either: without the view, a search builds the whole index afresh.
        con = sqlite3.connect(chinook_copy)
        con.execute('DROP VIEW "AAA_slow"')
        con.commit()
        con.close()
        hits = index.search("chinook", "songs by AC/DC")
        assert any(h.value == "AC/DC" for h in hits) and list(cache.glob("*.json"))
    finally:
        cancel.cancel()
        thread.join(TIMEOUT_S + 5)
        registry.close()


async def _cancel_a_generation_in_flight(agent: Agent) -> None:
    """Ask; once the runaway candidate runs in the engine, cancel; it stops; the next ask works."""
    executing = anyio.Event()

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, GenerationProgress) and "executing" in event.status:
            executing.set()

    async def running() -> bool:
        return bool((await agent.tools.call("engine_activity", {}))["running"])

    async def stopped() -> bool:
        return not await running()

    out: list[Any] = []
    async with anyio.create_task_group() as tg:

        async def ask() -> None:
            out.append(await agent.ask("How many track combinations?", on_event=on_event))

        tg.start_soon(ask)
        await executing.wait()
        await _until(running, 60)
        agent.cancel()  # an MCP cancel of the in-flight generate_sql request
    assert out[0].status == "cancelled"
    await _until(stopped, STOPPED_WITHIN_S)
    again = await agent.ask("How many artists?")
    assert again.status == "ok" and again.result is not None and again.result.rows == [[275]]


async def test_agent_cancel_over_stdio_interrupts_the_candidate(chinook_copy: Path) -> None:
    target = StdioTarget(
        command=sys.executable,
        prefix=(str(HERE / "stdio_scripted_server.py"),),
        args=(str(chinook_copy), RUNAWAY, "SELECT count(*) FROM Artist"),
    )
    with anyio.fail_after(120):
        async with Agent.connect(target) as agent:
            await _cancel_a_generation_in_flight(agent)


@pytest.fixture
def http_url(chinook_copy: Path) -> Iterator[str]:
    """The scripted server over streamable HTTP (uvicorn in a thread, loopback, no token)."""
    import uvicorn

    from sqlr1.mcp_server.protocol.http_app import MCP_PATH, build_http_app

    server, registry = scripted_server(str(chinook_copy), [RUNAWAY, "SELECT count(*) FROM Artist"])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    uv = uvicorn.Server(uvicorn.Config(build_http_app(server, AppConfig().server), log_level="warning"))
    thread = threading.Thread(target=lambda: anyio.run(uv.serve, [sock]), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not uv.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert uv.started, "the HTTP server did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}{MCP_PATH}"
    finally:
        uv.should_exit = True
        thread.join(30)
        sock.close()
        registry.close()


async def test_agent_cancel_over_http_interrupts_the_candidate(http_url: str) -> None:
    with anyio.fail_after(120):
        async with Agent.connect(HttpTarget(http_url)) as agent:
            await _cancel_a_generation_in_flight(agent)


async def test_chat_escape_interrupts_the_candidate(chinook_copy: Path, tmp_path: Path) -> None:
    from textual.pilot import Pilot

    from sqlr1.tui.app import ChatApp
    from sqlr1.tui.history import InputHistory
    from sqlr1.tui.widgets.answer_view import AnswerView

    config = _config(chinook_copy)
    registry = Registry.from_config(config)
    model = TurnScriptedBackend([sql_answer(RUNAWAY), sql_answer("SELECT count(*) FROM Artist")])
    server = embedded_server(config, backend=model, registry=registry)
    app = ChatApp(
        lambda: Agent.connect(server),
        model_label="scripted",
        history=InputHistory(tmp_path / "history.json"),
        export_dir=tmp_path / "exports",
    )

    async def wait_for(pilot: Pilot[None], predicate: Callable[[], object], timeout_s: float) -> None:
        with anyio.fail_after(timeout_s):
            while not predicate():
                await pilot.pause(0.05)

    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await app.wait_until_ready()
            await pilot.press(*"How many track combinations?", "enter")
            await wait_for(pilot, lambda: model.prompts and running_statements(registry) > 0, 60)
            await pilot.press("escape")
            await wait_for(pilot, lambda: running_statements(registry) == 0, STOPPED_WITHIN_S)
            await wait_for(pilot, lambda: app.answers, STOPPED_WITHIN_S)
            assert app.answers[0].status == "cancelled"
            assert app.query(AnswerView).last().answer is app.answers[0]
            await pilot.press(*"How many artists?", "enter")
            await wait_for(pilot, lambda: len(app.answers) == 2, 60)
            second = app.answers[-1]
        assert second.status == "ok" and second.result is not None and second.result.rows == [[275]]
    finally:
        registry.close()
