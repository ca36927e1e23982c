"""The one ``sqlr1`` command: global flags, the core subcommands, and discovery of the others.

Owns ``serve`` (stdio or streamable HTTP), ``dbs``, ``schema``, ``sql`` and ``models``, and how ``--db``/``--config``/
``--model``/``--device``/``--dtype`` become an :class:`AppConfig`. Subcommands from upper layers
(``chat``, ``ask``, ``eval``, ``train``) arrive through the ``sqlr1.commands`` entry-point group: each
entry point is a callable ``register(subparsers)`` that adds a parser and sets ``handler=fn(args) -> int``
on it. This module never imports ``agent``, ``tui`` or ``training``.

Exit codes: 0 success, 1 a query was refused or failed, 2 usage/configuration errors (bad flags, a
missing database file, an unknown database name or config key).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import socket
import sys
import warnings
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlr1.mcp_server import __version__
from sqlr1.mcp_server.core.config import (
    DEVICE_PATTERN,
    MODEL_DTYPES,
    SERVE_TIME_BUDGET_S,
    AppConfig,
    DatabaseConfig,
    load_config,
)
from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "ENTRY_POINT_GROUP",
    "build_parser",
    "default_example_db",
    "main",
    "open_registry",
    "parse_db_flag",
    "resolve_config",
]

ENTRY_POINT_GROUP = "sqlr1.commands"
EXAMPLE_DB_ENV = "SQLR1_EXAMPLE_DB"
DEFAULT_MODEL_ENV = "SQLR1_DEFAULT_MODEL"
FALLBACK_MODEL = "smollm2-135m"
TOKEN_ENV = "SQLR1_TOKEN"
_LOGGED_DATABASES = 20

Handler = Callable[[argparse.Namespace], int]
log = logging.getLogger("sqlr1")


BUNDLED_NAME = "chinook"
"""The name the bundled example database is served under when no database is given."""


class UsageError(Exception):
    """A problem with how sqlr1 was invoked (exit code 2)."""


# --------------------------------------------------------------------------- configuration


def default_example_db() -> Path:
    """The bundled Chinook database.

    Looked up, in order: ``$SQLR1_EXAMPLE_DB``; the shipped ``examples/chinook.sqlite``
    (:func:`mcp_server.core.locations.shipped_path`: in the installed wheel or the source checkout);
    ``examples/chinook.sqlite`` under the current directory.
    """
    from sqlr1.mcp_server.core.locations import EXAMPLE_DB, shipped_candidates

    candidates: list[Path] = []
    if env := os.environ.get(EXAMPLE_DB_ENV):
        candidates.append(Path(env))
    candidates.extend(shipped_candidates(EXAMPLE_DB))
    candidates.append(Path.cwd() / EXAMPLE_DB)
    for c in candidates:
        if c.is_file():
            return c
    raise QueryFailed.of(
        "config",
        "no database given (--db PATH_OR_URL or [[databases]] in --config) and the bundled example "
        f"was not found at {', '.join(str(c) for c in candidates)}",
    )


def default_model() -> str | None:
    """The model ``chat``, ``ask``, ``serve``, ``generate`` and ``eval`` use when none is configured.

    ``$SQLR1_DEFAULT_MODEL`` if set (``bundled`` names the plain SmolLM2), else the registry's
    default (``model_registry.DEFAULT_MODEL``) when installed, else the shipped SmolLM2 adapter
    (``smollm2-135m``) with a warning saying how to install the default.
    """
    from sqlr1.mcp_server.backends.model_registry import DEFAULT_MODEL, is_installed, lookup

    if env := os.environ.get(DEFAULT_MODEL_ENV):
        return None if env == "bundled" else env
    named = lookup(DEFAULT_MODEL)
    if named is not None and is_installed(named):
        return DEFAULT_MODEL
    log.warning(
        "the default model %s is not installed (sqlr1 models install %s); using smollm2-135m, which "
        "is much weaker",
        DEFAULT_MODEL,
        DEFAULT_MODEL,
    )
    return FALLBACK_MODEL


def parse_db_flag(value: str) -> DatabaseConfig:
    """``--db`` value: ``TARGET`` or ``NAME=TARGET``, read as the registry reads it
    (:func:`mcp_server.db.registry.split_named_target`)."""
    from sqlr1.mcp_server.db.registry import split_named_target

    name, target = split_named_target(value)
    if name is not None and not target:
        raise UsageError(f"--db {value!r}: empty target after '{name}='")
    return DatabaseConfig(name=name, target=target)


def resolve_config(args: argparse.Namespace) -> AppConfig:
    """The effective configuration: ``--config`` file, then ``--db``/``--model``/``--device``/``--dtype``/
    ``--prompt`` flags on top.

    With no database anywhere, the bundled Chinook example is used.
    """
    config = load_config(getattr(args, "config", None))
    for value in getattr(args, "db", None) or []:
        config.databases.append(parse_db_flag(value))
    if not config.databases:
        config.databases.append(DatabaseConfig(name=BUNDLED_NAME, target=str(default_example_db())))
    model = getattr(args, "model", None)
    if model:
        config.model.model = model
    elif config.model.model is None and config.model.backend in ("auto", "llamacpp", "transformers"):
        config.model.model = default_model()
    if device := getattr(args, "device", None):
        config.model.device = device
    if dtype := getattr(args, "dtype", None):
        config.model.dtype = dtype
    if prompt := getattr(args, "prompt", None):
        config.generation.prompt = prompt
    return config


def _device_flag(value: str) -> str:
    """``--device`` syntax (whether this machine has it is checked when the model loads)."""
    text = value.strip().lower()
    if not re.match(DEVICE_PATTERN, text):
        raise argparse.ArgumentTypeError(f"{value!r} is not one of auto, cpu, mps, cuda, cuda:N")
    return text


def _budget_flag(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
    if not 0 <= seconds <= 86_400:
        raise argparse.ArgumentTypeError(f"expected 0 (no budget) to 86400 seconds, got {value}")
    return seconds


def open_registry(config: AppConfig) -> Any:
    """The registry of ``config``'s databases (raises ``QueryFailed`` naming a bad path or URL)."""
    from sqlr1.mcp_server.db.registry import Registry

    return Registry.from_config(config)


