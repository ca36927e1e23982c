"""Configuration: one pydantic model per concern, loaded from TOML and CLI flags.

Unknown keys are errors (``extra="forbid"``), never silently ignored: a typo in a
guard setting must stop the server with a message naming the key.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "DEFAULT_MAX_SQLITE_HEAP_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "DEVICE_PATTERN",
    "MODEL_DTYPES",
    "AppConfig",
    "DatabaseConfig",
    "GenerationConfig",
    "GuardSettings",
    "ModelConfig",
    "ServerConfig",
    "load_config",
]


DEVICE_PATTERN = r"^(auto|cpu|mps|cuda(:[0-9]+)?)$"
"""Accepted ``model.device`` values (checked against the machine by ``backends/device.py``)."""
ModelDtype = Literal["auto", "float32", "bfloat16", "float16"]
MODEL_DTYPES: tuple[str, ...] = get_args(ModelDtype)


DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024
"""Default of ``guard.max_value_bytes`` (also the engines' own default when no executor sets it)."""
DEFAULT_MAX_SQLITE_HEAP_BYTES = 256 * 1024 * 1024
"""Default of ``guard.max_sqlite_heap_bytes`` (also the SQLite engine's own default when no executor sets
it). Measured: the 132 Spider databases, the largest table of each scanned 16 at a time, hold 93 MiB of
SQLite's heap (8 pooled connections each), 20 MiB when scanned one at a time."""


SERVE_TIME_BUDGET_S = 40.0
"""generate_sql's default time budget under `sqlr1 serve` (MCP clients give up after about 60 s)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=False)


class GuardSettings(_Strict):
    """Limits every statement runs under. All defaults are the safe ones."""

    read_only: Literal[True] = Field(
        default=True, description="Writes never happen through sqlr1; cannot be turned off."
    )
    timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Per-statement timeout enforced by the engine (BIRD uses 30 s).",
    )
    max_rows: int = Field(default=1000, gt=0, le=1_000_000, description="Row cap for returned results.")
    max_chars: int = Field(
        default=200_000, gt=0, le=50_000_000, description="Character cap over all returned cell text."
    )
    max_value_bytes: int = Field(
        default=DEFAULT_MAX_VALUE_BYTES,
        ge=1024,
        le=1_000_000_000,  # SQLite's own ceiling (SQLITE_MAX_LENGTH)
        description="Longest text/blob a result may hold: SQLite refuses to build or read a longer value, "
        "PostgreSQL and MariaDB/MySQL (whose drivers receive a row whole) a longer row; the statement "
        "fails with an execution error instead.",
    )
    max_sqlite_heap_bytes: int = Field(
        default=DEFAULT_MAX_SQLITE_HEAP_BYTES,
        ge=16 * 1024 * 1024,
        le=1 << 40,
        description="Most memory SQLite may allocate in the whole server process (its hard heap limit: "
        "open connections' schemas and page caches plus the statements running, e.g. a row of many "
        "values each under max_value_bytes); a statement needing more fails with an execution error. "
        "Process-wide and SQLite can only lower it: when several executors in one process set it, the "
        "lowest value applies. At least max_value_bytes.",
    )
    extra_functions: list[str] = Field(
        default_factory=list, description="Functions to allow on top of the dialect allowlist."
    )

    @model_validator(mode="after")
    def _heap_holds_a_value(self) -> GuardSettings:
        if self.max_sqlite_heap_bytes < self.max_value_bytes:
            raise ValueError(
                f"max_sqlite_heap_bytes ({self.max_sqlite_heap_bytes}) is less than max_value_bytes "
                f"({self.max_value_bytes}): SQLite could not hold one value that long; raise "
                "max_sqlite_heap_bytes or lower max_value_bytes"
            )
        return self


class DatabaseConfig(_Strict):
    """One ``[[databases]]`` entry. ``target`` is a SQLite file, a Spider/BIRD folder or a SQLAlchemy URL."""

    name: str | None = Field(default=None, description="Name; defaults to the file stem / db_id.")
    target: str
    description_dir: str | None = Field(default=None, description="BIRD-style database_description folder.")


class ServerConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    token: str | None = Field(default=None, description="Bearer token; required when binding off loopback.")
    allowed_hosts: list[str] = Field(
        default_factory=list, description="Extra Host headers accepted (DNS-rebinding protection)."
    )


class ModelConfig(_Strict):
    backend: Literal["auto", "llamacpp", "transformers", "vllm", "openai"] = Field(
        default="auto",
        description="auto: llama.cpp for a GGUF model on a CPU-only machine (when installed), else "
        "transformers; or llamacpp, transformers, vllm, openai.",
    )
    model: str | None = Field(
        default=None,
        description="A registry name (sqlr1 models), path, Hugging Face id, GGUF file or checkpoint; the "
        "commands default to the registry's default model, the library to the bundled SmolLM2.",
    )
    base_url: str | None = None
    api_key: str | None = None
    max_new_tokens: int | None = Field(
        default=None, gt=0, description="Tokens per candidate; default: 384 on a CPU, 1024 on a GPU."
    )
    threads: int | None = Field(
        default=None, ge=1, le=1024, description="llamacpp: fixed thread count; default: the free cores."
    )
    device: str = Field(
        default="auto",
        pattern=DEVICE_PATTERN,
        description="transformers backend: auto (cuda, else mps, else cpu), cpu, mps, cuda or cuda:N.",
    )
    dtype: ModelDtype = Field(
        default="auto",
        description="transformers backend: auto = bfloat16 on a GPU that supports it (else float16), "
        "float32 on CPU.",
    )


class GenerationConfig(_Strict):
    num_candidates: int | None = Field(
        default=None, ge=1, le=64, description="Self-consistency samples; default: 1 on a CPU, 8 on a GPU."
    )
    temperature: float = Field(default=0.8, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    value_retrieval: bool = True
    schema_linking: bool | None = Field(
        default=None,
        description="Prompt only the tables the question needs when the schema is over link_above_chars "
        "(default: on for the instruct prompt; off for SQL-R1's prompts, which show the whole schema as "
        "SQL-R1 and our training render it).",
    )
    link_above_chars: int = Field(
        default=6000,
        ge=0,
        description="Schemas whose prompt DDL is longer are linked (smaller ones: whole, prefix cached).",
    )
    reasoning: bool | None = Field(
        default=None,
        description="Instruct models: a short reasoning before the SQL (default: on a GPU; on a CPU the "
        "SQL only). Models trained on SQL-R1's format always reason.",
    )
    grammar: bool = Field(
        default=True,
        description="Decode the SQL block under a grammar of the database's catalog (llama.cpp backend).",
    )
    seed: int | None = None
    time_budget_s: float | None = Field(
        default=None,
        ge=0,
        le=86_400,
        description="generate_sql's default time budget in seconds (0: none): when it runs out, the candidates "
        "that are done are voted on and the result says budget_exhausted. Unset: `sqlr1 serve` uses "
        f"{SERVE_TIME_BUDGET_S:g} s (a call, model load and queries included, under the 60 s most MCP clients "
        "wait); the chat, `ask`, `generate` and `eval` none (they show progress and can be cancelled, and an "
        "evaluation must not score a slow first prefill as a failure).",
    )
    prompt: str | None = Field(
        default=None,
        description=(
            "Prompt variant (mcp_server.method.prompt.PROMPTS): inference, training, sqlr1_inference (SQL-R1's "
            "inference prompt, exactly), sqlr1_rl. Default: the checkpoint manifest's, else inference."
        ),
    )


class AppConfig(_Strict):
    guard: GuardSettings = Field(default_factory=GuardSettings)
    databases: list[DatabaseConfig] = Field(default_factory=list)
    server: ServerConfig = Field(default_factory=ServerConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    generation: GenerationConfig = Field(default_factory=GenerationConfig)


def load_config(path: str | Path | None) -> AppConfig:
    """Read a TOML config file; ``None`` gives the defaults.

    Raises :class:`QueryFailed` (kind ``config``) naming the bad key or the missing file.
    """
    if path is None:
        return AppConfig()
    p = Path(path)
    if not p.is_file():
        raise QueryFailed.of("config", f"config file not found: {p}")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise QueryFailed.of("config", f"{p}: invalid TOML: {exc}") from exc
    try:
        return AppConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(x) for x in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise QueryFailed.of("config", f"{p}: {problems}") from exc
