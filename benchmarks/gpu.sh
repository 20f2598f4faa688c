#!/usr/bin/env bash
# cvrl on a GPU machine, as one prepared run (never CI; CI has no GPU):
#   1. cvrl's Python packages that the machine's image lacks, from wheels
#      fetched beforehand by scripts/gpu_wheels.sh into .whl/ (no network
#      there); jax with CUDA, flax, optax and orbax come with the image;
#   2. the model / layer / dense-embedding / train-step tests on the GPU (the
#      ones that need 8 simulated CPU devices are left to CI);
#   3. benchmarks/gpu_step.py: the paper config's step at global batches of
#      8, 64 and 256 triplets (steps/s, MFU), the input pipeline on a small
#      generated dataset, dense embedding throughput.
# With the device tool: run(command="bash benchmarks/gpu.sh", carry=[".whl"]).
# Outputs go to $OUT (or ./gpu_out) as gpu_tests.log and gpu_step.md.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-gpu_out}"; mkdir -p "$out"
export PYTHONUNBUFFERED=1
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
python3 -c "import jax; print(jax.__version__, jax.devices())" | tee -a "$out/gpu.txt"

# 2. Tests on the GPU: one device, so the 8-device pmap tests stay on CI.
timeout 240 python3 -m pytest -p no:xdist -p no:cacheprovider -q -x \
    -o addopts="" tests/test_models.py tests/test_layers.py \
    tests/test_sliding.py tests/test_losses.py \
    -k "not over_devices" 2>&1 | tee "$out/gpu_tests.log" | tail -5

# 3. The benchmark, on a generated 4-piece dataset for the pipeline check.
python3 - <<'PY'
import sys; sys.path.insert(0, 'tests')
import helpers
from cvrl import audio
from cvrl.data import prepare
from configs import cv
root = helpers.make_cvrl_dataset('/tmp/gpu_data', pieces=('p1', 'p2', 'p3', 'p4'))
prepare.prepare(root, cv.get_config('paper').features, progress=False)
PY
timeout 300 python3 benchmarks/gpu_step.py --variant=paper \
    --batches=8,64,256 --steps=10 --data=/tmp/gpu_data --workers=8 \
    --embed_seconds=600 2>&1 | grep -v "^[IW][0-9]" | tee "$out/gpu_step.md"
