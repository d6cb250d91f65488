#!/usr/bin/env bash
# vlatext's device check: one prepared run on a lent GPU machine (torch, transformers, peft,
# nvcc, cmake; no internet, no weights, no Node needed), under 8 minutes. It builds the CUDA
# engine, checks every CUDA kernel and whole small models against the CPU backend, the decoder
# against the transformers goldens, a random-weight Qwen2.5-VL-3B-Instruct-config model against
# transformers, and measures LoRA training and 56-integer chunk latency against HF. Every stage
# is time-boxed; report.json and report.md are written after each one (scripts/gpu-check/driver.py).
#
#   bash scripts/gpu-check.sh [driver options]        writes into $OUT (or ./gpu-check-out)
#   bash scripts/gpu-check.sh --cpu-only              the same check on a machine without a GPU
#                                                     (small model, CPU backend): tests the check itself
#   bash scripts/gpu-check.sh --help                  the driver's options
set -uo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-$PWD/gpu-check-out}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1
# CMake finds nvcc on PATH (or through CUDACXX)
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
py="$(command -v python3 || true)"
if [ -z "$py" ]; then
  echo "gpu-check: python3 (with torch, transformers, peft, safetensors, numpy) is needed" >&2
  exit 2
fi
# The whole run stays under 8 minutes: the driver's budget is 460 s, this is the backstop.
timeout --signal=TERM --kill-after=10 475 "$py" scripts/gpu-check/driver.py --out "$out" "$@" 2>&1 | tee "$out/console.txt"
rc=${PIPESTATUS[0]}
[ -f "$out/report.md" ] && echo "gpu-check: report in $out/report.md"
exit "$rc"
