#!/usr/bin/env bash
# The test suite, as the README says (CI runs it with CI=true: unavailable services fail instead of skipping).
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q "$@"
