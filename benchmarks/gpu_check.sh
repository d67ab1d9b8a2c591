#!/usr/bin/env bash
# Everything issue 4 asks of a CUDA GPU, in one go (GPU time is lent in short slots).
#
#   bash benchmarks/gpu_check.sh HYMENOPTERA_DIR MOBILENET_WEIGHTS OUT_DIR
#
# MOBILENET_WEIGHTS: the studio's converted mobilenetv2_100 safetensors (fp16 is fine; it is
# widened to fp32), for a machine where the offline weights package is not installed.
# Each step has its own time limit and the script goes on when one fails, so one bug
# does not cost the rest of the measurements; the most wanted numbers come first. Results:
# OUT_DIR/bench-*.txt (table + JSON line), OUT_DIR/*.json; run it as `... 2>&1 | tee OUT_DIR/log.txt`.
set -u
DATA=$1 WEIGHTS=$2 OUT=$3
export PYTHONUNBUFFERED=1 STUDIO_HOME=$(mktemp -d)
PY=${PYTHON:-python3}
mkdir -p "$OUT"
step() { echo; echo "=== $1 ($(date +%T))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, timm, pandas, PIL; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'timm', timm.__version__, 'pandas', pandas.__version__, 'pillow', PIL.__version__)"
nproc

step "weights into the studio's cache"
$PY - "$WEIGHTS" <<'EOF'
import sys, torch
from safetensors.torch import load_file, save_file
from studio import paths
state = {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(sys.argv[1]).items()}
save_file(state, str(paths.weights_dir() / "mobilenetv2_100.safetensors"))
print(len(state), "tensors")
EOF

bench() {  # name, timeout, args...
  local name=$1 limit=$2; shift 2
  step "bench $name"
  timeout "$limit" $PY benchmarks/bench.py "$@" --device cuda > "$OUT/bench-$name.txt"
  echo "exit $?"; grep -v '^{' "$OUT/bench-$name.txt"
  tail -1 "$OUT/bench-$name.txt" | $PY -c "import json, sys
for name, run in json.load(sys.stdin)['runs'].items():
    if run.get('timings'): print(name, run['settings']['batch_size'], run['timings'])" 2>/dev/null
}
bench mobilenetv2-hymenoptera 150 "$DATA" --backbone mobilenetv2_100
bench resnet50-hymenoptera 150 "$DATA" --backbone resnet50 --random-weights \
  --only tutorial,frozen,finetune,pass,raw

step "a larger set (6,000 photos made from the example)"
LARGE=$STUDIO_HOME/large
timeout 120 $PY tools/make_scale_data.py "$LARGE" --images 6000 | tail -1
bench mobilenetv2-large 150 "$LARGE" --backbone mobilenetv2_100 --only frozen,finetune,pass --epochs 2
step "train on the GPU (Auto), predict, export with parity"
timeout 120 $PY -m studio train "$DATA" --device cuda --out "$STUDIO_HOME/auto-run" --quiet --json > "$OUT/train-auto.json"
echo "train exit $?"
$PY - "$OUT/train-auto.json" <<'EOF'
import sys, json
run = json.load(open(sys.argv[1]))
print(run["status"], "best", run["best_val_accuracy"], "epochs", [h["epoch_seconds"] for h in run["history"]])
print(run.get("choices", {}).get("depth"))
EOF
timeout 30 $PY -m studio predict "$STUDIO_HOME/auto-run/model.safetensors" "$DATA/val/bees" --json > "$STUDIO_HOME/p.txt"
echo "predict exit $?"; head -2 "$STUDIO_HOME/p.txt"
timeout 90 $PY -m studio export "$STUDIO_HOME/auto-run" --format onnx --out "$STUDIO_HOME/export" --quiet; echo "export exit $?"

step "cached on the GPU vs streamed from disk: same predictions?"
timeout 60 $PY -m studio train "$DATA" --device cuda --freeze all --epochs 3 --out "$STUDIO_HOME/cached" \
  --quiet > /dev/null
timeout 90 $PY -m studio train "$DATA" --device cuda --freeze all --epochs 3 --memory-budget 1 \
  --out "$STUDIO_HOME/streamed" --quiet > /dev/null
$PY - "$STUDIO_HOME" <<'EOF'
import sys, json, pandas as pd
root = sys.argv[1]
a, b = (pd.read_csv(f"{root}/{n}/predictions.csv") for n in ("cached", "streamed"))
same = (a.predicted == b.predicted).mean() if len(a) == len(b) else None
engine = [json.load(open(f"{root}/{n}/status.json")).get("engine", {}).get("pixels") for n in ("cached", "streamed")]
print("pixels:", engine, "same top answer:", same, "rows", len(a), len(b))
EOF

step "done"
