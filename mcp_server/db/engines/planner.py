"""The PostgreSQL engine's planner process (``engines.postgres._Planner``): plans statements on its own
connection under a memory cap, so a plan holding a huge folded constant ends this process, not the server.

Run as ``serve(fd, memory_bytes)`` in a fresh interpreter. It imports only psycopg so that it starts
fast, and speaks over ``fd`` (``multiprocessing.connection``): first ``(conninfo, explain_prefix,
settings_sql)``, answered ``("ok", settings)`` once connected (the engine checks the pinned settings);
then ``(sql, timeout_ms)`` per statement, answered ``("ok", plan)``, ``("error", psycopg error)`` (they
pickle with their diagnostics) or ``("memory", None)``, after which it ends.
"""

from __future__ import annotations

import contextlib
import os
import resource
from multiprocessing.connection import Connection

import psycopg

__all__ = ["serve"]


def serve(fd: int, memory_bytes: int) -> None:
    channel = Connection(fd)
    try:
        conninfo, explain_prefix, settings_sql = channel.recv()
        conn = psycopg.connect(conninfo, autocommit=True, prepare_threshold=None)
        conn.execute("SET default_transaction_read_only = on")  # every statement it plans: read-only
        settings = conn.execute(settings_sql).fetchone()
    except Exception as exc:  # psycopg errors pickle; anything else as text
        channel.send(("error", exc if isinstance(exc, psycopg.Error) else str(exc)))
        return
    _cap_data(memory_bytes)
    channel.send(("ok", tuple(settings or ())))
    timeout_ms = -1
    while True:
        try:
            sql, wanted_ms = channel.recv()
        except (EOFError, OSError):
            break
        try:
            if wanted_ms != timeout_ms:
                conn.execute(f"SET statement_timeout = {int(wanted_ms):d}")
                timeout_ms = wanted_ms
            # binary results: psycopg sends it through the extended protocol, so the server refuses a
            # second statement in the text instead of running it
            row = conn.execute(explain_prefix + sql, binary=True).fetchone()
            channel.send(("ok", row[0] if row else []))
        except MemoryError:
            channel.send(("memory", None))
            break
        except psycopg.Error as exc:
            text = str(exc).lower()
            if "out of memory" in text or "cannot allocate memory" in text:
                channel.send(("memory", None))
                break
            channel.send(("error", exc))
            if conn.closed or conn.broken:
                break
    os._exit(0)


def _cap_data(memory_bytes: int) -> None:
    """Let this process's data segment grow by ``memory_bytes`` from here."""
    used = 0
    with contextlib.suppress(OSError), open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmData:"):
                used = int(line.split()[1]) * 1024
    hard = resource.getrlimit(resource.RLIMIT_DATA)[1]
    limit = used + memory_bytes if hard == resource.RLIM_INFINITY else min(used + memory_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