# --------------------------------------------------------------------------- output helpers


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def choose_database(config: AppConfig, value: str | None) -> str | None:
    """A subcommand's ``--db NAME_OR_TARGET`` (``generate``, ``ask``, ``chat``), read one way for all.

    A configured name is that database. Anything else is a target (``TARGET`` or ``NAME=TARGET``) added
    to ``config``; it replaces the bundled example when that was the only database (the example is
    only there because nothing else was given). Returns the database's name, or ``None`` when the
    registry names it (then :func:`pick_database` takes the only database).
    """
    if not value:
        return None
    if value in {d.name for d in config.databases}:
        return value
    target = parse_db_flag(value)
    if _only_the_bundled_example(config):
        config.databases.clear()
    config.databases.append(target)
    return target.name


def _only_the_bundled_example(config: AppConfig) -> bool:
    if len(config.databases) != 1 or config.databases[0].name != BUNDLED_NAME:
        return False
    try:
        return config.databases[0].target == str(default_example_db())
    except QueryFailed:
        return False


def pick_database(registry: Any, name: str | None) -> str:
    """``name`` (checked), else the only database; several and none named is a usage error listing them."""
    if name:
        registry.get(name)  # raises not_found naming the database
        return name
    names: list[str] = list(registry.names())
    if len(names) == 1:
        return names[0]
    raise UsageError(f"several databases are configured; name one of: {', '.join(names)}")


# --------------------------------------------------------------------------- subcommands


