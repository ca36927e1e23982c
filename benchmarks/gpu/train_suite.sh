#!/usr/bin/env bash
# Issue 18 on a lent GPU, one call: SFT + GRPO + multi-turn GRPO + evaluation of every stage + report
# (benchmarks/gpu/train_pipeline.py) for one model, from what benchmarks/gpu/train_stage.sh staged into
# $STAGE (site.tar.xz, data.tar.xz, stage.json, model.part-*). Results come back in $OUT (at most 8
# files of 16 MiB): results.tar.xz (results.md/json, per-question accuracy files, curves, run records,
# manifests, logs, timeline) and adapter_<stage>.tar.xz.part-* (the trained adapters, bf16, in parts).
#
#   bash benchmarks/gpu/train_suite.sh --check      # only unpack the packages and import them (call 1)
#   DEADLINE=560 bash benchmarks/gpu/train_suite.sh  # the run (last call; the device's limit is 600 s)
# Env: DEADLINE (s, the pipeline from start to report; default 560), PRESETS (default qwen05b),
# STAGES (default grpo,mt), MODEL (default: the model's registry name), STAGE (default /root/stage),
# OUT (default /tmp/out).
set -u
T0=$(date +%s)
STAGE=${STAGE:-/root/stage}
OUT=${OUT:-/tmp/out}
RUN=/tmp/run
mkdir -p "$OUT" /tmp/site /tmp/data /tmp/cache/models
say() { echo "[suite $(($(date +%s) - T0))s] $*" | tee -a "$OUT/suite.log"; }
# The checkout's folders under their import name (sqlr1.agent is agent/, ...; no install on the device).
mkdir -p /tmp/ns/sqlr1 && for p in agent mcp_server training tui; do ln -sfn "$PWD/$p" /tmp/ns/sqlr1/$p; done
export PYTHONPATH=/tmp/site:/tmp/ns:$PWD PYTHONUNBUFFERED=1 SQLR1_DATA=/tmp/data SQLR1_CACHE=/tmp/cache HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false TRANSFORMERS_VERBOSITY=error TRL_EXPERIMENTAL_SILENCE=1 OMP_NUM_THREADS=2

[ -d /tmp/site/trl ] || tar xJf "$STAGE/site.tar.xz" -C /tmp/site
python3 - <<'EOF' 2>&1 | tee -a "$OUT/suite.log"
import importlib, torch
for name in ("transformers", "trl", "peft", "accelerate", "datasets", "huggingface_hub", "sqlglot", "apsw", "pydantic"):
    module = importlib.import_module(name)
    print(name, getattr(module, "__version__", "?"), module.__file__.split("/site-packages/")[-1][:40])
import sqlr1.training.trainers, training.multiturn, mcp_server.backends.loading  # noqa: F401 (the whole chain imports)
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name() if torch.cuda.is_available() else "")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || { say "packages do not import: fix the staged wheels"; exit 1; }
if [ "${1:-}" = "--check" ]; then say "packages import"; exit 0; fi

tar xJf "$STAGE/data.tar.xz" -C /tmp/data
file=$(python3 -c "import json; print(json.load(open('$STAGE/stage.json'))['model_file'])")
sha=$(python3 -c "import json; print(json.load(open('$STAGE/stage.json'))['sha256'])")
cat "$STAGE"/model.part-* > "/tmp/cache/models/$file"
echo "$sha  /tmp/cache/models/$file" | sha256sum -c --quiet || { say "model parts do not add up to $file"; exit 1; }
echo "$sha" > "/tmp/cache/models/$file.sqlr1-verified"  # the model registry's mark of a verified assembly
say "unpacked; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader)"
# The base by its registry name, so that the manifests and adapters name a base any machine resolves
# (mcp_server/backends/model_registry.py, issue 15); MODEL=/path/to.gguf runs without it, but its
# checkpoints then name that path.
MODEL=${MODEL:-$(python3 -c "
from sqlr1.mcp_server.backends import model_registry as r
print(next(m.name for m in r.MODELS.values() if m.file_name == '$file'))" 2>/dev/null)}
[ -n "$MODEL" ] || { say "no model registry entry for $file: merge issue 15's registry or set MODEL=/tmp/cache/models/$file"; exit 1; }
( while sleep 30; do say "gpu: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"; done ) &
MON=$!
python3 benchmarks/gpu/train_pipeline.py --model "$MODEL" --presets "${PRESETS:-qwen05b}" --out "$RUN" \
    --deadline-s "$(( ${DEADLINE:-560} - ($(date +%s) - T0) ))" --stages "${STAGES:-grpo,mt}" 2>&1 | tee -a "$OUT/suite.log"
kill $MON 2>/dev/null
say "packing"
for log in "$RUN"/logs/*.log; do tail -c 200000 "$log" > "$log.tail" && mv "$log.tail" "$log"; done
(cd "$RUN" && tar cJf "$OUT/results.tar.xz" results.md results.json timeline.json acc curves logs \
    runs/*/run.json runs/*/dropped.jsonl runs/*/training_curves.png models/*/sqlr1_manifest.json 2>/dev/null)
for s in grpo mt; do
  [ -d "$RUN/models/$s" ] && tar cJf - -C "$RUN/models" "$s" | split -b 15M - "$OUT/adapter_$s.tar.xz.part-"
done
ls -la "$OUT" | tee -a "$OUT/suite.log"
cat "$RUN/results.md" 2>/dev/null
