"""The real bundled model as a session fixture (SmolLM2-135M through the transformers backend)."""

from __future__ import annotations

import pytest

from sqlr1.mcp_server.backends.base import Backend
from sqlr1.mcp_server.core.config import ModelConfig


@pytest.fixture(scope="session")
def bundled_backend() -> Backend:
    from sqlr1.mcp_server.backends.factory import load_backend

    return load_backend(ModelConfig())  # loaded once per test process, shared
