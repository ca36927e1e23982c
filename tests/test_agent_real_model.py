"""The agent loop end to end with the REAL bundled model (SmolLM2-135M) on a copied Spider database.

Structure and invariants only, never whether the tiny model is right: turns within bounds, every
attempt either accepted or fed back, feedback reaching the next prompt, votes adding up, and every
executed statement having gone through the guard.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import anyio
import pytest
from model_fixtures import bundled_backend  # noqa: F401  (fixture)

from sqlr1.agent import Agent, AgentSettings, embedded_server
from sqlr1.agent.trace import ExecutionStep, FeedbackStep, GenerationStep
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig

pytestmark = pytest.mark.slow


def spider_db(shared_data: Path, tmp_path: Path, db_id: str = "concert_singer") -> Path:
    dst = tmp_path / db_id / f"{db_id}.sqlite"
    dst.parent.mkdir(parents=True)
    shutil.copyfile(shared_data / "spider" / "database" / db_id / f"{db_id}.sqlite", dst)
    return dst


def small_config(db: Path, name: str = "concert_singer") -> AppConfig:
    config = AppConfig(databases=[DatabaseConfig(name=name, target=str(db))])
    config.generation.num_candidates = 1  # greedy: the loop's structure, not self-consistency, is tested here
    config.model.max_new_tokens = 48
    return config


async def test_loop_with_the_bundled_model(shared_data: Path, tmp_path: Path, bundled_backend) -> None:  # noqa: F811
    db = spider_db(shared_data, tmp_path)
    server = embedded_server(small_config(db), backend=bundled_backend)
    settings = AgentSettings(max_turns=2)
    async with Agent.connect(server, settings=settings) as agent:
        with anyio.fail_after(1800):  # this CPU is shared; a 48-token generation can take minutes under load
            answer = await agent.ask("How many singers do we have?")

    ans = answer
    assert ans.status in ("ok", "failed")
    assert 1 <= ans.turns <= 2
    gens = [s for s in ans.trace.steps if isinstance(s, GenerationStep)]
    feedback = [s for s in ans.trace.steps if isinstance(s, FeedbackStep)]
    executions = [s for s in ans.trace.steps if isinstance(s, ExecutionStep)]
    assert len(gens) == ans.turns and len(feedback) == ans.turns - 1
    assert gens[0].model == bundled_backend.model_id
    for gen in gens:
        assert len(gen.candidates) == 1
        ok = sum(1 for c in gen.candidates if c["status"] == "ok")
        assert sum(gen.votes) == ok
        assert gen.prompt and ans.question in gen.prompt
    for ex in executions:  # only the chosen SQL is executed, through execute_sql's guard
        assert ex.sql in {g.sql for g in gens}
        assert ex.error is None or ex.error.kind != "blocked" or ex.error.rule
    for attempt in ans.attempts[:-1]:
        assert attempt.feedback and attempt.reason
    if ans.turns == 2:  # the feedback reached the model as a new turn
        assert json.dumps(ans.attempts[0].feedback)[1:40] in (gens[1].prompt or "")
    if ans.status == "ok":
        assert ans.result is not None and ans.attempts[-1].feedback is None
    saved = ans.trace.model_dump_json()
    assert json.loads(saved)["question"] == ans.question
