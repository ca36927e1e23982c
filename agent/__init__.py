"""The sqlr1 agent: an MCP client of the sqlr1 server with a multi-turn, self-correcting loop.

Public API: :class:`Agent` (``await agent.ask(question) -> Answer``), :class:`SyncAgent` (the same,
blocking), :class:`AgentSettings`, the :class:`Answer`/:class:`Trace` records, and the server targets
(:func:`embedded_server`, :class:`StdioTarget`, :class:`HttpTarget`). Never imports ``tui``.

Names are imported lazily, so light submodules (e.g. the evaluation scorer's worker
processes) do not pay for the MCP client and model stack.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "AgentEvent": "sqlr1.agent.events",
    "Agent": "sqlr1.agent.loop",
    "AgentSettings": "sqlr1.agent.loop",
    "SyncAgent": "sqlr1.agent.sync",
    "embedded_server": "sqlr1.agent.targets",
    "HttpTarget": "sqlr1.agent.tools",
    "ServerTarget": "sqlr1.agent.tools",
    "StdioTarget": "sqlr1.agent.tools",
    "Answer": "sqlr1.agent.trace",
    "Attempt": "sqlr1.agent.trace",
    "Trace": "sqlr1.agent.trace",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
