#!/usr/bin/env bash
# The GPU checks of the runtime in one command, for a machine that has an NVIDIA GPU but
# maybe no network: the GPU tests (cuda parity, graph replay =
# eager, half-precision bounds; the fused Triton step compiled; tensorrt where installed),
# then the GPU benchmark (cuda and triton backends, eager and graph replay).
#
#   OUT=/some/dir bash scripts/gpu_check.sh [quick]
#
# Writes under $OUT (default bench/results): gpu-env.txt (GPU, driver, versions), the
# test log, and the benchmark's gpu-<card>-<date>.json. Python packages the machine lacks
# are installed from ./wheelhouse when there is one (pip download them beforehand on a
# machine with network for the device's Python version); nothing is downloaded here.
# "quick" runs the benchmark's smoke settings (a few minutes) instead of the stages; FULL=1
# adds a third stage. Measured on an H200 (torch 2.11, Triton 3.6): the tests 30 s; with
# --quick, triton at fp32 + bf16 17 s, cuda at fp32 about 1.5 min (its eager loop is slow);
# cuda bf16 did not finish in the time that was left. The full stages have not run yet.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-bench/results}"
mkdir -p "$out"
py="${PYTHON:-python3}"

{
  date -u
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 || true
  "$py" -c "import sys, torch; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'cuda', torch.version.cuda, 'gpu',
torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)"
} > "$out/gpu-env.txt" 2>&1
cat "$out/gpu-env.txt"

missing=$("$py" - <<'EOF'
import importlib.util
# what the GPU tests and bench.gpu import (soundfile, numba etc. are not needed here)
need = ["numpy", "torch", "onnx", "onnxruntime", "safetensors", "tqdm", "pytest"]
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
  echo "missing Python packages: $missing"
  if [ -d wheelhouse ]; then
    "$py" -m pip install -q --no-index --find-links wheelhouse $missing || exit 3
  else
    echo "no ./wheelhouse to install them from: pip download them there first" >&2
    exit 3
  fi
fi
# The package itself, without touching dependencies (works offline).
"$py" -m pip install -q --no-deps --no-build-isolation -e . || exit 3

"$py" -m pytest -q -rs tests/runtime/test_gpu_backend.py tests/runtime/test_triton_step.py \
  2>&1 | tee "$out/gpu-tests.log"
tests=${PIPESTATUS[0]}

# The benchmark in stages, most telling first, each writing its own JSON as it goes, so a
# run cut short by a time limit keeps what it measured. BENCH_ARGS="..." runs one stage
# with those arguments instead, e.g. BENCH_ARGS="--backends triton --precision bf16".
bench=0
stage() {
  echo "== python -m bench.gpu $*" | tee -a "$out/gpu-bench.log"
  "$py" -m bench.gpu --out "$out" "$@" 2>&1 | tee -a "$out/gpu-bench.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || bench=$rc
}
if [ -n "${BENCH_ARGS:-}" ]; then
  read -r -a args <<< "$BENCH_ARGS"
  stage "${args[@]}"
elif [ "${1:-}" = quick ]; then
  stage --quick --precision fp32,bf16
else
  stage --backends triton --precision fp32,bf16 --triton-launch 16x8,32x8  # the headline
  stage --backends cuda --precision fp32               # torch step: eager vs graph replay
  if [ "${FULL:-0}" = 1 ]; then  # a few more minutes: the torch step in half precision
    stage --backends cuda,tensorrt --precision fp16,bf16 --no-eager
  fi
fi
echo "gpu tests exit $tests, gpu bench exit $bench"
[ "$tests" = 0 ] && [ "$bench" = 0 ]
