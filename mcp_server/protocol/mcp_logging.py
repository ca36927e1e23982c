"""The MCP ``logging`` capability: guard refusals, timeouts and timings as ``notifications/message``.

The SDK's ``MCPServer`` has no public way to serve ``logging/setLevel`` (only the low-level
``Server(on_set_logging_level=...)`` takes one) and advertises ``capabilities.logging`` only for a
handler registered there. :class:`ProtocolMiddleware`, a server middleware (``MCPServer.middleware``,
public), answers ``logging/setLevel`` itself and adds ``logging`` (and ``resources.listChanged``, which
:mod:`mcp_server.protocol.mcp_resources` sends) to the ``initialize`` result's capabilities. Handshake protocol
versions only: the 2026-07-28 revision dropped ``logging/setLevel`` (a client opts in per request with
``_meta``, and the SDK filters those messages itself).

Levels are kept per connection (the HTTP session id; stdio has one connection), default: every level;
stateless HTTP has no connection, so a level set there is not kept (every level is sent).
Messages go out as plain ``notifications/message`` on the request's stream (the SDK's logging helpers
are deprecated, SEP-2577, and warn on every call; ``sqlr1 serve`` writes only its own lines to stderr).
"""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final, get_args

from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPDeprecationWarning, MCPError
from mcp_types import (
    INVALID_PARAMS,
    LoggingLevel,
    LoggingMessageNotification,
    LoggingMessageNotificationParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

__all__ = ["LEVELS", "ClientLogLevels", "ProtocolMiddleware", "send_log"]

log = logging.getLogger(__name__)

LEVELS: Final[tuple[str, ...]] = get_args(LoggingLevel)
"""RFC 5424 severities, least severe first (debug ... emergency)."""
LOGGER_NAME = "sqlr1"
MAX_CONNECTIONS = 1024


def connection_key(headers: Mapping[str, str] | None) -> str | None:
    """Which connection a request belongs to: its HTTP session id, "" for stdio (one connection), or
    None for stateless HTTP (no connection to remember a level for: one client's ``logging/setLevel``
    must not silence another's messages)."""
    if not headers:
        return ""
    return headers.get("mcp-session-id") or None


class ClientLogLevels:
    """The least severe level each connection asked for with ``logging/setLevel``."""

    def __init__(self) -> None:
        self._levels: OrderedDict[str, int] = OrderedDict()

    def set(self, key: str | None, level: str) -> None:
        if key is None:
            return  # stateless HTTP: the level would apply to every client of this replica
        self._levels[key] = LEVELS.index(level)
        self._levels.move_to_end(key)
        while len(self._levels) > MAX_CONNECTIONS:
            self._levels.popitem(last=False)

    def allows(self, key: str | None, level: str) -> bool:
        least = None if key is None else self._levels.get(key)
        return least is None or LEVELS.index(level) >= least


class ProtocolMiddleware:
    """Serves ``logging/setLevel`` and completes the ``initialize`` capabilities (see module doc)."""

    def __init__(self, levels: ClientLogLevels, *, resources_list_changed: bool = True) -> None:
        self.levels = levels
        self.resources_list_changed = resources_list_changed

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        modern = ctx.protocol_version in MODERN_PROTOCOL_VERSIONS
        if ctx.method == "logging/setLevel" and ctx.request_id is not None and not modern:
            level = (ctx.params or {}).get("level")
            if level not in LEVELS:
                raise MCPError(
                    code=INVALID_PARAMS,
                    message=f"level must be one of {', '.join(LEVELS)}, got {level!r}",
                )
            self.levels.set(connection_key(getattr(ctx.request, "headers", None)), level)
            return {}
        result = await call_next(ctx)
        if ctx.method == "initialize" and isinstance(result, dict):
            capabilities = result.get("capabilities")
            if isinstance(capabilities, dict):
                capabilities.setdefault("logging", {})
                resources = capabilities.get("resources")
                if self.resources_list_changed and isinstance(resources, dict):
                    resources["listChanged"] = True
        return result


async def send_log(
    context: Context[Any, Any] | None,
    levels: ClientLogLevels,
    level: LoggingLevel,
    data: dict[str, Any],
) -> None:
    """Send ``data`` as a ``notifications/message`` on ``context``'s request (when the client's level
    allows it); never raises: a log line must not fail the call it describes."""
    if context is None:
        return
    try:
        request = context.request_context
    except (LookupError, ValueError, RuntimeError):
        return  # called in-process, outside a request
    if not levels.allows(connection_key(context.headers), level):
        return
    try:
        if request.protocol_version in MODERN_PROTOCOL_VERSIONS:
            # Delivered only when this request's _meta opted in at that level: the SDK's (deprecated,
            # SEP-2577) send_log_message applies that gate.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", MCPDeprecationWarning)
                await request.session.send_log_message(
                    level=level, data=data, logger=LOGGER_NAME, related_request_id=context.request_id
                )
            return
        message = LoggingMessageNotification(
            params=LoggingMessageNotificationParams(level=level, data=data, logger=LOGGER_NAME)
        )
        await request.session.send_notification(message, related_request_id=context.request_id)
    except Exception as exc:  # a closed stream, a cancelled request
        log.debug("log message not delivered: %s", exc)
