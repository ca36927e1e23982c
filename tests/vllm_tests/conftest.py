"""Fixtures for the vLLM tests, which run inside the separate ``.venv-vllm`` (``scripts/test_vllm.sh``).

Without vLLM installed (the main ``.venv``) this folder is not collected at all: the main suite
cannot run these tests, and ``scripts/test_vllm.sh`` runs them where it can. There, a missing or
broken vLLM is a failure, not a skip.

A real ``vllm serve`` of the bundled model is started once per session, in the background as soon
as the session starts (its start-up overlaps the in-process engine tests), on a free loopback port;
it is always terminated at the end (its whole process group).
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

collect_ignore_glob: list[str] = []
_vllm = importlib.util.find_spec("vllm")
if _vllm is None or _vllm.origin is None:  # not installed (origin None: some namespace folder)
    collect_ignore_glob = ["test_*.py"]  # the main .venv: these tests run in .venv-vllm

SERVED_NAME = "sqlr1-bundled"
MAX_MODEL_LEN = 2048
SERVER_START_TIMEOUT_S = float(os.environ.get("SQLR1_VLLM_START_TIMEOUT", "600"))

KV_CACHE_BYTES = 256 << 20  # ~11k tokens of SmolLM2-135M (bf16): plenty for these short requests

# Small engines on a shared CPU: 256 MiB of KV cache each (an explicit size also skips vLLM's
# warm-up pass), no torch.compile. The engine keeps vLLM's default engine-core process (measured
# here: running it inside the test process, VLLM_ENABLE_V1_MULTIPROCESSING=0, decodes far slower).
os.environ.setdefault(
    "SQLR1_VLLM_ENGINE_ARGS",
    json.dumps({"max_model_len": MAX_MODEL_LEN, "kv_cache_memory_bytes": KV_CACHE_BYTES}),
)


@pytest.fixture(scope="session")
def model_dir() -> Path:
    from sqlr1.mcp_server.backends.bundled import ensure_bundled_model

    return ensure_bundled_model()


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class VLLMServer:
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    ready: bool = False
    model_name: str = SERVED_NAME

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")[-chars:]
        except OSError as exc:
            return f"(no log: {exc})"

    def wait_ready(self) -> None:
        """Poll ``/v1/models`` until the server answers; fail with its log if it exits or times out."""
        import httpx2 as httpx

        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        while not self.ready:
            code = self.process.poll()
            if code is not None:
                pytest.fail(f"vllm serve exited with {code} before it was ready:\n{self.log_tail()}")
            try:
                resp = httpx.get(f"{self.base_url}/models", timeout=5.0)
                self.ready = resp.status_code == 200 and SERVED_NAME in resp.text
            except httpx.HTTPError:
                self.ready = False
            if not self.ready:
                if time.monotonic() > deadline:
                    pytest.fail(
                        f"vllm serve not ready after {SERVER_START_TIMEOUT_S:.0f}s:\n{self.log_tail()}"
                    )
                time.sleep(2.0)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # the server's own process group (its workers)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


@pytest.fixture(scope="session", autouse=True)
def vllm_server(model_dir: Path) -> Iterator[VLLMServer]:
    """``vllm serve`` of the bundled model on loopback, started when the session starts."""
    from sqlr1.mcp_server.backends.vllm_backend import serve_command

    port = _free_port()
    log_dir = Path(tempfile.mkdtemp(prefix="sqlr1-vllm-serve-"))
    log_path = log_dir / "serve.log"
    cmd = serve_command(
        model_dir,
        "--host", "127.0.0.1", "--port", str(port),
        "--served-model-name", SERVED_NAME,
        "--max-model-len", str(MAX_MODEL_LEN),
        "--enforce-eager", "--enable-prefix-caching",
        "--kv-cache-memory-bytes", str(KV_CACHE_BYTES),
    )  # fmt: skip
    env = dict(os.environ)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    server = VLLMServer(proc, port, log_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def served(vllm_server: VLLMServer) -> VLLMServer:
    """The server, once it answers."""
    vllm_server.wait_ready()
    return vllm_server
