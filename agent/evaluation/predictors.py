"""How an evaluation run gets its SQL: ``generate_sql`` (direct) or the agent loop (agent).

Both go through our MCP server, in-process, as a stdio subprocess or over HTTP, so the
numbers measure exactly what IDE and chat users get.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlr1.agent.evaluation.datasets import EvalItem
from sqlr1.agent.evaluation.runner import Prediction, Predictor, RunConfig
from sqlr1.agent.loop import Agent, AgentSettings
from sqlr1.agent.targets import embedded_server
from sqlr1.agent.tools import HttpTarget, ServerTarget, SqlTools, StdioTarget, connect
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GenerationConfig, ModelConfig
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.inference.generation import GenerationResult

__all__ = ["model_manifest", "predictor_for", "server_target"]


def server_target(config: RunConfig, server: str = "inprocess", token: str | None = None) -> ServerTarget:
    """The server the run talks to, serving ``config.db_root`` as one database per db_id."""
    if server == "inprocess":
        model = ModelConfig(model=config.model)
        if config.max_new_tokens:
            model.max_new_tokens = config.max_new_tokens
        app = AppConfig(
            databases=[DatabaseConfig(target=str(config.db_root))],
            model=model,
            generation=GenerationConfig(
                num_candidates=config.n,
                temperature=0.0 if config.n == 1 else 0.8,
                prompt=config.prompt,
                grammar=config.grammar,
                schema_linking=config.schema_linking,
                reasoning=config.reasoning,
            ),
        )
        return embedded_server(app)
    if server == "stdio":
        args = ["--db", str(config.db_root)]
        if config.model:
            args += ["--model", config.model]
        if config.prompt:
            args += ["--prompt", config.prompt]
        return StdioTarget(args=(*args, "serve"))
    if server.startswith(("http://", "https://")):
        return HttpTarget(url=server, token=token or os.environ.get("SQLR1_TOKEN"))
    raise QueryFailed.of("config", f"--server must be 'inprocess', 'stdio' or an http(s) URL, not {server!r}")


def model_manifest(model: str | None) -> dict[str, Any] | None:
    """The checkpoint manifest of the evaluated model, when it has one."""
    from sqlr1.mcp_server.backends.factory import choose_runtime
    from sqlr1.mcp_server.backends.loading import resolve_model

    try:
        resolved = resolve_model(model)
        runtime = choose_runtime(ModelConfig(model=model))
    except QueryFailed:
        return {"model": model}
    if resolved.manifest is not None:
        return {"model": resolved.spec, "runtime": runtime, **resolved.manifest.model_dump(mode="json")}
    return {"model": resolved.spec, "runtime": runtime, "source": resolved.source}


@asynccontextmanager
async def predictor_for(
    config: RunConfig, args: argparse.Namespace | None = None
) -> AsyncIterator[tuple[Predictor, dict[str, Any] | None]]:
    """An entered predictor for ``config.mode`` and the model's manifest."""
    server = getattr(args, "server", "inprocess") if args else "inprocess"
    token = getattr(args, "token", None) if args else None
    target = server_target(config, server, token)
    async with connect(target) as client:
        tools = SqlTools(client)
        if config.mode == "agent":
            settings = AgentSettings(max_turns=config.max_turns, num_candidates=config.n, memory_turns=0)
            agent: Agent | None = None

            async def agent_predict(item: EvalItem) -> Prediction:
                nonlocal agent
                if agent is None:
                    agent = Agent(tools, item.db_id, settings)
                agent.use_database(item.db_id)
                agent.new_conversation()  # every benchmark question stands alone
                t0 = time.perf_counter()
                answer = await agent.ask(item.question, evidence=item.evidence or None)
                return Prediction(
                    idx=item.idx,
                    sql=answer.sql or "",
                    turns=answer.turns,
                    seconds=time.perf_counter() - t0,
                    trace=answer.trace.model_dump(mode="json"),
                )

            yield agent_predict, model_manifest(config.model)
        else:

            async def direct_predict(item: EvalItem) -> Prediction:
                t0 = time.perf_counter()
                try:
                    result = await tools.generate_sql(
                        {
                            "database": item.db_id,
                            "question": item.question,
                            "evidence": item.evidence or None,
                            "num_candidates": config.n,
                        }
                    )
                except QueryFailed as exc:
                    return Prediction(
                        idx=item.idx,
                        sql="",
                        turns=1,
                        seconds=time.perf_counter() - t0,
                        trace={"error": exc.error.model_dump()},
                    )
                sql = result.sql or _best_effort_sql(result)
                trace = result.model_dump(
                    mode="json",
                    include={"status", "message", "vote_counts", "executable", "candidates", "timings"},
                )
                trace["prompt"] = {"variant": result.prompt.variant, "version": result.prompt.version}
                return Prediction(
                    idx=item.idx, sql=sql, turns=1, seconds=time.perf_counter() - t0, trace=trace
                )

            yield direct_predict, model_manifest(config.model)


def _best_effort_sql(result: GenerationResult) -> str:
    """When no candidate executed, score the first parsed candidate (it scores 0 unless it runs)."""
    return next((cand.sql for cand in result.candidates if cand.sql), "")
