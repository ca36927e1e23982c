"""The sqlr1 chat: a Textual app over :class:`agent.Agent`.

Owns the screen layout, the key bindings' actions, and the wiring of user input to the agent
(questions, edited SQL, cancel, new conversation, database switch). It renders what the agent reports
and never talks to the MCP server, a database or a model except through the agent.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path, PurePath
from typing import ClassVar

import anyio
from rich.markup import escape
from textual import on, work
from textual.app import App, ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Footer

from sqlr1.agent.cli import runtime_name
from sqlr1.agent.events import AgentEvent, GenerationFinished, GenerationProgress
from sqlr1.agent.loop import Agent
from sqlr1.agent.progress import ProgressNarrator
from sqlr1.agent.trace import Answer
from sqlr1.mcp_server.core.errors import QueryFailed
from sqlr1.tui.bindings import APP_BINDINGS
from sqlr1.tui.history import InputHistory
from sqlr1.tui.messages import QuestionSubmitted
from sqlr1.tui.screens.help import HelpScreen
from sqlr1.tui.screens.sql_editor import SqlEditorScreen
from sqlr1.tui.widgets.answer_view import AnswerView
from sqlr1.tui.widgets.chat_log import ChatLog
from sqlr1.tui.widgets.prompt_input import PromptInput
from sqlr1.tui.widgets.result_table import write_csv
from sqlr1.tui.widgets.schema_sidebar import SchemaSidebar
from sqlr1.tui.widgets.sql_view import copy_notice
from sqlr1.tui.widgets.status_bar import StatusBar

__all__ = ["AgentSource", "ChatApp"]

AgentSource = Callable[[], AbstractAsyncContextManager[Agent]]
"""Opens a connected agent (``lambda: Agent.connect(target, ...)``); the app holds it while running."""

_WIDGETS = Path(__file__).parent / "widgets"


class ChatApp(App[None]):
    TITLE = "sqlr1 chat"
    CSS_PATH: ClassVar[list[str | PurePath]] = [
        _WIDGETS / "schema_sidebar.tcss",
        _WIDGETS / "chat_log.tcss",
        _WIDGETS / "answer_view.tcss",
        _WIDGETS / "sql_view.tcss",
        _WIDGETS / "result_table.tcss",
        _WIDGETS / "prompt_input.tcss",
        _WIDGETS / "status_bar.tcss",
        _WIDGETS / "spinner.tcss",
        "app.tcss",
    ]
    BINDINGS = APP_BINDINGS  # type: ignore[assignment]

    def __init__(
        self,
        agent_source: AgentSource,
        *,
        model_label: str = "model",
        model_note: str | None = None,
        history: InputHistory | None = None,
        export_dir: Path | None = None,
        theme: str | None = None,
        show_schema: bool | None = None,
        show_timings: bool = True,
    ) -> None:
        super().__init__()
        self.agent_source = agent_source
        self.model_label = model_label
        self.model_note = model_note  # shown under the welcome text: which model, how to pick another
        self.history = history if history is not None else InputHistory(None)
        self.export_dir = export_dir or Path.cwd()
        self.show_schema = show_schema
        self.show_timings = show_timings  # off for snapshot tests, whose pixels must not depend on speed
        if theme:
            self.theme = theme
        self.agent: Agent | None = None
        self.last_answer: Answer | None = None
        self.answers: list[Answer] = []  # every finished answer of this session, oldest first
        self.last_export: Path | None = None
        self.first_visible_at: float | None = None  # when the current question first showed model output
        self.asked_at: float | None = None
        self._agent_ready: anyio.Event | None = None  # created on mount, inside the event loop
        self._agent_closing: anyio.Event | None = None
        self.narrator = ProgressNarrator()  # the status line's words, elapsed time and estimate

    # ---------------------------------------------------------------- layout

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            yield SchemaSidebar(id="sidebar")
            with Vertical(id="main"):
                yield ChatLog(id="chat-log", note=self.model_note)
                yield PromptInput(self.history, id="prompt")
        yield StatusBar(id="status")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._agent_ready, self._agent_closing = anyio.Event(), anyio.Event()
        status = self.query_one(StatusBar)
        status.model = self.model_label
        status.activity = "connecting…"
        status.busy = True
        show = self.show_schema if self.show_schema is not None else self.size.width >= 100
        self.query_one(SchemaSidebar).set_class(not show, "-hidden")
        self.query_one(PromptInput).focus()
        self._ticker = self.set_interval(1.0, self._tick, pause=True)  # elapsed time while working
        self._hold_agent()

    @work(name="agent-connection", exit_on_error=True)
    async def _hold_agent(self) -> None:
        status = self.query_one(StatusBar)
        try:
            async with self.agent_source() as agent:
                self.agent = agent
                status.database = agent.database
                await self._load_database_info()
                status.busy = False
                status.activity = ""
                assert self._agent_ready is not None and self._agent_closing is not None
                self._agent_ready.set()
                await self._agent_closing.wait()
        except QueryFailed as exc:
            status.busy = False
            status.activity = f"not connected: {exc.error.kind}"
            self.notify(
                escape(exc.error.message), title="Cannot start the agent", severity="error", timeout=30
            )
        except OSError as exc:
            status.busy = False
            status.activity = "not connected"
            self.notify(escape(str(exc)), title="Cannot reach the server", severity="error", timeout=30)
        finally:
            self.agent = None

    async def _load_database_info(self) -> None:
        agent = self._require_agent()
        sidebar = self.query_one(SchemaSidebar)
        dbs = await agent.databases()
        sidebar.set_databases([d["name"] for d in dbs], agent.database)
        try:
            schema = await agent.schema()
        except QueryFailed as exc:
            self.notify(escape(str(exc.error)), title="Schema unavailable", severity="warning")
            return
        sidebar.set_schema(schema)

    def _require_agent(self) -> Agent:
        if self.agent is None:
            raise RuntimeError("the agent is not connected")
        return self.agent

    async def on_unmount(self) -> None:
        if self._agent_closing is not None:
            self._agent_closing.set()

    async def wait_until_ready(self) -> None:
        """Wait for the agent's connection (the first schema load included)."""
        while self._agent_ready is None:
            await anyio.sleep(0.01)
        await self._agent_ready.wait()

    # ---------------------------------------------------------------- asking

    @property
    def busy(self) -> bool:
        return self.agent is not None and self.agent.busy

    @on(QuestionSubmitted)
    def _question(self, event: QuestionSubmitted) -> None:
        if self.busy:
            self.notify("Still working on the last question (escape cancels it).", severity="warning")
            return
        self._ask(event.text)

    @work(group="agent")
    async def _ask(self, question: str) -> None:
        await self.wait_until_ready()
        agent = self._require_agent()
        view = self.query_one(ChatLog).add_exchange(question)
        self.narrator.start()
        self._set_busy(True)
        self.asked_at, self.first_visible_at = time.perf_counter(), None

        def on_event(event: AgentEvent) -> None:
            view.apply(event)
            self.narrator.apply(event)
            if self.first_visible_at is None and (
                (isinstance(event, GenerationProgress) and event.text)
                or (isinstance(event, GenerationFinished) and (event.step.reasoning or event.step.sql))
            ):
                self.first_visible_at = time.perf_counter()
            if isinstance(event, GenerationFinished) and event.step.model:
                # name what the server really ran (an adapter, another model), not what was configured
                name = Path(event.step.model).name or event.step.model
                runtime = runtime_name(event.step.backend)
                self.query_one(StatusBar).model = f"{name} · {runtime}" if runtime else name
            self._tick()

        try:
            answer = await agent.ask(question, on_event=on_event)
        finally:
            self._set_busy(False)
        self._finish(answer, view)

    def _finish(self, answer: Answer, view: AnswerView) -> None:
        self.answers.append(answer)
        if answer.result is not None or answer.sql:
            self.last_answer = answer
        turns = f" · {answer.turns} attempts" if answer.turns > 1 else ""
        took = f" in {answer.elapsed_ms / 1000:.1f} s" if self.show_timings else ""
        label = answer.confidence.level if answer.confidence is not None else answer.status
        self.query_one(StatusBar).timing = f"{label}{took}{turns}"

    def _set_busy(self, busy: bool) -> None:
        status = self.query_one(StatusBar)
        status.busy = busy
        if busy:
            self._ticker.resume()
            self._tick()
        else:
            self._ticker.pause()
            status.activity = ""

    def _tick(self) -> None:
        """Refresh the status line's words and clock while the agent works."""
        if self.busy:
            line = self.narrator.line(timings=self.show_timings)
            self.query_one(StatusBar).activity = f"{line} · escape cancels"

    @work(group="agent")
    async def _run_sql(self, sql: str) -> None:
        await self.wait_until_ready()
        agent = self._require_agent()
        view = self.query_one(ChatLog).add_exchange(f"run SQL: {sql}")
        self.narrator.start()
        self.narrator.phase = "running the query"
        self._set_busy(True)
        try:
            answer = await agent.run_sql(sql)
        finally:
            self._set_busy(False)
        view.show_answer(answer)
        self._finish(answer, view)

    # ---------------------------------------------------------------- actions

    def action_cancel(self) -> None:
        if self.agent is not None and self.agent.busy:
            self.agent.cancel()
            self.notify("Cancelled: generation and the running query were stopped.", timeout=3)

    def action_new_conversation(self) -> None:
        if self.agent is not None:
            self.agent.cancel()
            self.agent.new_conversation()
        self.last_answer = None
        self.query_one(ChatLog).clear_conversation()
        self.query_one(PromptInput).focus()

    def action_toggle_schema(self) -> None:
        sidebar = self.query_one(SchemaSidebar)
        sidebar.toggle_class("-hidden")
        focused = self.focused
        if sidebar.has_class("-hidden") and focused is not None and sidebar in focused.ancestors_with_self:
            self.query_one(PromptInput).focus()  # never leave focus (and typing) on a hidden widget

    def action_focus_result(self) -> None:
        views = self.query(AnswerView)
        for view in reversed(list(views)):
            table = view.result_table
            if table is not None:
                table.table.focus()
                table.scroll_visible()
                return
        self.notify("No result to focus yet.", severity="warning")

    def action_export_csv(self) -> None:
        answer = self.last_answer
        if answer is None or answer.result is None:
            self.notify("No result to export yet.", severity="warning")
            return
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = self.export_dir / f"sqlr1-{answer.database}-{stamp}.csv"
        n = 1
        while path.exists():
            n += 1
            path = self.export_dir / f"sqlr1-{answer.database}-{stamp}-{n}.csv"
        try:
            write_csv(answer.result, path)
        except OSError as exc:
            self.notify(escape(str(exc)), title="Export failed", severity="error")
            return
        self.last_export = path
        more = " (truncated result: only the rows shown)" if answer.result.truncated else ""
        self.notify(f"Exported {answer.result.row_count} rows to {escape(str(path))}{more}", timeout=5)

    def action_copy_sql(self) -> None:
        if self.last_answer is None or not self.last_answer.sql:
            self.notify("No SQL to copy yet.", severity="warning")
            return
        self.copy_to_clipboard(self.last_answer.sql)
        self.notify(copy_notice("SQL"), timeout=4)

    def action_edit_sql(self) -> None:
        if isinstance(self.screen, SqlEditorScreen):  # the app's priority key reaches here first
            self.screen.action_run()
            return
        sql = self.last_answer.sql if self.last_answer and self.last_answer.sql else "SELECT "

        def run(edited: str | None) -> None:
            if edited:
                if self.busy:
                    self.notify("Still working (escape cancels).", severity="warning")
                    return
                self._run_sql(edited)

        self.push_screen(SqlEditorScreen(sql), run)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    @on(SchemaSidebar.DatabaseChanged)
    async def _switch_database(self, event: SchemaSidebar.DatabaseChanged) -> None:
        agent = self.agent
        if agent is None or event.database == agent.database:
            return
        agent.cancel()
        agent.use_database(event.database)
        self.query_one(StatusBar).database = agent.database
        self.query_one(ChatLog).clear_conversation()
        self.last_answer = None
        try:
            self.query_one(SchemaSidebar).set_schema(await agent.schema())
        except QueryFailed as exc:
            self.notify(escape(str(exc.error)), title="Schema unavailable", severity="warning")
