"""``sqlr1 generate``: one question answered directly by self-consistency generation (no agent loop).

Owns the single-shot command: reasoning (dimmed), the chosen SQL (highlighted), the result table,
and a one-line vote summary. ``sqlr1 ask`` is the agent's multi-turn loop over the same
``generate_sql``; this is the direct path, without review or retries. Registered through the
``sqlr1.commands`` entry point group.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from sqlr1.mcp_server.inference.generation import GenerationResult

__all__ = ["cmd_generate", "register", "render_result"]


def register(subparsers: Any) -> None:
    """Entry point: add the ``generate`` subcommand."""
    p = subparsers.add_parser(
        "generate",
        help="SQL for one question, single shot (SQL-R1 self-consistency, no agent loop)",
        description="Generate SQL for a question with the configured model, run it through the guard "
        "and print the reasoning, the SQL and the result.",
    )
    p.add_argument("question", help="the question, in natural language")
    p.add_argument(
        "--db",
        dest="gen_db",
        metavar="NAME_OR_TARGET",
        help="a configured database name, or a SQLite file / folder / URL (default: the only database)",
    )
    p.add_argument(
        "--n",
        type=int,
        metavar="N",
        help="candidates to sample (default 8; 1 on a CPU for a model that reasons first; 1 = greedy)",
    )
    p.add_argument("--evidence", help="external knowledge / hints, prepended to the question")
    p.add_argument(
        "--model",
        dest="gen_model",
        metavar="NAME_OR_PATH",
        help="model (default: the default of `sqlr1 models`)",
    )
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="generation length cap per candidate")
    p.add_argument("--no-values", action="store_true", help="no value retrieval in the prompt")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.set_defaults(handler=cmd_generate)


def cmd_generate(args: argparse.Namespace) -> int:
    from sqlr1.mcp_server.backends.factory import load_backend
    from sqlr1.mcp_server.catalog.schema import SchemaInspector
    from sqlr1.mcp_server.cli.main import choose_database, open_registry, pick_database, resolve_config
    from sqlr1.mcp_server.db.executor import Executor
    from sqlr1.mcp_server.inference.generation import Generator
    from sqlr1.mcp_server.method.values import ValueIndex

    config = resolve_config(args)
    if args.gen_model:
        config.model.model = args.gen_model
    if args.no_values:
        config.generation.value_retrieval = False
    if args.max_new_tokens:
        config.model.max_new_tokens = args.max_new_tokens
    chosen = choose_database(config, args.gen_db)
    registry = open_registry(config)
    name = pick_database(registry, chosen)

    from rich.console import Console

    err = Console(stderr=True)
    with err.status("loading model…"):
        backend = load_backend(config.model)
    executor = Executor(registry, config.guard)
    generator = Generator(
        registry,
        executor,
        SchemaInspector(registry),
        backend,
        config.generation,
        value_index=ValueIndex(registry, executor),
        max_new_tokens=config.model.max_new_tokens,
    )
    with err.status("generating…") as status:
        result = generator.generate_sql(
            name,
            args.question,
            evidence=args.evidence,
            num_candidates=args.n,
            on_progress=lambda p, t, m: status.update(f"{m} [{p:.0f}/{t:.0f}]"),
        )
    if args.json:
        sys.stdout.write(json.dumps(result.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n")
    else:
        render_result(result, Console(highlight=False))
    return 0 if result.status == "ok" else 1


def render_result(result: GenerationResult, console: Any) -> None:
    """Reasoning (dim), SQL (highlighted), the result preview as a table, and the vote summary."""
    from rich.syntax import Syntax
    from rich.table import Table

    if result.reasoning:
        console.print(result.reasoning.strip(), style="dim")
        console.print()
    if result.sql is None:
        console.print(f"[bold red]no answer[/]: {result.message}")
        for error in result.errors:
            console.print(f"  - {error}", style="red", markup=False)
        return
    console.print(Syntax(result.sql, "sql", word_wrap=True))
    console.print()
    preview = result.preview
    if preview is not None:
        table = Table(*[c.name for c in preview.columns])
        for row in preview.rows:
            table.add_row(*["NULL" if v is None else str(v) for v in row])
        console.print(table)
        more = f", first {len(preview.rows)} shown" if preview.truncated else ""
        console.print(f"{preview.row_count} row(s){more}", style="dim")
    console.print(result.message, style="dim", markup=False)
