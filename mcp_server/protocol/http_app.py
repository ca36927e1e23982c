"""Streamable HTTP transport policy: loopback by default, bearer token off loopback, Host/Origin checks.

Owns the rules for exposing the MCP server over HTTP. The server is stateless by default: every POST is
served on its own, with no MCP session kept in the process, so several replicas behind an ordinary load
balancer serve the same clients (docs/deploy.md); ``stateful=True`` keeps sessions (``Mcp-Session-Id``)
for one process, which adds the standalone GET stream for server notifications. Binding to anything but a loopback address
without a token is refused before a socket is opened; a wrong or missing token gets 401 before the
request reaches the MCP session (so no tool runs); DNS-rebinding protection (Host and Origin, each
compared as a whole authority: host and port) is always on; a request body must arrive within
deadlines (a client that stops sending gets 408 instead of holding the connection).
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import re
from dataclasses import dataclass

import anyio
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import DEFAULT_MAX_REQUEST_BODY_SIZE, TransportSecuritySettings
from starlette.datastructures import Headers
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sqlr1.mcp_server.core.config import ServerConfig
from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "BearerTokenMiddleware",
    "BodyDeadlineMiddleware",
    "HostOriginMiddleware",
    "HostPolicy",
    "build_http_app",
    "check_bind",
    "host_policy",
    "is_loopback",
]

logger = logging.getLogger("sqlr1.http")

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
BODY_IDLE_S = 5.0  # a request body may pause this long between bytes ...
BODY_TOTAL_S = 30.0  # ... and take this long in all


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(settings: ServerConfig) -> None:
    """Refuse to serve off loopback without a token (raises ``QueryFailed`` kind ``config``)."""
    if not is_loopback(settings.host) and not settings.token:
        raise QueryFailed.of(
            "config",
            f"refusing to bind to non-loopback address {settings.host!r} without a bearer token: "
            "pass --token or set SQLR1_TOKEN (clients then send 'Authorization: Bearer <token>')",
        )
    if settings.token is not None and len(settings.token) < 16:
        raise QueryFailed.of("config", "the bearer token must be at least 16 characters long")


# An authority as a Host header or an Origin carries it: a host name, IPv4 or bracketed IPv6 address, and an
# optional port, nothing else (no user info, no path): "127.0.0.1:8765@evil.example" is not one.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_AUTHORITY = re.compile(rf"(\[[0-9A-Fa-f:.]+\]|{_LABEL}(?:\.{_LABEL})*)(?::([0-9]{{1,5}}))?")
_ORIGIN = re.compile(rf"(https?)://({_AUTHORITY.pattern})")


def _authority(text: str) -> tuple[str, int | None] | None:
    match = _AUTHORITY.fullmatch(text)
    if match is None:
        return None
    host, port = match.group(1).lower(), match.group(2)
    return host, int(port) if port is not None else None


@dataclass(frozen=True)
class HostPolicy:
    """Which Host and Origin authorities the server answers (DNS-rebinding protection), compared whole.

    Loopback names must carry the server's own port. A name from ``allowed_hosts`` (or the bound host) may
    come without a port (a reverse proxy forwards ``Host: db.example``) or with the server's port;
    ``name:port`` allows exactly that port and ``name:*`` any port.
    """

    loopback: frozenset[str]
    names: frozenset[str]
    any_port: frozenset[str]
    exact: frozenset[tuple[str, int]]

    def allows(self, host: str, port: int | None, server_port: int | None) -> bool:
        if (host, port) in self.exact or (host in self.any_port):
            return True
        if host in self.loopback:
            return port == server_port or (port is None and server_port == 80)
        return host in self.names and (port is None or port == server_port)

    def allows_host(self, header: str, server_port: int | None) -> bool:
        found = _authority(header)
        return found is not None and self.allows(*found, server_port)

    def allows_origin(self, origin: str, server_port: int | None) -> bool:
        match = _ORIGIN.fullmatch(origin)
        if match is None:
            return False
        found = _authority(match.group(2))
        return found is not None and self.allows(*found, server_port)

    def describe(self) -> str:
        """The accepted Host headers, for the start-up log."""
        shown = [f"{name}:<port>" for name in sorted(self.loopback)]
        shown += sorted(self.names) + [f"{name}:*" for name in sorted(self.any_port)]
        shown += [f"{host}:{port}" for host, port in sorted(self.exact)]
        return ", ".join(shown)


def host_policy(settings: ServerConfig) -> HostPolicy:
    """Loopback names, the bound host (unless a wildcard address) and ``allowed_hosts``."""
    names: set[str] = set()
    any_port: set[str] = set()
    exact: set[tuple[str, int]] = set()
    bound = (
        [settings.host] if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::") else []
    )
    for entry in [*bound, *settings.allowed_hosts]:
        entry = entry.strip().lower()
        if entry.endswith(":*"):
            any_port.add(entry[:-2])
            continue
        found = _authority(entry) or _authority(f"[{entry}]")  # a bare IPv6 address
        if found is None:
            raise QueryFailed.of(
                "config", f"allowed host {entry!r} is not a host name, an address or host:port"
            )
        host, port = found
        if port is None:
            names.add(host)
        else:
            exact.add((host, port))
    return HostPolicy(frozenset(_LOOPBACK_NAMES), frozenset(names), frozenset(any_port), frozenset(exact))


class HostOriginMiddleware:
    """Answers 421 to a Host and 403 to an Origin the :class:`HostPolicy` does not allow, before the MCP app."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        server = scope.get("server")
        server_port = server[1] if server else None
        headers = Headers(scope=scope)
        host = headers.get("host")
        if host is None or not self.policy.allows_host(host, server_port):
            logger.warning("refused Host header %r", host)
            await PlainTextResponse("Invalid Host header", status_code=421)(scope, receive, send)
            return
        origin = headers.get("origin")
        if origin is not None and not self.policy.allows_origin(origin, server_port):
            logger.warning("refused Origin header %r", origin)
            await PlainTextResponse("Invalid Origin header", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyDeadlineMiddleware:
    """Reads a request's whole body before the app sees it, within deadlines, then replays it.

    A client that stops sending (a body shorter than its Content-Length, a slow drip) gets 408 once
    ``idle_s`` pass without a byte or ``total_s`` in all, instead of holding a connection and a task for as
    long as it likes; other clients are served meanwhile. Bodies over ``max_bytes`` get 413.
    """

    def __init__(
        self, app: ASGIApp, *, idle_s: float = BODY_IDLE_S, total_s: float = BODY_TOTAL_S, max_bytes: int
    ) -> None:
        self.app = app
        self.idle_s = idle_s
        self.total_s = total_s
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        deadline = anyio.current_time() + self.total_s
        while True:
            wait = min(self.idle_s, deadline - anyio.current_time())
            message: Message | None = None
            with anyio.move_on_after(max(0.0, wait)):
                message = await receive()
            if message is None:
                await PlainTextResponse(
                    "Request body not received in time", status_code=408, headers={"Connection": "close"}
                )(scope, _no_body, send)
                return
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await PlainTextResponse("Request body too large", status_code=413)(scope, _no_body, send)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _no_body() -> Message:
    return {"type": "http.disconnect"}


class BearerTokenMiddleware:
    """Answers 401 unless ``Authorization: Bearer <token>`` matches (constant-time compare)."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._token = token.encode("utf-8")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header = Headers(scope=scope).get("authorization", "")
        scheme, _, presented = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            presented.strip().encode("utf-8"), self._token
        ):
            response = JSONResponse(
                {"error": "invalid_token", "error_description": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


def build_http_app(server: MCPServer, settings: ServerConfig, *, stateful: bool = False) -> ASGIApp:
    """The ASGI app for ``sqlr1 serve --http``: the SDK's streamable HTTP app behind our policy.

    Stateless unless ``stateful``: each request gets a fresh transport (progress and log notifications
    still stream on its own response), so any replica can answer any request.
    """
    check_bind(settings)
    # The SDK's own Host/Origin check matches "name:*" as a prefix, so it is off and HostOriginMiddleware
    # compares whole authorities instead (the SDK still checks Content-Type and the body size).
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        stateless_http=not stateful,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
        host=settings.host,
    )
    if settings.token:
        app = BearerTokenMiddleware(app, settings.token)
    app = BodyDeadlineMiddleware(app, max_bytes=DEFAULT_MAX_REQUEST_BODY_SIZE)
    return HostOriginMiddleware(app, host_policy(settings))
