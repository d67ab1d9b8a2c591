#!/usr/bin/env bash
# The redesigned engine (issue 16) on a CUDA GPU, in one call (GPU time is lent in short slots):
# the engine's own tests with the GPU as the default device, then the bench on made data.
#
#   bash benchmarks/gpu_check_engine.sh SITE OUT_DIR
#
# SITE: a folder put on PYTHONPATH that holds the offline weight package(s) of requirements-weights.txt
# (copied from a development machine's site-packages), for a machine where they cannot be installed.
# Each step has its own time limit and the script goes on when one fails. Results: OUT_DIR/*.
set -u
SITE=$1 OUT=$2
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD:$SITE STUDIO_HOME=$(mktemp -d)
PY=${PYTHON:-python3}
mkdir -p "$OUT"
step() { echo; echo "=== $1 ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch, timm; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'timm', timm.__version__, \
'gpu', torch.cuda.get_device_name())"
nproc

step "engine tests, CUDA the default device"
# the stages, the one loop, bit-identical resume, the batched predictor and the Python API
timeout 200 $PY -m pytest -q -p no:cacheprovider -m "not browser" --durations=8 \
  tests/test_training.py tests/test_resume.py tests/test_api.py tests/test_predict_batch.py \
  > "$OUT/tests.txt" 2>&1
echo "pytest exit $?"; grep -E "passed|failed|error|FAILED|ERROR" "$OUT/tests.txt" | tail -25

bench() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  step "bench $name"
  timeout "$limit" $PY benchmarks/bench.py "$@" --device cuda --quiet > "$OUT/bench-$name.txt"
  echo "exit $?"; grep -v '^{' "$OUT/bench-$name.txt"
}
step "6,000 photos made from the example (as the H100 check of stop 13)"
LARGE=$STUDIO_HOME/large
timeout 90 $PY tools/make_scale_data.py "$LARGE" --images 6000 | tail -1
bench mobilenetv2-large 150 "$LARGE" --backbone mobilenetv2_100 --only frozen,finetune,pass,raw --epochs 2
bench mobilenetv2-example 60 assets/example/hymenoptera --backbone mobilenetv2_100 --only frozen,finetune,auto --epochs 2
step "done"