def cmd_dbs(args: argparse.Namespace) -> int:
    from sqlr1.mcp_server.protocol.server import describe_databases

    registry = open_registry(resolve_config(args))
    rows = describe_databases(registry)
    warnings = registry.privilege_warnings()
    if args.json:
        _print_json([{**row, "warnings": warnings.get(row["name"], [])} for row in rows])
        return 0
    from rich.table import Table

    table = Table("name", "kind", "target", title="databases")
    for row in rows:
        table.add_row(row["name"], row["kind"], row["target"])
    _console().print(table)
    for name, found in warnings.items():
        for warning in found:
            _log(f"sqlr1: warning: database {name}: {warning}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from sqlr1.mcp_server.catalog.schema import SchemaInspector, render_ddl

    registry = open_registry(resolve_config(args))
    name = pick_database(registry, args.name)
    schema = SchemaInspector(registry).describe(name, args.tables or None)
    if args.json:
        _print_json(schema.model_dump(mode="json"))
        return 0
    if args.ddl:
        sys.stdout.write(render_ddl(schema) + "\n")
        return 0
    from rich.table import Table

    console = _console()
    for tbl in schema.tables:
        table = Table("column", "type", "key", "examples", title=f"{name}.{tbl.name}", title_justify="left")
        pk = set(getattr(tbl, "primary_key", []) or [])
        fks = {
            c: f"→ {fk.ref_table}.{rc}"
            for fk in tbl.foreign_keys
            for c, rc in zip(fk.columns, fk.ref_columns, strict=False)
        }
        for col in tbl.columns:
            key = " ".join(k for k in ("PK" if col.name in pk else "", fks.get(col.name, "")) if k)
            examples = ", ".join(str(v) for v in (getattr(col, "examples", None) or [])[:3])
            table.add_row(col.name, col.type or "", key, examples)
        console.print(table)
    return 0


def cmd_sql(args: argparse.Namespace) -> int:
    from sqlr1.mcp_server.db.executor import Executor

    config = resolve_config(args)
    registry = open_registry(config)
    registry.get(args.name)
    cap = config.guard.max_rows if args.max_rows is None else min(args.max_rows, config.guard.max_rows)
    result = Executor(registry, config.guard).run(args.name, args.sql, max_rows=cap)
    if args.json:
        _print_json(result.model_dump(mode="json"))
        return 0
    from rich.table import Table

    table = Table(*[c.name for c in result.columns])
    for row in result.rows:
        table.add_row(*["NULL" if v is None else str(v) for v in row])
    console = _console()
    console.print(table)
    more = " (truncated: more rows exist)" if result.truncated else ""
    console.print(f"{result.row_count} row(s) in {result.elapsed_ms:.1f} ms{more}", style="dim")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """``sqlr1 models [install NAME]``: the named models, which is the default, which are installed."""
    from sqlr1.mcp_server.backends import model_registry as registry

    if args.models_command == "install":
        named = registry.lookup(args.name)
        if named is None:
            raise UsageError(f"unknown model {args.name!r}; known: {', '.join(registry.MODELS)}")
        path = registry.install(named)
        _console().print(f"{named.name}: installed" + (f" ({path})" if path else ""))
        return 0
    rows: list[dict[str, Any]] = [
        {
            "name": m.name,
            "default": m.name == registry.DEFAULT_MODEL,
            "installed": registry.is_installed(m),
            "title": m.title,
            "summary": m.summary,
        }
        for m in registry.MODELS.values()
    ]
    if args.json:
        _print_json(rows)
        return 0
    from rich.table import Table

    table = Table("name", "installed", "model", "notes", title="models (sqlr1 --model NAME …)")
    for row in rows:
        name = f"{row['name']} (default)" if row["default"] else str(row["name"])
        table.add_row(name, "yes" if row["installed"] else "no", str(row["title"]), str(row["summary"]))
    console = _console()
    console.print(table)
    console.print("install one: sqlr1 models install NAME", style="dim")
    return 0


def quiet_stderr() -> None:
    """Keep a server's stderr to its own log lines: no progress bars (Hugging Face, tqdm) and no
    FutureWarning/DeprecationWarning from the libraries a model loads; set before they are imported."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)


def serve_config(args: argparse.Namespace) -> AppConfig:
    """The configuration `sqlr1 serve` runs with: the global flags, then serve's own."""
    if args.stateful and not args.http:
        raise UsageError("--stateful applies to --http only (stdio is one session by nature)")
    config = resolve_config(args)
    if args.host is not None:
        config.server.host = args.host
    if args.port is not None:
        config.server.port = args.port
    token = args.token or os.environ.get(TOKEN_ENV) or config.server.token
    config.server.token = token or None
    config.server.allowed_hosts += args.allow_host or []
    if args.generate_budget_s is not None:
        config.generation.time_budget_s = args.generate_budget_s
    elif config.generation.time_budget_s is None:
        config.generation.time_budget_s = SERVE_TIME_BUDGET_S  # MCP clients give up after about 60 s
    return config


def cmd_serve(args: argparse.Namespace) -> int:
    quiet_stderr()
    from sqlr1.mcp_server.protocol.server import build_server, describe_databases, describe_guard

    config = serve_config(args)
    if args.http:
        from sqlr1.mcp_server.protocol.http_app import check_bind

        check_bind(config.server)  # refuse before anything is opened
    registry = open_registry(config)
    from sqlr1.mcp_server.protocol.generation_tools import generation_plugin

    # generate_sql/search_values; a llama.cpp model loads at start in the background with the first
    # database's schema prefix (others: on the first generate_sql call).
    first = next(iter(registry.names()), None)
    server = build_server(
        config, registry=registry, plugins=[generation_plugin(warm=[first] if first else [])]
    )

    # stdout carries the stdio protocol: everything human goes to stderr, one unwrapped line each.
    _log(f"sqlr1 {__version__}: {describe_guard(config.guard)}")
    rows = describe_databases(registry)
    for row in rows[:_LOGGED_DATABASES]:
        _log(f"sqlr1: database {row['name']} ({row['kind']}): {row['target']}")
    if len(rows) > _LOGGED_DATABASES:
        _log(f"sqlr1: ... and {len(rows) - _LOGGED_DATABASES} more databases (sqlr1 dbs lists them all)")
    for name, found in registry.privilege_warnings().items():
        for warning in found:
            _log(f"sqlr1: warning: database {name}: {warning}")
    if not args.http:
        import anyio

        from sqlr1.mcp_server.protocol.stdio_app import run_stdio

        _log("sqlr1: serving MCP over stdio")
        anyio.run(run_stdio, server)
        return 0
    return _serve_http(server, config, stateful=args.stateful)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _serve_http(server: Any, config: AppConfig, *, stateful: bool = False) -> int:
    import anyio
    import uvicorn

    from sqlr1.mcp_server.protocol.http_app import MCP_PATH, build_http_app, host_policy

    app = build_http_app(server, config.server, stateful=stateful)
    host = config.server.host
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), config.server.port))
    except OSError as exc:
        sock.close()
        raise QueryFailed.of("config", f"cannot bind {host}:{config.server.port}: {exc}") from exc
    sock.listen(2048)  # connections queue from here on, so the URL printed below is usable at once
    port = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if family == socket.AF_INET6 else host
    auth = "bearer token required" if config.server.token else "no token (loopback only)"
    mode = (
        "stateful: MCP sessions kept in this process"
        if stateful
        else "stateless: any replica serves any request"
    )
    _log(f"sqlr1: serving MCP over streamable HTTP at http://{shown}:{port}{MCP_PATH} ({auth}; {mode})")
    allowed = host_policy(config.server).describe().replace("<port>", str(port))
    _log(f"sqlr1: DNS-rebinding protection on; accepted Host headers: {allowed} (add more with --allow-host)")
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    anyio.run(uv.serve, [sock])
    return 0


