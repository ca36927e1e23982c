"""The ``generate_sql`` and ``search_values`` MCP tools, added to the server as a plugin.

Owns the tool surface of the model half (arguments, annotations, progress notifications,
cancellation) and nothing else: generation is ``generation.Generator``, retrieval is
``values.ValueIndex``, the model is loaded once per process by ``backends.factory``.
Blocking model and database work runs in worker threads, never on the event loop. With ``warm``
databases, a background thread loads the model and computes their schema prefixes when the server
starts (backends that keep one: llama.cpp), so the first question does not wait for either. When the client
cancels a call (the SDK cancels the tool's task), the request's ``Cancellation`` stops the model and
interrupts, in the engine, the value-index or candidate query that is running; the tool waits
(bounded) for that before it gives the cancellation back to the SDK.

``generate_sql`` runs under a time budget (``time_budget_s``, default ``generation.time_budget_s``,
``sqlr1 serve --generate-budget-s``) so that it answers before clients give up (most wait 60 s):
sampling stops at the budget and the candidates that are done are voted on.

Task-augmented calls (the 2025-11-25 protocol's ``tasks/*``, ``execution.taskSupport``) are not offered:
the installed SDK (mcp 2.3) leaves them out on purpose (``mcp_types.methods``: "tasks/* deliberately
absent"), so ``MCPServer`` has no ``tasks`` server capability, no ``tasks/get``/``tasks/result``/
``tasks/cancel`` handlers and no ``execution`` argument on ``MCPServer.tool``; an extension could add
the methods but not the capability or the ``task`` field of ``tools/call``. The budget plus progress
notifications are what long calls get instead.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Annotated

import anyio
import anyio.from_thread
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel, Field

from sqlr1.mcp_server.backends.base import Backend
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.mcp_server.db.cancellation import Cancellation, run_in_thread
from sqlr1.mcp_server.inference.generation import GenerationResult, Generator
from sqlr1.mcp_server.method.prompt import PreviousTurn
from sqlr1.mcp_server.method.values import ValueHit, ValueIndex
from sqlr1.mcp_server.protocol.server import ServerDeps, read_only_annotations, tool_errors

__all__ = ["FeedbackTurn", "ValueSearch", "generation_plugin", "register_generation_tools"]

log = logging.getLogger(__name__)

BackendProvider = Callable[[], Backend]
MAX_BUDGET_S = 3600.0


class FeedbackTurn(BaseModel):
    """An earlier attempt and what happened, so the model can correct itself."""

    sql: str = Field(description="The SQL given earlier.")
    feedback: str = Field(
        description='What happened, e.g. "failed with: no such column: x" or "returned 0 rows".'
    )
    question: str | None = Field(
        default=None, description="The question it answered (default: this question)."
    )


class ValueSearch(BaseModel):
    database: str
    text: str
    hits: list[ValueHit] = Field(description="Stored values matching phrases of the text, best first.")


def generation_plugin(
    backend: Backend | BackendProvider | None = None, *, warm: Sequence[str] = ()
) -> Callable[[MCPServer, ServerDeps], None]:
    """A ``server.build_server`` plugin adding the tools; ``backend`` defaults to the configured model,
    loaded on the first ``generate_sql`` call (once per process), or at start in the background when
    ``warm`` names databases whose schema prefixes to compute then."""

    def plugin(server: MCPServer, deps: ServerDeps) -> None:
        register_generation_tools(server, deps, backend=backend, warm=warm)

    return plugin


def register_generation_tools(
    server: MCPServer,
    deps: ServerDeps,
    *,
    backend: Backend | BackendProvider | None = None,
    warm: Sequence[str] = (),
) -> None:
    """Add ``generate_sql`` and ``search_values`` to ``server`` (see :func:`generation_plugin`)."""
    values = ValueIndex(deps.registry, deps.executor)
    state: dict[str, Generator] = {}
    init_lock = threading.Lock()

    def generator() -> Generator:
        with init_lock:
            if "g" not in state:
                if backend is None:
                    from sqlr1.mcp_server.backends.factory import load_backend

                    model = load_backend(deps.config.model)
                elif callable(backend) and not hasattr(backend, "generate"):
                    model = backend()
                else:
                    model = backend  # type: ignore[assignment]
                state["g"] = Generator(
                    deps.registry,
                    deps.executor,
                    deps.inspector,
                    model,
                    deps.config.generation,
                    value_index=values,
                    max_new_tokens=deps.config.model.max_new_tokens,
                )
            return state["g"]

    if warm and _keeps_prefix(backend, deps):
        _start_warming(generator, list(warm))

    default_budget = deps.config.generation.time_budget_s or None
    default_budget_text = f"{default_budget:g} s" if default_budget else "none"

    @server.tool(
        name="generate_sql",
        annotations=read_only_annotations("Generate SQL (SQL-R1)", idempotent=False),
        description=(
            "Write SQL for a natural-language question with the server's model, SQL-R1 style: sample "
            "`num_candidates` answers (reasoning + SQL), run each through the execute_sql guard, and pick "
            "the SQL whose result most candidates agree on. Returns the chosen SQL, its reasoning, every "
            "candidate with its execution status and votes, and a preview of the result. Pass `feedback` "
            "(earlier SQL and what happened) to get a corrected query. Slow on CPU: progress is reported, "
            f"and the call returns within `time_budget_s` (default {default_budget_text}): then the "
            "candidates done so far are voted on and `budget_exhausted` is true."
        ),
    )
    async def generate_sql(
        database: Annotated[str, Field(description="A name from list_databases.")],
        question: Annotated[str, Field(description="The question, in natural language.", min_length=1)],
        ctx: Context,
        evidence: Annotated[
            str | None,
            Field(description="External knowledge / hints (BIRD evidence), prepended to the question."),
        ] = None,
        num_candidates: Annotated[
            int | None,
            Field(ge=1, le=64, description="Candidates to sample (default from config; 1 = greedy)."),
        ] = None,
        feedback: Annotated[
            list[FeedbackTurn] | None, Field(description="Earlier attempts with their outcome, oldest first.")
        ] = None,
        time_budget_s: Annotated[
            float | None,
            Field(
                gt=0,
                le=MAX_BUDGET_S,
                description="Seconds this call may take, model load and queries included (default: the "
                "server's). When they run out, the candidates that are done are voted on.",
            ),
        ] = None,
        join_missing: Annotated[
            bool,
            Field(
                description="When no candidate runs because it names a column of a table it does not join, "
                "join that table along the foreign keys and run it (the answer is then marked doubtful). "
                "Meant for a last attempt: before it, the error's hint lets the model fix the query itself."
            ),
        ] = False,
    ) -> GenerationResult:
        budget = time_budget_s if time_budget_s is not None else default_budget
        deadline = None if budget is None else time.monotonic() + budget
        turns = [
            PreviousTurn(question=t.question or question, sql=t.sql, feedback=t.feedback)
            for t in feedback or []
        ]
        cancel = Cancellation()

        def on_progress(progress: float, total: float, message: str) -> None:
            if cancel.cancelled:
                return
            try:
                anyio.from_thread.run(ctx.report_progress, progress, total, message)
            except (RuntimeError, anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
                # The request ended (cancelled or closed) while the worker was still running.
                log.debug("progress not delivered: %s", exc)

        def work() -> GenerationResult:
            return generator().generate_sql(
                database,
                question,
                evidence=evidence,
                num_candidates=num_candidates,
                previous_turns=turns,
                on_progress=on_progress,
                cancel=cancel,
                deadline=deadline,
                join_missing=join_missing,
            )

        with tool_errors():
            return await run_in_thread(work, cancel.cancel)

    @server.tool(
        name="search_values",
        annotations=read_only_annotations("Search stored values"),
        description=(
            "Find stored text values that phrases of `text` refer to (fuzzy, case-insensitive), with the "
            "table and column holding each: use them as exact WHERE literals. The index of a database is "
            "built on first use and rebuilt when the database changes."
        ),
    )
    async def search_values(
        database: Annotated[str, Field(description="A name from list_databases.")],
        text: Annotated[str, Field(description="A question or phrase mentioning values.", min_length=1)],
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many hits.")] = 10,
    ) -> ValueSearch:
        with tool_errors():
            cancel = Cancellation()
            hits = await run_in_thread(
                lambda: values.search(database, text, limit=limit, cancel=cancel), cancel.cancel
            )
        return ValueSearch(database=database, text=text, hits=hits)


def _keeps_prefix(backend: Backend | BackendProvider | None, deps: ServerDeps) -> bool:
    """Whether warming pays: only a backend with ``warm`` (llama.cpp) keeps a schema prefix; others
    would just load the model early (tests start many servers that never generate)."""
    if backend is None:
        from sqlr1.mcp_server.backends.factory import choose_runtime

        try:
            return choose_runtime(deps.config.model) == "llamacpp"
        except QueryFailed:
            return False  # the first generate_sql call reports it
    return hasattr(backend, "warm")


def _start_warming(generator: Callable[[], Generator], databases: list[str]) -> None:
    """Load the model and compute ``databases``' schema prefixes in a daemon thread; a failure is
    logged and left for the first ``generate_sql`` call to report; process exit stops it."""
    stopping = threading.Event()
    atexit.register(stopping.set)

    def run() -> None:
        try:
            gen = generator()
            for database in databases:
                if stopping.is_set():
                    return
                gen.warm(database, should_stop=stopping.is_set)
        except Exception as exc:  # reported again, to the user, by the first generate_sql call
            log.warning("warming the model up failed: %s", exc)

    threading.Thread(target=run, name="sqlr1-warm", daemon=True).start()
