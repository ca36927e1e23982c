#!/usr/bin/env bash
# Stage what benchmarks/gpu/train_suite.sh needs on a lent GPU machine (nothing can be fetched there) into
# chunk folders .gpu/train/c01, c02, ... (ignored by git), each small enough to travel in one call of the
# device tool beside the tracked tree (64 MiB a call in all):
#   c01: the Python packages the device image lacks (cp312 wheels of this venv's versions, unpacked, xz),
#        the data (Spider train/dev + databases, Chinook/Northwind; xz), stage.json (model file, size, SHA-256)
#   c02...: the base model's GGUF in parts (it does not compress: quantized weights)
# and prints the device calls: every call but the last copies its chunk to /root/stage (the first also
# checks that the packages import: a cheap failure before the model travels), the last runs the suite.
#
#   bash benchmarks/gpu/train_stage.sh [MODEL_GGUF] [CHUNK_MIB]
# MODEL_GGUF: default the assembled Qwen2.5-Coder-0.5B-Instruct in the sqlr1 cache; CHUNK_MIB: default
# 64 minus the tracked tree minus 4.
set -euo pipefail
cd "$(dirname "$0")/../.."
EXCLUDE=$(git rev-parse --git-path info/exclude); mkdir -p "$(dirname "$EXCLUDE")"
grep -qx '.gpu/' "$EXCLUDE" 2>/dev/null || echo '.gpu/' >> "$EXCLUDE"
PY=${PY:-.venv/bin/python}
[ -x "$PY" ] || PY=/work/main/.venv/bin/python
DATA=${SQLR1_DATA:-../shared/data}
CACHE=${SQLR1_CACHE:-$($PY -c "import platformdirs; print(platformdirs.user_cache_dir('sqlr1'))")}
GGUF=${1:-$CACHE/models/qwen2.5-coder-0.5b-instruct.gguf}
[ -f "$GGUF" ] || { echo "no model file $GGUF (install it: sqlr1 models install qwen2.5-coder-0.5b)" >&2; exit 2; }
TREE_MIB=$(( ($(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1) >> 20) + 1 ))
CHUNK=${2:-$(( 64 - TREE_MIB - 4 ))}
W=.gpu/train
rm -rf "$W" && mkdir -p "$W/whl" "$W/site" "$W/c01"

# The packages: this venv's versions of what sqlr1's training and evaluation import, with their
# requirements (markers read for CPython 3.12 on x86-64 Linux), minus what the device image holds in a
# compatible version (torch, numpy, pandas, pyarrow, ... : KINDS.md's list) and would be large to carry.
mapfile -t pkgs < <($PY - <<'EOF'
import importlib.metadata as md
from packaging.requirements import Requirement

ROOTS = ["trl", "transformers", "peft", "accelerate", "datasets", "huggingface_hub", "tokenizers", "sqlglot",
         "sqlglotc", "SQLAlchemy", "apsw", "pydantic", "platformdirs", "RapidFuzz", "gguf", "rich", "anyio"]
ON_DEVICE = {"torch", "numpy", "pandas", "pyarrow", "triton", "sympy", "networkx", "jinja2", "markupsafe", "pyyaml",
             "filelock", "packaging", "tqdm", "psutil", "safetensors", "pillow", "matplotlib", "setuptools", "mpmath",
             "python-dateutil", "six", "pytz", "tzdata", "certifi", "greenlet", "pygments", "markdown-it-py",
             "mdurl", "requests", "urllib3", "charset-normalizer"}
env = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
       "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
       "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
norm = lambda n: n.lower().replace("_", "-").replace(".", "-")
seen, todo = {}, list(ROOTS)
while todo:
    name = todo.pop()
    if norm(name) in seen or norm(name) in ON_DEVICE or norm(name).startswith(("nvidia-", "cuda-")):
        continue
    dist = md.distribution(name)
    seen[norm(name)] = f"{dist.metadata['Name']}=={dist.version}"
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is None or req.marker.evaluate(env):
            todo.append(req.name)
print("\n".join(sorted(seen.values())))
EOF
)
echo "packages (${#pkgs[@]}): ${pkgs[*]}"
plat=(--python-version 3.12 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_34_x86_64
      --only-binary=:all:)
$PY -m pip download -q --no-deps "${plat[@]}" -d "$W/whl" "${pkgs[@]}"
$PY -m pip install -q --no-deps --no-compile --target "$W/site" "${plat[@]}" "$W"/whl/*.whl
rm -rf "$W/site/bin"
tar cf - -C "$W/site" . | xz -6 -T2 > "$W/c01/site.tar.xz"
tar cJf "$W/c01/data.tar.xz" -C "$DATA" spider/train_spider.json spider/dev.json spider/tables.json spider/database \
    sample_dbs/chinook sample_dbs/northwind
size=$(stat -c %s "$GGUF")
sha=$(sha256sum "$GGUF" | cut -d' ' -f1)
printf '{"model_file": "%s", "size": %s, "sha256": "%s"}\n' "$(basename "$GGUF")" "$size" "$sha" > "$W/c01/stage.json"

# The model in parts: what fits beside the packages and data in c01, then CHUNK MiB per folder.
used=$(( ($(du -cb "$W"/c01/* | tail -1 | cut -f1) >> 20) + 1 ))
first=$(( CHUNK > used ? CHUNK - used : 0 ))
i=1; offset=0
while [ "$offset" -lt "$size" ]; do
  n=$(( i == 1 ? first : CHUNK ))
  folder=$(printf '%s/c%02d' "$W" "$i"); mkdir -p "$folder"
  if [ "$n" -gt 0 ]; then
    dd if="$GGUF" of="$folder/model.part-$(printf '%03d' "$i")" bs=1M skip=$(( offset >> 20 )) count="$n" status=none
  fi
  offset=$(( offset + (n << 20) )); i=$(( i + 1 ))
done
cat "$W"/c*/model.part-* | cmp - "$GGUF"
rm -rf "$W/whl" "$W/site"
calls=$(ls -d "$W"/c* | wc -l)
du -sh "$W"/c* | sed 's/^/  /'
echo "tracked tree ${TREE_MIB} MiB + chunks of at most ${CHUNK} MiB: ${calls} device calls"
echo
echo "Device calls (run them back to back: a machine left idle over 30 s is given back, with what it held):"
for c in $(seq 1 "$calls"); do
  folder=$(printf '%s/c%02d' "$W" "$c")
  if [ "$c" -eq 1 ]; then
    cmd="mkdir -p /root/stage && cp $folder/* /root/stage/ && bash benchmarks/gpu/train_suite.sh --check"
  elif [ "$c" -lt "$calls" ]; then
    cmd="cp $folder/* /root/stage/"
  else
    cmd="cp $folder/* /root/stage/ && DEADLINE=560 bash benchmarks/gpu/train_suite.sh"
  fi
  echo "  call $c: carry [\"$folder\"], timeout_s $([ "$c" -eq "$calls" ] && echo 600 || echo 120): $cmd"
done
