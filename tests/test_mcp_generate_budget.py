"""``generate_sql``'s time budget through a real MCP client: the vote among the candidates done when it runs
out, the result saying so, progress on the way, cancellation still stopping the model; the server setting
(``--generate-budget-s`` / ``generation.time_budget_s``); and the real default model over stdio (slow)."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from scripted_backend import answer

from sqlr1.mcp_server.backends.base import Completion, PromptInput, SamplingParams, TokenCallback
from sqlr1.mcp_server.cli.main import build_parser
from sqlr1.mcp_server.core.config import (
    SERVE_TIME_BUDGET_S,
    AppConfig,
    DatabaseConfig,
    GenerationConfig,
    GuardSettings,
)
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server

REPO = Path(__file__).resolve().parent.parent
STEP_S = 0.05


class StaggeredBackend:
    """Candidate ``i`` completes after ``finish_steps[i]`` decode steps of ``STEP_S``; all are decoded
    together (as llama.cpp batches them) and the ones still running when ``should_stop`` turns true end
    ``cancelled``, with the text they had."""

    name = "staggered"
    model_id = "staggered-model"
    device = "cpu"
    has_chat_template = True

    def __init__(self, texts: list[str], finish_steps: list[int]) -> None:
        self.texts = texts
        self.finish_steps = finish_steps
        self.stopped = threading.Event()

    def generate(
        self,
        prompt: PromptInput,
        params: SamplingParams,
        *,
        on_text: TokenCallback | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Completion]:
        n = params.n
        done: dict[int, Completion] = {}
        step = 0
        while len(done) < n:
            if should_stop is not None and should_stop():
                self.stopped.set()
                break
            time.sleep(STEP_S)
            step += 1
            for i in range(n):
                if i not in done and step >= self.finish_steps[i % len(self.finish_steps)]:
                    text = self.texts[i % len(self.texts)]
                    if on_text is not None:
                        on_text(i, text)
                    done[i] = Completion(text=text, num_tokens=step, logprob=-1.0 - i)
        return [
            done.get(i) or Completion(text="<think>unfini", num_tokens=step, finish_reason="cancelled")
            for i in range(n)
        ]

    def close(self) -> None:
        return None


def _server(db: Path, backend: Any, budget_s: float = 40.0) -> Any:
    config = AppConfig(
        guard=GuardSettings(timeout_s=5.0),
        databases=[DatabaseConfig(name="concert", target=str(db))],
        generation=GenerationConfig(time_budget_s=budget_s),
    )
    return build_server(config, plugins=[generation_plugin(backend)])


async def test_budget_votes_among_the_candidates_done(spider_copy: Any) -> None:
    # Candidates 0 and 1 finish at once; 2 and 3 would take 400 steps (20 s): the 1.5 s budget stops them.
    backend = StaggeredBackend(
        [answer("SELECT count(*) FROM singer"), answer("SELECT count(*) FROM singer")], [1, 2, 400, 400]
    )
    server = _server(spider_copy("concert_singer"), backend)
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async with Client(server) as client:
        tool = {t.name: t for t in (await client.list_tools()).tools}["generate_sql"]
        assert "time_budget_s" in tool.input_schema["properties"]
        assert {"budget_exhausted", "candidates_done", "candidates_requested"} <= set(
            (tool.output_schema or {})["properties"]
        )
        with anyio.fail_after(30):
            result = await client.call_tool(
                "generate_sql",
                {"question": "How many singers?", "num_candidates": 4, "time_budget_s": 1.5},
                progress_callback=on_progress,
            )
    assert not result.is_error, result.content
    res = GenerationResult.model_validate(result.structured_content)
    assert res.budget_exhausted is True
    assert (res.candidates_done, res.candidates_requested) == (2, 4)
    assert res.status == "ok" and res.sql == "SELECT count(*) FROM singer" and res.vote_counts == [2]
    assert [c.status for c in res.candidates] == ["ok", "ok", "unfinished", "unfinished"]
    assert res.time_budget_s is not None and 0 < res.time_budget_s <= 1.5
    assert "time budget" in res.message
    assert backend.stopped.is_set()
    assert any("time budget ran out" in m for m in messages), messages


async def test_no_candidate_done_says_so(spider_copy: Any) -> None:
    backend = StaggeredBackend([answer("SELECT 1")], [400])
    server = _server(spider_copy("concert_singer"), backend, budget_s=1.0)  # the server's default budget
    with anyio.fail_after(30):
        async with Client(server) as client:
            result = await client.call_tool("generate_sql", {"database": "concert", "question": "q"})
    res = GenerationResult.model_validate(result.structured_content)
    assert res.budget_exhausted is True and res.candidates_done == 0 and res.sql is None
    assert res.status == "no_executable_candidate"
    assert "time budget (1 s) ran out" in res.message and "time_budget_s" in res.message


async def test_a_call_queued_behind_a_busy_model_returns_at_its_budget(spider_copy: Any) -> None:
    """The model is busy (the schema prefix being computed at server start, or another request): a call
    waiting for it ends when its budget does, says why, and never reaches the model."""
    from sqlr1.mcp_server.inference.generation import _lock_for

    backend = StaggeredBackend([answer("SELECT 1")], [1])
    calls: list[int] = []
    generate = backend.generate

    def counted(*args: Any, **kwargs: Any) -> list[Completion]:
        calls.append(1)
        return generate(*args, **kwargs)

    backend.generate = counted  # type: ignore[method-assign]
    server = _server(spider_copy("concert_singer"), backend, budget_s=1.0)
    lock = _lock_for(backend)  # type: ignore[arg-type]
    assert lock is not None and lock.acquire()  # what the warm-up holds while it prefills
    try:
        with anyio.fail_after(30):
            async with Client(server) as client:
                result = await client.call_tool("generate_sql", {"database": "concert", "question": "q"})
        assert lock.locked()  # returned while the model was still busy
    finally:
        lock.release()
    res = GenerationResult.model_validate(result.structured_content)
    assert res.budget_exhausted is True and res.candidates_done == 0 and res.sql is None and calls == []
    assert "time budget (1 s) ran out" in res.message and "the model was busy" in res.message


async def test_within_budget_is_not_exhausted(spider_copy: Any) -> None:
    backend = StaggeredBackend([answer("SELECT count(*) FROM singer")], [1, 1])
    server = _server(spider_copy("concert_singer"), backend)
    with anyio.fail_after(30):
        async with Client(server) as client:
            result = await client.call_tool("generate_sql", {"question": "q", "num_candidates": 2})
    res = GenerationResult.model_validate(result.structured_content)
    assert res.budget_exhausted is False and res.candidates_done == 2 and res.status == "ok"
    assert res.time_budget_s is not None and 39 < res.time_budget_s <= 40


async def test_cancel_still_stops_the_model_under_a_budget(spider_copy: Any) -> None:
    backend = StaggeredBackend([answer("SELECT 1")], [1000])
    server = _server(spider_copy("concert_singer"), backend)
    started = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        started.set()

    async with Client(server) as client:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tg:

                async def call() -> None:
                    await client.call_tool("generate_sql", {"question": "q"}, progress_callback=on_progress)

                tg.start_soon(call)
                await started.wait()
                tg.cancel_scope.cancel()
            await anyio.to_thread.run_sync(lambda: backend.stopped.wait(20))
    assert backend.stopped.is_set(), "the model was not told to stop"


def test_the_budget_defaults_to_40_s_under_serve_and_none_elsewhere() -> None:
    """MCP clients give up after about 60 s, so `sqlr1 serve` defaults to 40 s; the chat, ask, generate and
    eval run in process with progress and cancel, and an evaluation must not score a slow prefill as wrong."""
    from sqlr1.mcp_server.cli.main import resolve_config, serve_config

    parse = build_parser(plugins=False).parse_args
    assert GenerationConfig().time_budget_s is None
    assert resolve_config(parse(["serve"])).generation.time_budget_s is None  # what chat/ask/eval get
    assert serve_config(parse(["serve"])).generation.time_budget_s == SERVE_TIME_BUDGET_S == 40
    assert serve_config(parse(["serve", "--generate-budget-s", "0"])).generation.time_budget_s == 0


def test_serve_flag_and_bad_values() -> None:
    args = build_parser(plugins=False).parse_args(["serve", "--generate-budget-s", "12.5"])
    assert args.generate_budget_s == 12.5
    for bad in ("-1", "soon", "100000"):
        with pytest.raises(SystemExit):
            build_parser(plugins=False).parse_args(["serve", "--generate-budget-s", bad])


@pytest.mark.slow
async def test_real_model_over_stdio_returns_within_its_budget(chinook_copy: Path, tmp_path: Path) -> None:
    """The default model on llama.cpp, 4 candidates, a 1 s budget (model load included): the call comes
    back with the budget spent and says how many candidates were done (a CPU never finishes 4 join
    queries in 1 s), and the server's stderr holds no progress bar or library warning."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "sqlr1.mcp_server.cli.main",
            "--db",
            f"chinook={chinook_copy}",
            "serve",
            "--generate-budget-s",
            "1",
        ],
        cwd=str(REPO),
        env=env,
    )
    with (tmp_path / "stderr.txt").open("w") as err, anyio.fail_after(300):
        async with Client(stdio_client(params, errlog=err)) as client:
            result = await client.call_tool(
                "generate_sql", {"question": "Which customer has the most invoices?", "num_candidates": 4}
            )
    assert not result.is_error, result.content
    res = GenerationResult.model_validate(result.structured_content)
    assert res.time_budget_s is not None and res.time_budget_s <= 1
    assert res.candidates_requested == 4
    assert res.budget_exhausted is True and res.candidates_done < 4
    assert all(c.status == "unfinished" for c in res.candidates if c.finish_reason == "cancelled")
    stderr = (tmp_path / "stderr.txt").read_text(encoding="utf-8")
    assert "%|" not in stderr and "\r" not in stderr, stderr  # no progress bar
    assert "Warning" not in stderr, stderr  # no FutureWarning, DeprecationWarning, ...
