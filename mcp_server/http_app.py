"""Streamable HTTP transport policy: loopback by default, bearer token off loopback, Host/Origin checks.

Owns the rules for exposing the MCP server over HTTP. Binding to anything but a loopback address
without a token is refused before a socket is opened; a wrong or missing token gets 401 before the
request reaches the MCP session (so no tool runs); DNS-rebinding protection (Host and Origin allowlists)
is always on.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mcp_server.config import ServerConfig
from mcp_server.errors import QueryFailed

__all__ = ["BearerTokenMiddleware", "build_http_app", "check_bind", "is_loopback", "transport_security"]

logger = logging.getLogger("sqlr1.http")

MCP_PATH = "/mcp"
_LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


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


def transport_security(settings: ServerConfig) -> TransportSecuritySettings:
    """Host/Origin allowlists: loopback names on any port, the bound host, plus ``allowed_hosts``."""
    hosts = [f"{name}:*" for name in _LOOPBACK_NAMES]
    origins = [f"http://{name}:*" for name in _LOOPBACK_NAMES]
    extra = (
        [settings.host] if not is_loopback(settings.host) and settings.host not in ("0.0.0.0", "::") else []
    )
    for host in [*extra, *settings.allowed_hosts]:
        if host.endswith(":*") or ":" in host.strip("[]").rsplit("]", 1)[-1]:
            hosts.append(host)
        else:
            hosts += [host, f"{host}:*"]
        base = host[:-2] if host.endswith(":*") else host
        origins += [f"http://{base}:*", f"https://{base}:*", f"http://{base}", f"https://{base}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


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


def build_http_app(server: MCPServer, settings: ServerConfig) -> ASGIApp:
    """The ASGI app for ``sqlr1 serve --http``: the SDK's streamable HTTP app behind our policy."""
    check_bind(settings)
    app: Starlette = server.streamable_http_app(
        streamable_http_path=MCP_PATH,
        transport_security=transport_security(settings),
        host=settings.host,
    )
    if settings.token:
        return BearerTokenMiddleware(app, settings.token)
    return app
