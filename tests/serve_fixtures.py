"""``sqlr1 serve`` as a real subprocess with a small scripted model behind an OpenAI-compatible server.

The model is :class:`ScriptedBackend` served by ``tests/openai_compat_server.py`` on loopback, and the
server reaches it through its real ``openai`` backend (``[model] backend = "openai"`` in a TOML config):
the generation path runs end to end over HTTP while staying fast. Used by the official-client and the
HTTP-replica tests.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openai_compat_server import build_app, serve
from scripted_backend import ScriptedBackend, answer

REPO = Path(__file__).resolve().parent.parent
MODEL_SQL = "SELECT count(*) FROM Artist"  # what the scripted model answers to every question


@contextmanager
def scripted_model() -> Iterator[tuple[str, ScriptedBackend]]:
    """An OpenAI-compatible server on loopback whose model always answers :data:`MODEL_SQL`;
    yields its ``/v1`` base URL and the backend (``backend.calls`` records each generation)."""
    backend = ScriptedBackend([answer(MODEL_SQL, "Count the artists.")])
    with serve(build_app(backend)) as base_url:
        yield base_url, backend


def write_config(path: Path, database: Path, model_url: str, *, num_candidates: int = 2) -> Path:
    """A TOML config serving ``chinook`` = ``database`` with the model at ``model_url``."""
    path.write_text(
        f'[[databases]]\nname = "chinook"\ntarget = {str(database)!r}\n\n'
        f'[model]\nbackend = "openai"\nbase_url = "{model_url}"\nmodel = "{ScriptedBackend.model_id}"\n\n'
        f"[generation]\nnum_candidates = {num_candidates}\n",
        encoding="utf-8",
    )
    return path


def serve_command(config: Path, *extra: str) -> list[str]:
    """``sqlr1 --config CONFIG serve EXTRA...`` run by this interpreter (so it runs this checkout's code)."""
    return [sys.executable, "-m", "sqlr1.mcp_server.cli.main", "--config", str(config), "serve", *extra]


def child_env() -> dict[str, str]:
    """This environment with the checkout first on ``PYTHONPATH`` and no token from the caller's shell."""
    env = dict(os.environ)
    env.pop("SQLR1_TOKEN", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    return env


@dataclass
class HttpServer:
    proc: subprocess.Popen[str]
    url: str
    banner: str
    stderr: list[str]


@contextmanager
def http_server(config: Path, *extra: str) -> Iterator[HttpServer]:
    """``sqlr1 serve --http --port 0 EXTRA...`` on loopback; yields once it prints its URL."""
    proc = subprocess.Popen(
        serve_command(config, "--http", "--port", "0", *extra),
        cwd=str(REPO),
        env=child_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    banner = ""
    try:
        for line in proc.stderr:  # bounded: the server prints its URL right after binding
            banner += line
            if m := re.search(r"(http://127\.0\.0\.1:\d+/mcp)", line):
                rest: list[str] = []
                # keep draining stderr so a chatty server never blocks on a full pipe
                threading.Thread(target=rest.extend, args=(proc.stderr,), daemon=True).start()
                yield HttpServer(proc, m.group(1), banner, rest)
                break
        else:
            raise AssertionError(f"sqlr1 serve --http did not start: {banner}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
