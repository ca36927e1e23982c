"""Answers say how sure they are (issue 19, item 5): ``generate_sql``'s structured result over a real
MCP client, and the agent loop over the real in-memory server, database and guard, with the per-turn
scripted model stand-in for the control flow (a retry on a shape mismatch, then doubt).
"""

from __future__ import annotations

from pathlib import Path

import anyio
from agent_scripted import TurnScriptedBackend, sql_answer
from mcp import Client
from scripted_backend import ScriptedBackend, answer

from sqlr1.agent import Agent, AgentSettings, embedded_server
from sqlr1.agent.trace import GenerationStep
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig, GuardSettings
from sqlr1.mcp_server.core.errors import QueryError
from sqlr1.mcp_server.core.results import JSONValue, QueryResult, column
from sqlr1.mcp_server.inference.generation import GenerationResult
from sqlr1.mcp_server.method.confidence import Confidence, assess
from sqlr1.mcp_server.method.prompt import INSTRUCT_PROMPT_VERSION
from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
from sqlr1.mcp_server.protocol.server import build_server

EACH = "How many tracks does each genre have?"
PER_GENRE = (
    "SELECT g.Name, count(*) AS tracks FROM Track t JOIN Genre g ON g.GenreId = t.GenreId GROUP BY g.Name"
)


def _config(db: Path, n: int = 1) -> AppConfig:
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    config.generation.num_candidates = n
    return config


def _one(value: JSONValue) -> QueryResult:
    return QueryResult(
        columns=[column("x", None)], rows=[[value]], row_count=1, truncated=False, elapsed_ms=0.0
    )


def test_assess_levels() -> None:
    blocked = QueryError(kind="blocked", message="DELETE is not allowed", rule="statement_type")
    refused = assess("Delete all", result=None, error=blocked)
    assert refused.level == "refused" and "rule statement_type" in refused.reasons[0]
    failed = assess("q", result=None, error=QueryError(kind="execution", message="no such column: x"))
    assert failed.level == "failed" and "no such column" in failed.reasons[0]
    assert assess("q", result=None, cancelled=True).level == "cancelled"
    ok = assess(
        "How many tracks are there?",
        result=_one(3503),
        sql="SELECT count(*) FROM Track",
        votes=1,
        candidates=1,
        executed=1,
    )
    assert ok.level == "ok" and ok.reasons == [] and ok.basis().startswith("1 of 1 candidate(s) agree")
    doubt = assess(EACH, result=_one(3503), sql="SELECT count(*) FROM Track", votes=1, candidates=1)
    assert doubt.level == "doubtful" and doubt.shape == ["one_row_per_group"]
    split = assess("How many tracks are there?", result=_one(3503), votes=3, executed=6, candidates=8)
    assert split.level == "doubtful" and "only 3 of 8 candidates agree" in split.reasons[0]
    assert "6 ran" in split.basis()
    majority = assess("How many tracks are there?", result=_one(3503), votes=5, executed=6, candidates=8)
    assert majority.level == "ok"
    # retries are recorded, not held against a result that fits
    fixed = assess("How many tracks are there?", result=_one(3503), attempts=2, retried_because=["execution"])
    assert fixed.level == "ok" and "retried: execution" in fixed.basis()
    forced = assess("How many tracks are there?", result=_one(3503), rebound=True)
    assert forced.level == "doubtful" and "the grammar chose" in forced.reasons[0]
    joined = assess("How many tracks are there?", result=_one(3503), joined=["Album"])
    assert joined.level == "doubtful" and "did not join Album" in joined.reasons[0]


MISBOUND = "SELECT COUNT(*) FROM Employee AS T1 JOIN Customer AS T2 ON T1.SupportRepId = T2.CustomerId\n```"
REBOUND = "SELECT COUNT(*) FROM Employee AS T1 JOIN Customer AS T2 ON T1.EmployeeId = T2.SupportRepId\n```"


class InstructOnCpu(TurnScriptedBackend):
    """An untrained instruct model on a runtime that decodes grammars (as Qwen on llama.cpp)."""

    prompt_version = INSTRUCT_PROMPT_VERSION
    device = "cpu"
    supports_grammar = True


async def test_a_column_the_grammar_bound_makes_the_answer_doubtful(chinook_copy: Path) -> None:
    """Turn 1 binds a column to the wrong alias; the retry does it again, so its query is decoded
    once more with the aliases bound: the answer runs, and says the grammar chose the column."""
    model = InstructOnCpu([MISBOUND, MISBOUND, REBOUND])
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        with anyio.fail_after(60):
            answer_ = await agent.ask("How many customers do the employees support?")
    assert len(model.prompts) == 3 and answer_.status == "ok" and answer_.turns == 2
    assert answer_.sql == REBOUND.removesuffix("\n```")
    assert "T1 is Employee, which has no column SupportRepId" in (answer_.attempts[0].feedback or "")
    confidence = answer_.confidence
    assert confidence is not None and confidence.level == "doubtful"
    assert any("the grammar chose" in r for r in confidence.reasons)
    assert answer_.warning is not None and "the grammar chose" in answer_.warning


FORGOT = "SELECT Name FROM Track WHERE Title = 'Let There Be Rock'\n```"  # Title is Album's


