"""Building the embedded (in-process) sqlr1 server the agent talks to by default.

Owns nothing but the assembly: ``mcp_server.protocol.server.build_server`` with the generation tools plugin,
so an embedded agent sees exactly the tools a ``sqlr1 serve`` client sees.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mcp.server.mcpserver import MCPServer

from sqlr1.mcp_server.core.config import AppConfig

__all__ = ["embedded_server"]


def embedded_server(
    config: AppConfig, *, backend: Any = None, registry: Any = None, warm: Sequence[str] = ()
) -> MCPServer:
    """The full server (core + ``generate_sql``/``search_values``) over ``config``, for in-memory use.

    ``backend`` (a loaded :class:`~mcp_server.backends.base.Backend` or a zero-argument provider)
    defaults to the configured model, loaded on the first ``generate_sql`` call, or at once in the
    background with the schema prefixes of the ``warm`` databases.
    """
    from sqlr1.mcp_server.protocol.generation_tools import generation_plugin
    from sqlr1.mcp_server.protocol.server import build_server

    return build_server(config, registry=registry, plugins=[generation_plugin(backend, warm=warm)])
