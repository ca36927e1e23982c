"""A blocking face of :class:`agent.Agent` for scripts and the evaluation harness.

Owns one event-loop thread (an anyio blocking portal) holding the MCP connection open, so each
``ask`` reuses the same client and the same loaded model. ``cancel()`` may be called from any thread.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, ExitStack
from types import TracebackType
from typing import Any

from anyio.from_thread import BlockingPortal, start_blocking_portal

from sqlr1.agent.events import EventHandler
from sqlr1.agent.loop import Agent, AgentSettings
from sqlr1.agent.tools import ServerTarget
from sqlr1.agent.trace import Answer

__all__ = ["SyncAgent"]


class SyncAgent(AbstractContextManager["SyncAgent"]):
    """``with SyncAgent(target, database=...) as agent: answer = agent.ask("...")``."""

    def __init__(
        self, target: ServerTarget, *, database: str | None = None, settings: AgentSettings | None = None
    ) -> None:
        self._target, self._database, self._settings = target, database, settings
        self._stack = ExitStack()
        self._portal: BlockingPortal | None = None
        self._agent: Agent | None = None

    def __enter__(self) -> SyncAgent:
        try:
            self._portal = self._stack.enter_context(start_blocking_portal())
            cm = Agent.connect(self._target, database=self._database, settings=self._settings)
            self._agent = self._stack.enter_context(self._portal.wrap_async_context_manager(cm))
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stack.close()
        self._agent = self._portal = None

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("SyncAgent must be used inside `with`")
        return self._agent

    def _call(self, fn: Any, *args: Any) -> Any:
        if self._portal is None:
            raise RuntimeError("SyncAgent must be used inside `with`")
        return self._portal.call(fn, *args)

    def ask(self, question: str, *, on_event: EventHandler | None = None) -> Answer:
        agent = self.agent
        return self._call(lambda: agent.ask(question, on_event=on_event))

    def run_sql(self, sql: str) -> Answer:
        return self._call(self.agent.run_sql, sql)

    def use_database(self, name: str) -> None:
        self.agent.use_database(name)

    def new_conversation(self) -> None:
        self.agent.new_conversation()

    def cancel(self) -> None:
        if self._portal is not None and self._agent is not None:
            self._portal.call(self._agent.cancel)
