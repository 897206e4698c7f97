#!/usr/bin/env bash
# The GPU check (issue 7): memory estimate vs measured peaks, 4/6/8 GB budgets, throughput and MFU.
#
#   bash benchmarks/gpu_check.sh            # on a CUDA machine; OUT=dir keeps the full results
#   bash benchmarks/gpu_check.sh --quick    # a tiny architecture, to test the script (CPU is fine)
#
# Needs torch (CUDA), transformers, peft, accelerate. bitsandbytes, when missing, is installed from a
# carried wheel in wheels/ (`pip download bitsandbytes --no-deps -d wheels/`) into a scratch folder:
# the machine needs no network. Finishes in under 8 minutes on an H100/H200; each case's failure
# (an OOM above all) is a row of the table, not the end of the check.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ] && ! $PY -c "import torch" 2>/dev/null && PY=.venv/bin/python

if ! $PY -c "import bitsandbytes" 2>/dev/null; then
  if ls wheels/bitsandbytes-*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/llmc-site \
      wheels/bitsandbytes-*.whl && export PYTHONPATH="/tmp/llmc-site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "bitsandbytes is missing and no wheel is in wheels/: the 4-bit cases are skipped." >&2
  fi
fi
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  timeout "${GPU_CHECK_TIMEOUT:-470}" $PY benchmarks/gpu_bench.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
else
  timeout "${GPU_CHECK_TIMEOUT:-470}" $PY benchmarks/gpu_bench.py "$@"
fi