async def test_a_table_joined_for_the_model_makes_the_answer_doubtful(chinook_copy: Path) -> None:
    """Every turn names Album's Title in a query over Track alone; on the last one, Album is joined
    along Track's key: the answer runs, and says the join was added."""
    model = InstructOnCpu([FORGOT])
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        with anyio.fail_after(60):
            answer_ = await agent.ask("Which tracks are on Let There Be Rock?")
    assert len(model.prompts) == 3 and answer_.status == "ok" and answer_.turns == 3
    requests = [s.request for s in answer_.trace.steps if isinstance(s, GenerationStep)]
    assert [r["join_missing"] for r in requests] == [False, False, True]  # asked for on the last turn only
    assert answer_.sql is not None and "JOIN Album ON Track.AlbumId = Album.AlbumId" in answer_.sql
    assert answer_.result is not None and answer_.result.row_count == 8
    assert "Title is a column of Album" in (answer_.attempts[0].feedback or "")
    confidence = answer_.confidence
    assert confidence is not None and confidence.level == "doubtful"
    assert answer_.warning is not None and "did not join Album" in answer_.warning


async def test_generate_sql_result_carries_its_confidence(chinook_copy: Path) -> None:
    backend = ScriptedBackend(
        [answer("SELECT count(*) FROM Track"), answer("SELECT count(*) FROM Track"), answer("SELECT 1")]
    )
    config = AppConfig(
        guard=GuardSettings(timeout_s=5.0),
        databases=[DatabaseConfig(name="chinook", target=str(chinook_copy))],
    )
    server = build_server(config, plugins=[generation_plugin(backend)])
    async with Client(server) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "generate_sql")
        assert "confidence" in (tool.output_schema or {}).get("properties", {})
        with anyio.fail_after(60):
            each = await client.call_tool(
                "generate_sql", {"database": "chinook", "question": EACH, "num_candidates": 3}
            )
            plain = await client.call_tool(
                "generate_sql",
                {"database": "chinook", "question": "How many tracks are there?", "num_candidates": 3},
            )
    res = GenerationResult.model_validate(each.structured_content)
    assert res.confidence is not None
    assert res.confidence.level == "doubtful" and res.confidence.shape == ["one_row_per_group"]
    assert (res.confidence.votes, res.confidence.executed, res.confidence.candidates) == (2, 3, 3)
    ok = GenerationResult.model_validate(plain.structured_content).confidence
    assert ok is not None and ok.level == "ok" and ok.votes == 2
    deleting = build_server(
        config, plugins=[generation_plugin(ScriptedBackend([answer("DELETE FROM Track")]))]
    )
    async with Client(deleting) as client:
        with anyio.fail_after(60):
            refused = await client.call_tool(
                "generate_sql", {"database": "chinook", "question": "Delete every track"}
            )
    nothing = GenerationResult.model_validate(refused.structured_content)
    assert nothing.status == "no_executable_candidate" and nothing.confidence is not None
    assert nothing.confidence.level == "refused" and nothing.confidence.executed == 0


async def test_shape_mismatch_is_retried_then_fixed(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT count(*) FROM Track"), sql_answer(PER_GENRE)])
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        with anyio.fail_after(60):
            answer_ = await agent.ask(EACH)
    assert answer_.status == "ok" and answer_.turns == 2
    first = answer_.attempts[0]
    assert first.reason == "shape" and first.doubts and "GROUP BY" in (first.feedback or "")
    assert "GROUP BY" in model.user_messages(1)  # the model was told what to change
    assert answer_.result is not None and answer_.result.row_count == 25
    confidence = answer_.confidence
    assert confidence is not None and confidence.level == "ok"
    assert confidence.attempts == 2 and confidence.retried_because == ["shape"]


async def test_shape_mismatch_that_stays_is_kept_as_doubtful(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT count(*) FROM Track")])
    settings = AgentSettings(max_turns=3)
    async with Agent.connect(
        embedded_server(_config(chinook_copy), backend=model), settings=settings
    ) as agent:
        with anyio.fail_after(60):
            answer_ = await agent.ask(EACH)
    # one shape retry (not all three turns), then the answer is kept, labelled doubtful, not "ok"
    assert answer_.turns == 2 and len(model.prompts) == 2
    assert answer_.status == "ok" and answer_.result is not None and answer_.result.rows == [[3503]]
    assert answer_.confidence is not None and answer_.confidence.level == "doubtful"
    assert "per group" in answer_.confidence.reasons[0]
    assert answer_.warning is not None and answer_.warning.startswith("doubtful:")
    restored = type(answer_).model_validate_json(answer_.model_dump_json())
    assert isinstance(restored.confidence, Confidence) and restored.confidence.level == "doubtful"


async def test_refusal_and_failure_are_labelled(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("DELETE FROM Artist")])
    async with Agent.connect(
        embedded_server(_config(chinook_copy), backend=model), settings=AgentSettings(max_turns=1)
    ) as agent:
        refused = await agent.ask("Remove all artists")
        edited = await agent.run_sql("SELECT Nme FROM Artist")
        ran = await agent.run_sql("SELECT count(*) FROM Artist")
    assert refused.status == "failed" and refused.confidence is not None
    assert refused.confidence.level == "refused" and "read-only guard" in refused.confidence.reasons[0]
    assert edited.confidence is not None and edited.confidence.level == "failed"
    assert ran.confidence is not None and ran.confidence.level == "ok"


async def test_empty_result_after_all_turns_is_doubtful(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT Name FROM Artist WHERE Name = 'nobody'")])
    async with Agent.connect(
        embedded_server(_config(chinook_copy), backend=model), settings=AgentSettings(max_turns=2)
    ) as agent:
        answer_ = await agent.ask("Show the artist called nobody")
    assert answer_.status == "failed" and answer_.result is not None and answer_.result.row_count == 0
    assert answer_.confidence is not None and answer_.confidence.level == "doubtful"
    assert answer_.confidence.reasons == ["the query returned 0 rows"]
