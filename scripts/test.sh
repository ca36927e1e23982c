#!/usr/bin/env bash
# The test suite, as the README says (CI runs it with CI=true: unavailable services fail instead of skipping).
#   0. the official MCP clients the suite drives (scripts/setup_node_clients.sh: npm, idempotent)
#   1. the main suite in .venv (slow model/training tests included; `-m "not slow"` for a quick run)
#   2. the vLLM backends on CPU in their own .venv-vllm (scripts/test_vllm.sh builds it on first use)
# Arguments go to the main pytest run; with arguments the vLLM part is skipped (a focused run).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! bash scripts/setup_node_clients.sh; then
  # Without npm the official-client tests skip locally; under CI=true they must run, so this fails.
  [ "${CI:-}" = "true" ] && exit 1
  echo "test: the official MCP client tests will be skipped (see above)" >&2
fi
.venv/bin/python -m pytest -q "$@"
if [ "$#" -eq 0 ]; then
  bash scripts/test_vllm.sh
fi
