"""The agent loop over the real MCP server (in memory), with a per-turn scripted model stand-in.

The database, guard, ``generate_sql`` (prompt, parser, execution, vote) and the MCP transport are
real; only the model's text is scripted, to pin the control flow: feedback text, turns, final answer,
conversation memory and cancellation.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import anyio
import pytest
from agent_scripted import TurnScriptedBackend, sql_answer

from sqlr1.agent import Agent, AgentSettings, SyncAgent, Trace, embedded_server
from sqlr1.agent.events import AgentEvent, AttemptFinished, GenerationProgress
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig

RUNAWAY = "WITH RECURSIVE r(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM r) SELECT count(*) FROM r"


def _config(db: Path, *, n: int = 2, timeout_s: float = 30.0) -> AppConfig:
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    config.generation.num_candidates = n
    config.guard.timeout_s = timeout_s
    return config


async def test_broken_then_fixed_query_is_corrected(chinook_copy: Path, tmp_path: Path) -> None:
    model = TurnScriptedBackend(
        [sql_answer("SELECT Nme FROM Artist"), sql_answer("SELECT Name FROM Artist LIMIT 3")]
    )
    events: list[AgentEvent] = []
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        with anyio.fail_after(60):
            answer = await agent.ask("List three artist names", on_event=events.append)

    assert answer.status == "ok"
    assert answer.turns == 2 and len(model.prompts) == 2
    assert answer.sql == "SELECT Name FROM Artist LIMIT 3"
    assert answer.result is not None and answer.result.rows == [["AC/DC"], ["Accept"], ["Aerosmith"]]
    first = answer.attempts[0]
    assert first.error is not None and first.error.kind == "execution" and first.reason == "execution"
    assert first.feedback is not None and first.feedback.startswith(
        "Your query failed with: no such column: Nme"
    )
    # the second prompt shows the model its broken SQL and the feedback, as a new turn
    second = model.user_messages(1)
    assert "SELECT Nme FROM Artist" in second and "Your query failed with: no such column: Nme" in second
    assert "Your query failed with" not in model.user_messages(0)
    # the trace records every step, and survives a JSON round trip
    kinds = [s.kind for s in answer.trace.steps]
    assert kinds == ["generation", "feedback", "generation", "execution"]
    gen = answer.trace.steps[0]
    assert gen.kind == "generation" and gen.prompt and "List three artist names" in gen.prompt
    assert gen.candidates and sum(gen.votes) == 0  # nothing executed on turn 1
    saved = Trace.load(answer.trace.save(tmp_path / "trace.json"))
    assert saved == answer.trace
    finished = [e for e in events if isinstance(e, AttemptFinished)]
    assert [e.accepted for e in finished] == [False, True]
    # the model's text is streamed while it generates (after the status line of the progress message)
    streamed = [e.text for e in events if isinstance(e, GenerationProgress) and e.text]
    assert streamed and streamed[0].startswith("<think>")


async def test_zero_rows_and_implausible_shape_are_fed_back(chinook_copy: Path) -> None:
    model = TurnScriptedBackend(
        [
            sql_answer("SELECT Name FROM Artist WHERE Name = 'acdc'"),
            sql_answer("SELECT Name FROM Artist WHERE Name = 'AC/DC'"),
        ]
    )
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        empty = await agent.ask("Show the artist called acdc")
        model.prompts.clear()
        model.script = [sql_answer("SELECT Name FROM Artist"), sql_answer("SELECT count(*) FROM Artist")]
        counted = await agent.ask("How many artists are there?")

    assert empty.status == "ok" and empty.turns == 2
    assert empty.attempts[0].reason == "empty" and empty.attempts[0].row_count == 0
    assert "returned 0 rows; check the values and joins" in (empty.attempts[0].feedback or "")
    assert empty.result is not None and empty.result.rows == [["AC/DC"]]

    assert counted.status == "ok" and counted.turns == 2
    assert counted.attempts[0].reason == "implausible"
    assert "asks for a single number" in (counted.attempts[0].feedback or "")
    assert counted.result is not None and counted.result.rows == [[275]]


async def test_blocked_and_exhausted_turns(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("DELETE FROM Artist")])
    settings = AgentSettings(max_turns=3)
    async with Agent.connect(
        embedded_server(_config(chinook_copy), backend=model), settings=settings
    ) as agent:
        answer = await agent.ask("Remove all artists")
    assert answer.status == "failed"
    assert answer.turns == 3 and len(model.prompts) == 3
    assert all(a.reason == "blocked" for a in answer.attempts)
    assert answer.error is not None and answer.error.kind == "blocked"
    assert "refused by the read-only guard" in (answer.attempts[0].feedback or "")
    # no feedback step after the last turn: there is nobody to tell
    assert [s.kind for s in answer.trace.steps].count("feedback") == 2


async def test_timeout_is_fed_back(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer(RUNAWAY), sql_answer("SELECT count(*) FROM Track")])
    server = embedded_server(_config(chinook_copy, n=1, timeout_s=1.0), backend=model)
    async with Agent.connect(server) as agent:
        with anyio.fail_after(60):
            answer = await agent.ask("How many tracks are there?")
    assert answer.attempts[0].reason == "timeout"
    assert (answer.attempts[0].feedback or "").startswith("Your query timed out")
    assert answer.status == "ok" and answer.result is not None and answer.result.rows == [[3503]]


async def test_follow_up_sees_previous_question_sql_and_shape(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT Name FROM Genre ORDER BY Name LIMIT 5")])
    async with Agent.connect(embedded_server(_config(chinook_copy), backend=model)) as agent:
        await agent.ask("List five genres")
        model.script = [sql_answer("SELECT Name FROM Genre ORDER BY Name DESC LIMIT 5")]
        follow = await agent.ask("and sort that the other way")
        first_prompt, follow_prompt = model.user_messages(0), model.user_messages(1)
        agent.new_conversation()
        await agent.ask("How many media types are there?")
        fresh_prompt = model.user_messages(2)

    assert follow.status == "ok"
    assert "Execution feedback" not in first_prompt
    assert "List five genres" in follow_prompt
    assert "SELECT Name FROM Genre ORDER BY Name LIMIT 5" in follow_prompt
    assert "It returned 5 row(s) with columns: Name." in follow_prompt
    assert follow_prompt.rstrip().count("and sort that the other way") == 1
    assert "List five genres" not in fresh_prompt and "Genre ORDER BY" not in fresh_prompt
    assert follow.trace.steps[0].kind == "generation"
    assert follow.trace.steps[0].request["feedback"][0]["question"] == "List five genres"


async def test_cancel_stops_generation(chinook_copy: Path) -> None:
    slow = TurnScriptedBackend([sql_answer("SELECT 1", think=" ".join(["thinking"] * 400))], delay_s=0.05)
    async with Agent.connect(embedded_server(_config(chinook_copy, n=1), backend=slow)) as agent:
        started = anyio.Event()

        def on_event(event: AgentEvent) -> None:
            if isinstance(event, GenerationProgress) and "generating" in event.status:
                started.set()

        async with anyio.create_task_group() as tg:
            answers = []

            async def ask() -> None:
                answers.append(await agent.ask("Anything", on_event=on_event))

            tg.start_soon(ask)
            with anyio.fail_after(30):
                await started.wait()
            agent.cancel()
        with anyio.fail_after(10):
            while not slow.stopped.is_set():  # the backend saw should_stop() and ended generation
                await anyio.sleep(0.05)
        assert answers[0].status == "cancelled"
        assert not agent.busy
        # the agent stays usable, and a cancelled question is not remembered
        slow.delay_s, slow.script = 0.0, [sql_answer("SELECT 2")]
        again = await agent.ask("Something else")
    assert again.status == "ok" and len(agent.conversation) == 1


async def test_cancel_interrupts_a_runaway_query_in_the_engine(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT 1")])
    async with Agent.connect(embedded_server(_config(chinook_copy, timeout_s=60), backend=model)) as agent:
        async with anyio.create_task_group() as tg:
            out = []

            async def run() -> None:
                out.append(await agent.run_sql(RUNAWAY))

            tg.start_soon(run)
            await anyio.sleep(0.5)
            agent.cancel()
        with anyio.fail_after(5):  # far below the 60 s guard timeout: the cancel stopped it
            while not out:
                await anyio.sleep(0.01)
        assert out[0].status == "cancelled"
        # The engine really stopped: the process no longer burns CPU on the recursive CTE.
        await anyio.sleep(0.3)
        before = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await anyio.sleep(1.0)
        after = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        assert cpu < 0.5 * (time.perf_counter() - t0), f"still computing after cancel: {cpu:.2f} s CPU"
        ok = await agent.run_sql("SELECT count(*) FROM Artist")
    assert ok.status == "ok" and ok.result is not None and ok.result.rows == [[275]]


def test_sync_agent_and_run_sql_guard(chinook_copy: Path) -> None:
    model = TurnScriptedBackend([sql_answer("SELECT count(*) FROM Album")])
    with SyncAgent(embedded_server(_config(chinook_copy), backend=model)) as agent:
        answer = agent.ask("How many albums are there?")
        blocked = agent.run_sql("DROP TABLE Artist")
    assert answer.status == "ok" and answer.result is not None and answer.result.rows == [[347]]
    assert blocked.status == "failed" and blocked.error is not None and blocked.error.kind == "blocked"


async def test_unknown_database_is_a_clear_error(chinook_copy: Path) -> None:
    from sqlr1.mcp_server.core.errors import QueryFailed

    with pytest.raises(QueryFailed) as info:
        async with Agent.connect(embedded_server(_config(chinook_copy)), database="nope"):
            pass
    assert info.value.error.kind == "not_found" and "chinook" in info.value.error.message
