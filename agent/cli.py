"""``sqlr1 ask``: one question through the agent loop (generate → execute → review → retry).

Owns the command-line face of :class:`agent.Agent` and how flags choose the server it talks to: the
embedded in-process server (default), ``--stdio`` (a ``sqlr1 serve`` subprocess) or ``--server URL``
(remote streamable HTTP with ``--token``). ``add_connection_args``/``agent_source`` are shared with
``sqlr1 chat``. Registered through the ``sqlr1.commands`` entry point group.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any

__all__ = [
    "add_connection_args",
    "agent_source",
    "cmd_ask",
    "model_description",
    "model_label",
    "register",
    "render_answer",
    "runtime_name",
]

TOKEN_ENV = "SQLR1_TOKEN"


def add_connection_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("server and model")
    g.add_argument(
        "--db",
        dest="agent_db",
        metavar="NAME_OR_TARGET",
        help="a configured database name, or a SQLite file / folder / URL (default: the first database)",
    )
    g.add_argument(
        "--server",
        metavar="URL",
        help="use a remote `sqlr1 serve --http` endpoint instead of the embedded one",
    )
    g.add_argument("--token", help=f"bearer token for --server (or ${TOKEN_ENV})")
    g.add_argument(
        "--stdio", action="store_true", help="run the server as a `sqlr1 serve` subprocess (stdio)"
    )
    g.add_argument(
        "--model",
        dest="agent_model",
        metavar="NAME_OR_PATH",
        help="model (default: the default of `sqlr1 models`)",
    )
    g.add_argument("--n", type=int, metavar="N", help="candidates per attempt (self-consistency; 1 = greedy)")
    g.add_argument("--max-turns", type=int, default=3, metavar="K", help="attempts per question (default 3)")
    g.add_argument("--max-new-tokens", type=int, metavar="N", help="generation length cap (embedded server)")
    g.add_argument(
        "--no-values", action="store_true", help="no value retrieval in the prompt (embedded server)"
    )


def _config_and_database(args: argparse.Namespace) -> tuple[Any, str | None]:
    from sqlr1.mcp_server.cli.main import choose_database, resolve_config

    model = getattr(args, "agent_model", None)
    if model:
        args.model = model
    config = resolve_config(args)
    if args.max_new_tokens:
        config.model.max_new_tokens = args.max_new_tokens
    if args.no_values:
        config.generation.value_retrieval = False
    return config, choose_database(config, args.agent_db)


def agent_source(
    args: argparse.Namespace,
) -> tuple[Callable[[], AbstractAsyncContextManager[Any]], str | None]:
    """A factory opening the connected agent the flags describe, and the database it should use."""
    from sqlr1.agent.loop import Agent, AgentSettings
    from sqlr1.agent.targets import embedded_server
    from sqlr1.agent.tools import HttpTarget, ServerTarget, StdioTarget

    settings = AgentSettings(max_turns=args.max_turns, num_candidates=args.n)
    database: str | None
    target: ServerTarget
    if args.server:
        target = HttpTarget(args.server, token=args.token or os.environ.get(TOKEN_ENV))
        database = args.agent_db
    elif args.stdio:
        argv: list[str] = []
        for value in getattr(args, "db", None) or []:
            argv += ["--db", value]
        if args.agent_db:
            argv += ["--db", args.agent_db]
        if getattr(args, "config", None):
            argv += ["--config", args.config]
        if args.agent_model or getattr(args, "model", None):
            argv += ["--model", args.agent_model or args.model]
        for flag in ("device", "dtype"):  # global flags of the server's model
            if value := getattr(args, flag, None):
                argv += [f"--{flag}", value]
        target = StdioTarget(args=(*argv, "serve"))
        database = None
    else:
        from sqlr1.mcp_server.cli.main import open_registry

        config, database = _config_and_database(args)
        registry = open_registry(config)
        first = database or next(iter(registry.names()), None)
        target = embedded_server(config, registry=registry, warm=[first] if first else [])
    return (lambda: Agent.connect(target, database=database, settings=settings)), database


RUNTIME_NAMES = {
    "llamacpp": "llama.cpp",
    "transformers": "transformers",
    "vllm": "vLLM",
    "openai": "OpenAI API",
}
STRONGER = "qwen2.5-coder-1.5b"


def runtime_name(backend: str | None) -> str:
    """How a person names a backend ("llamacpp" -> "llama.cpp"); "" when unknown."""
    return RUNTIME_NAMES.get(backend or "", backend or "")


def model_label(args: argparse.Namespace) -> str:
    """``name · runtime`` of the model the flags select (the status line of the chat)."""
    return model_description(args)[0]


def model_description(args: argparse.Namespace) -> tuple[str, str]:
    """(``name · runtime``, one sentence saying what runs and how to pick a stronger model)."""
    if args.server:
        return f"model of {args.server}", f"Model: the one {args.server} serves."
    from sqlr1.mcp_server.backends.factory import choose_runtime
    from sqlr1.mcp_server.cli.main import resolve_config
    from sqlr1.mcp_server.core.errors import QueryFailed

    model_args = argparse.Namespace(**vars(args))
    if getattr(args, "agent_model", None):
        model_args.model = args.agent_model
    config = resolve_config(model_args).model
    name = config.model or "bundled"
    try:
        runtime = RUNTIME_NAMES.get(choose_runtime(config), config.backend)
    except QueryFailed:
        runtime = "?"
    if name == STRONGER:
        hint = "Bigger models (e.g. a SQL-R1 or OmniSQL 7B) load with --model PATH, best on a GPU."
    else:
        hint = f"For harder questions: sqlr1 models install {STRONGER}, then sqlr1 chat --model {STRONGER}."
    return f"{name} · {runtime}", f"Model: [b]{name}[/b] on {runtime}. {hint}"


def register(subparsers: Any) -> None:
    """Entry point: ``sqlr1 ask`` (the agent's multi-turn ask)."""
    p = subparsers.add_parser(
        "ask",
        help="answer one question with SQL (agent loop: self-consistency + self-correction)",
        description="Generate SQL for a question, run it through the read-only guard, and correct it "
        "when it fails, returns nothing, or looks implausible; prints the reasoning, the SQL and the result.",
    )
    p.add_argument("question", help="the question, in natural language")
    p.add_argument("--evidence", help="external knowledge / hints, prepended to the question")
    add_connection_args(p)
    p.add_argument("--trace", metavar="FILE", help="save the full trace (prompts, candidates, votes) as JSON")
    p.add_argument("--json", action="store_true", help="print the answer (with its trace) as JSON")
    p.set_defaults(handler=cmd_ask)


def cmd_ask(args: argparse.Namespace) -> int:
    import anyio
    from rich.console import Console

    opener, _ = agent_source(args)
    err = Console(stderr=True, highlight=False)

    async def main() -> Any:
        with _progress(err) as on_event:
            async with opener() as agent:
                return await agent.ask(args.question, evidence=args.evidence, on_event=on_event)

    answer = anyio.run(main)
    if args.trace:
        answer.trace.save(args.trace)
    if args.json:
        sys.stdout.write(answer.model_dump_json(indent=2) + "\n")
    else:
        render_answer(answer, Console(highlight=False), model=model_label(args))
    return 0 if answer.status == "ok" else 1


PLAIN_EVERY_S = 15.0  # without a terminal: a "still working" line at most this often


@contextmanager
def _progress(err: Any) -> Iterator[Callable[[Any], None]]:
    """The ``on_event`` that tells a person on stderr what the agent does: a live status line on a
    terminal; plain lines otherwise (a pipe, a log, a CI job), one per change of phase, with the
    elapsed time and the model's speed, and a "still working" line every ``PLAIN_EVERY_S``."""
    import time

    from sqlr1.agent.events import AttemptFinished
    from sqlr1.agent.progress import ProgressNarrator

    narrator = ProgressNarrator()
    if err.is_terminal:
        with err.status(narrator.line()) as status:

            def live(event: Any) -> None:
                narrator.apply(event)
                status.update(narrator.line())
                if isinstance(event, AttemptFinished) and not event.accepted and event.attempt.feedback:
                    err.print(
                        f"[dim]attempt {event.attempt.turn}: {event.attempt.feedback}[/dim]", markup=True
                    )

            yield live
        return
    last = [time.monotonic()]

    def say(text: str) -> None:
        sys.stderr.write(f"sqlr1: {text}\n")
        sys.stderr.flush()
        last[0] = time.monotonic()

    say(narrator.line())

    def plain(event: Any) -> None:
        if narrator.apply(event) and narrator.phase != "done":
            say(narrator.line())
        elif time.monotonic() - last[0] >= PLAIN_EVERY_S:
            say(f"still {narrator.line()}")

    yield plain


def render_answer(answer: Any, console: Any, *, max_rows: int = 50, model: str | None = None) -> None:
    """Reasoning (dim), SQL (highlighted), the result as a table, attempts and timing."""
    from rich.markup import escape
    from rich.syntax import Syntax
    from rich.table import Table

    if answer.reasoning:
        console.print(answer.reasoning.strip(), style="dim", markup=False)
        console.print()
    if answer.sql:
        console.print(Syntax(answer.sql, "sql", word_wrap=True))
        console.print()
    result = answer.result
    if result is not None:
        table = Table(*[c.name for c in result.columns])
        for row in result.rows[:max_rows]:
            table.add_row(*[escape("NULL" if v is None else str(v)) for v in row])
        console.print(table)
        shown = f", first {max_rows} shown" if result.row_count > max_rows else ""
        more = " (truncated: more rows exist)" if result.truncated else ""
        console.print(f"{result.row_count} row(s){shown}{more}", style="dim")
    confidence = answer.confidence
    if answer.error is not None and not (confidence is not None and confidence.level == "refused"):
        console.print(f"[bold red]{answer.error.kind}[/]: {escape(answer.error.message)}")
    if confidence is not None:
        colour = {"ok": "green", "doubtful": "yellow", "refused": "yellow"}.get(confidence.level, "red")
        reasons = f": {escape('; '.join(confidence.reasons))}" if confidence.reasons else ""
        basis = (
            f" [dim]({escape(confidence.basis())})[/dim]" if confidence.level in ("ok", "doubtful") else ""
        )
        console.print(f"[bold {colour}]{confidence.level}[/]{reasons}{basis}", soft_wrap=True)
    elif answer.warning:
        console.print(f"[yellow]{escape(answer.warning)}[/]")
    turns = f"{answer.turns} attempt(s)"
    with_model = f" · {model}" if model else ""
    label = confidence.level if confidence is not None else answer.status
    console.print(f"{label} · {turns} · {answer.elapsed_ms / 1000:.1f} s{with_model}", style="dim")
