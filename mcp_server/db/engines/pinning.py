"""Session settings that change how a server reads SQL text, pinned so the guard reads it the same way.

The guard lexes a statement with sqlglot's rules for the dialect; a server lexes it with its own, and
some of those depend on session settings: PostgreSQL's ``standard_conforming_strings`` and
``backslash_quote`` decide where a string literal ends, and so does the client encoding (a multibyte
encoding such as GBK can swallow a backslash); MariaDB/MySQL's ``sql_mode`` (``NO_BACKSLASH_ESCAPES``,
``ANSI_QUOTES``, ``PIPES_AS_CONCAT``, ``IGNORE_SPACE``, ``ORACLE``, ...) and connection character set do
the same. If the two disagree, text the guard reads as a string can be code to the server.

So the engines set these at connect time to the values the guard's dialects assume, read them back,
and refuse to run on a connection where they differ; a database URL that tries to set them is refused
when the configuration is read. This module holds the values and the URL check; it imports no driver.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from sqlr1.mcp_server.core.errors import QueryFailed

__all__ = [
    "MARIADB_CHARSETS",
    "MARIADB_SQL_MODE",
    "POSTGRES_SETTINGS",
    "check_url_options",
    "postgres_options",
    "refuse_session",
]

# What sqlglot's "postgres" dialect assumes: '...' strings where a backslash is an ordinary character
# (E'...' strings take escapes), and UTF-8 text.
POSTGRES_SETTINGS: dict[str, str] = {
    "standard_conforming_strings": "on",
    "backslash_quote": "safe_encoding",
    "client_encoding": "UTF8",
}

# What sqlglot's "mysql" dialect assumes: backslash escapes in strings, "..." as a string (not an
# identifier), || as OR, no space between a function name and "(", no Oracle/ANSI parser. The strict
# modes only turn warnings into errors.
MARIADB_SQL_MODE = "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"
MARIADB_CHARSETS = frozenset({"utf8mb4", "utf8mb3", "utf8"})

# libpq "options": -c name=value, -cname=value or --name=value, separated by unescaped whitespace.
_OPTION_TOKEN = re.compile(r"(?:\\.|\S)+")


def _settings_in_options(options: str) -> list[tuple[str, str]]:
    """(name, value) pairs from a libpq ``options`` string; refuses any other command-line switch."""
    tokens = [t.replace("\\ ", " ") for t in _OPTION_TOKEN.findall(options)]
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token == "-c" and i + 1 < len(tokens):
            assignment, i = tokens[i + 1], i + 2
        elif (token.startswith("-c") and len(token) > 2) or (token.startswith("--") and "=" in token):
            assignment, i = token[2:], i + 1
        else:
            raise QueryFailed.of(
                "config",
                f"PostgreSQL URL option options={options!r}: only '-c name=value' settings are accepted "
                f"(found {token!r})",
            )
        name, eq, value = assignment.partition("=")
        if not eq:
            raise QueryFailed.of(
                "config", f"PostgreSQL URL option options={options!r}: {assignment!r} is not name=value"
            )
        pairs.append((name.strip().lower().replace("-", "_"), value.strip()))
    return pairs


def check_url_options(kind: str, query: Mapping[str, str | Sequence[str]]) -> None:
    """Refuse URL options that would change how the server reads SQL (raises ``QueryFailed`` config)."""
    for key, raw in query.items():
        values = [raw] if isinstance(raw, str) else list(raw)
        for value in values:
            if kind == "postgresql" and key == "options":
                for name, _ in _settings_in_options(value):
                    if name in POSTGRES_SETTINGS:
                        raise _pinned(name, POSTGRES_SETTINGS[name], "PostgreSQL")
            elif kind == "mysql" and key == "charset" and value.lower() not in MARIADB_CHARSETS:
                raise QueryFailed.of(
                    "config",
                    f"charset={value!r} is refused: sqlr1 reads SQL as UTF-8 and a multibyte character "
                    "set such as GBK or SJIS can make the server end a string literal elsewhere; use "
                    "charset=utf8mb4",
                )


def postgres_options(options: str | None) -> str:
    """The libpq ``options`` to connect with: the URL's own (already checked) plus the pinned settings."""
    pinned = " ".join(
        f"-c {name}={value}" for name, value in POSTGRES_SETTINGS.items() if name != "client_encoding"
    )
    return f"{options} {pinned}".strip() if options else pinned


def _pinned(name: str, value: str, server: str) -> QueryFailed:
    return QueryFailed.of(
        "config",
        f"the {server} setting {name} is pinned to {value!r} by sqlr1 (it changes where the server ends a "
        "string literal, so the guard would read statements differently from the server); remove it from "
        "the URL's options",
    )


def refuse_session(setting: str, found: str, wanted: str, server: str, database: str) -> QueryFailed:
    """The error for a connection whose setting could not be pinned (a server default or a role setting)."""
    return QueryFailed.of(
        "config",
        f"database {database!r}: the {server} session setting {setting} is {found!r} after connecting, "
        f"but sqlr1 needs {wanted!r} (it changes how the server reads SQL text, so the guard would read "
        "statements differently); sqlr1 sets it when it connects, so something on the server (a role or "
        "database default, a proxy, an init command) overrides it",
    )
