#!/usr/bin/env bash
# mypy over every package under its import name (sqlr1.agent is agent/, sqlr1.mcp_server is mcp_server/, ...;
# setup.py maps them) and over tests/ and scripts/, with the config in pyproject.toml. mypy cannot follow
# setuptools' editable finder, so it reads the packages through a tree of links in build/typecheck.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p build/typecheck/sqlr1
for package in agent mcp_server training tui; do
  ln -sfn "$PWD/$package" "build/typecheck/sqlr1/$package"
done
exec "${PYTHON:-.venv/bin/python}" -m mypy "$@"
