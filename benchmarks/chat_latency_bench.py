"""Chat UI overhead: time to first visible token and total time per question, chat vs ``Agent.ask``.

Both paths run the same question on the same loaded model and database through the same embedded
MCP server, alternating (ask, chat, ask, chat, ...) so machine load hits both alike. ``Agent.ask`` is
what ``sqlr1 ask`` calls; the chat is the real Textual app run headless (``run_test``), driven by
key presses. Greedy (n=1), one turn, a fresh conversation per question: identical work on both sides.

    python benchmarks/chat_latency_bench.py                      # bundled SmolLM2, 3 rounds
    python benchmarks/chat_latency_bench.py --model scripted     # fixed-rate stand-in: UI cost only
    python benchmarks/chat_latency_bench.py --model default --latency-set
        # the default model with its default settings (candidates, attempts) on the 20 simple
        # questions of ask_latency_bench.py, one round each: the chat against issue 15's latency goal

First visible token: the first model text the user can see (streamed reasoning), i.e. the first
``generate_sql`` progress message carrying text; for the chat, the moment the answer view has it.
Goal (issue 4): the chat adds < 5 % to either figure.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from sqlr1.agent import Agent, AgentSettings, embedded_server  # noqa: E402
from sqlr1.agent.events import AgentEvent, GenerationProgress  # noqa: E402
from sqlr1.mcp_server.core.config import AppConfig, DatabaseConfig  # noqa: E402
from sqlr1.tui.app import ChatApp  # noqa: E402
from sqlr1.tui.history import InputHistory  # noqa: E402

SETTINGS = AgentSettings(max_turns=1)


async def run_direct(
    server: object, question: str, settings: AgentSettings = SETTINGS
) -> tuple[float, float]:
    async with Agent.connect(server, settings=settings) as agent:  # type: ignore[arg-type]
        first: list[float] = []

        def on_event(event: AgentEvent) -> None:
            if not first and isinstance(event, GenerationProgress) and event.text:
                first.append(time.perf_counter())

        t0 = time.perf_counter()
        await agent.ask(question, on_event=on_event)
        total = time.perf_counter() - t0
    return (first[0] - t0 if first else float("nan")), total


async def run_chat(server: object, question: str, settings: AgentSettings = SETTINGS) -> tuple[float, float]:
    app = ChatApp(lambda: Agent.connect(server, settings=settings), history=InputHistory(None))  # type: ignore[arg-type]
    async with app.run_test(size=(100, 30)) as pilot:
        await app.wait_until_ready()
        await pilot.press(*question)
        t0 = time.perf_counter()
        await pilot.press("enter")
        while not app.answers:  # a cheap attribute check: polling must not load the event loop
            await anyio.sleep(0.005)
        total = time.perf_counter() - t0
        first = app.first_visible_at
    return ((first - t0) if first else float("nan")), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="bundled", choices=["bundled", "default", "scripted"])
    parser.add_argument(
        "--latency-set",
        action="store_true",
        help="the 20 questions of latency_questions.json, one round each",
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--question", default="How many albums does each artist have?")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="chat-bench-"))
    db = tmp / "chinook.sqlite"
    shutil.copyfile(REPO / "examples" / "chinook.sqlite", db)
    config = AppConfig(databases=[DatabaseConfig(name="chinook", target=str(db))])
    settings = SETTINGS
    if args.model == "default":  # as a user gets it: the default model, its candidates and attempts
        from sqlr1.mcp_server.cli.main import default_model

        config.model.model = default_model()
        settings = AgentSettings()
    else:
        config.generation.num_candidates = 1
        config.model.max_new_tokens = args.max_new_tokens
    if args.model == "scripted":
        from agent_scripted import TurnScriptedBackend, sql_answer

        think = " ".join(["step"] * args.max_new_tokens)
        backend: object = TurnScriptedBackend(
            [sql_answer("SELECT ArtistId, count(*) FROM Album GROUP BY ArtistId", think)], delay_s=0.02
        )
    else:
        from sqlr1.mcp_server.backends.factory import load_backend

        backend = load_backend(config.model)
    server = embedded_server(config, backend=backend)

    questions = [args.question] * args.rounds
    if args.latency_set:
        from ask_latency_bench import questions as latency_questions  # this script's folder

        questions = [item["question"] for item in latency_questions()]

    async def bench() -> dict[str, list[tuple[float, float]]]:
        out: dict[str, list[tuple[float, float]]] = {"ask": [], "chat": []}
        await run_direct(server, args.question, settings)  # warm-up: schema cache, prompt prefix cache
        for question in questions:
            out["ask"].append(await run_direct(server, question, settings))
            out["chat"].append(await run_chat(server, question, settings))
        return out

    results = anyio.run(bench)
    med = {
        k: (statistics.median(v[0] for v in rs), statistics.median(v[1] for v in rs))
        for k, rs in results.items()
    }
    if args.model == "default":
        print(f"model: {getattr(backend, 'model_id', '?')}, its default settings (candidates, attempts)")
    else:
        print(
            f"model: {args.model} ({getattr(backend, 'model_id', '?')}), max_new_tokens={args.max_new_tokens}, n=1, 1 turn"
        )
    asked = "the 20 questions of latency_questions.json" if args.latency_set else repr(args.question)
    print(f"questions: {asked}; {len(questions)} rounds (alternating), medians in seconds")
    print("| path | first visible token | total |")
    print("|---|---:|---:|")
    for k in ("ask", "chat"):
        print(
            f"| {'Agent.ask (sqlr1 ask)' if k == 'ask' else 'chat (Textual, headless)'} | {med[k][0]:.3f} | {med[k][1]:.3f} |"
        )
    r_first = med["chat"][0] / med["ask"][0]
    r_total = med["chat"][1] / med["ask"][1]
    print(f"chat / ask: first visible token {r_first:.3f}, total {r_total:.3f}  (goal < 1.05)")
    if args.latency_set:
        print("goal (issue 15): p50 to the answer <= 10 s, first streamed token <= 2 s; the chat the same")
    print("raw:", {k: [(round(a, 3), round(b, 3)) for a, b in v] for k, v in results.items()})


if __name__ == "__main__":
    main()