# --------------------------------------------------------------------------- parser


def build_parser(*, plugins: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sqlr1",
        description="Guarded read-only SQL over MCP, and an NL2SQL assistant built on SQL-R1.",
    )
    parser.add_argument("--version", action="version", version=f"sqlr1 {__version__}")
    parser.add_argument(
        "--db",
        action="append",
        metavar="[NAME=]PATH_OR_URL",
        help="a SQLite file, a Spider/BIRD folder of <db_id>/<db_id>.sqlite, or a SQLAlchemy URL (repeatable)",
    )
    parser.add_argument("--config", metavar="FILE", help="TOML configuration (see README)")
    parser.add_argument(
        "--model",
        metavar="NAME_OR_PATH",
        help="model for generation: a name from `sqlr1 models` (default: the registry's default), a GGUF "
        "file, a checkpoint folder or a Hugging Face id",
    )
    parser.add_argument(
        "--device",
        type=_device_flag,
        metavar="DEVICE",
        help="where the transformers backend runs: auto (default: cuda, else mps, else cpu), cpu, mps, "
        "cuda, cuda:N",
    )
    parser.add_argument(
        "--dtype",
        choices=MODEL_DTYPES,
        help="transformers backend precision (default auto: bfloat16 on a GPU that has it, float32 on CPU)",
    )
    parser.add_argument(
        "--prompt",
        metavar="VARIANT",
        help="prompt variant for generation: inference, training, sqlr1_inference (SQL-R1's, exactly), "
        "sqlr1_rl (default: the checkpoint manifest's, else inference)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    p.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    p.add_argument(
        "--stateful",
        action="store_true",
        help="HTTP: keep MCP sessions in this process (adds the GET notification stream; one replica "
        "only). Default: stateless, so replicas behind a load balancer serve the same clients",
    )
    p.add_argument("--host", help="HTTP bind address (default 127.0.0.1; off loopback a token is required)")
    p.add_argument("--port", type=int, help="HTTP port (default 8765; 0 picks a free one)")
    p.add_argument("--token", help=f"bearer token clients must send (or ${TOKEN_ENV})")
    p.add_argument(
        "--allow-host", action="append", metavar="HOST", help="extra accepted Host header (repeatable)"
    )
    p.add_argument(
        "--generate-budget-s",
        type=_budget_flag,
        metavar="SECONDS",
        help="generate_sql's default time budget (config generation.time_budget_s, default 40 under serve; 0: none): "
        "when it runs out, the candidates that are done are voted on",
    )
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("dbs", help="list the configured databases")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_dbs)

    p = sub.add_parser("schema", help="show a database's schema")
    p.add_argument("name", nargs="?", help="database name (optional when only one is configured)")
    p.add_argument("--tables", nargs="+", metavar="TABLE", help="only these tables")
    p.add_argument("--ddl", action="store_true", help="print the CREATE TABLE prompt form")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_schema)

    p = sub.add_parser("sql", help="run one read-only statement through the guard")
    p.add_argument("name", help="database name")
    p.add_argument("sql", help="the statement")
    p.add_argument("--max-rows", type=int, metavar="N", help="row cap (never above the configured one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=cmd_sql)

    p = sub.add_parser("models", help="list the named models (sqlr1 models install NAME adds one)")
    p.add_argument("--json", action="store_true", help="print JSON")
    models_sub = p.add_subparsers(dest="models_command", metavar="ACTION")
    install = models_sub.add_parser("install", help="install a named model's part packages and assemble it")
    install.add_argument("name", help="a name from `sqlr1 models`")
    p.set_defaults(handler=cmd_models)

    if plugins:
        _register_plugins(sub)
    return parser


def _register_plugins(sub: Any) -> None:
    """Let installed upper layers add subcommands; a broken plugin must not take the core CLI down."""
    for ep in sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
            register(sub)
        except Exception as exc:  # report and keep the core subcommands usable
            print(
                f"sqlr1: warning: subcommand plugin {ep.name!r} ({ep.value}) failed: {exc}", file=sys.stderr
            )


CORE_COMMANDS = frozenset({"serve", "dbs", "schema", "sql", "models"})
_GLOBAL_WITH_VALUE = frozenset({"--db", "--config", "--model", "--device", "--dtype"})


def _needs_plugins(argv: Sequence[str]) -> bool:
    """False when the subcommand is a core one: then upper layers are not even imported (fast start)."""
    tokens = iter(argv)
    for tok in tokens:
        if tok in _GLOBAL_WITH_VALUE:
            next(tokens, None)
        elif not tok.startswith("-"):
            return tok not in CORE_COMMANDS
    return True  # no subcommand: help lists them all


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(plugins=_needs_plugins(argv))
    args = parser.parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(name)s: %(levelname)s: %(message)s"
    )
    try:
        return handler(args)
    except UsageError as exc:
        print(f"sqlr1: error: {exc}", file=sys.stderr)
        return 2
    except QueryFailed as exc:
        print(f"sqlr1: error: {exc.error}", file=sys.stderr)
        return 2 if exc.error.kind in ("config", "not_found") else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
