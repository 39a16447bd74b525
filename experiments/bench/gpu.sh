#!/usr/bin/env bash
# Training throughput on this machine's CUDA GPU: supernet (sandwich) and static train steps
# in fp32 and bf16 autocast, channels-last, printed as img/s and bf16/fp32 ratios; at most
# 4 minutes. Uses the torch already installed here (any recent version) and nothing beyond
# this repository's source and PyYAML (from WHEELS=DIR when it is not installed).
#
#   experiments/bench/gpu.sh            # on a CUDA machine
#   experiments/bench/gpu.sh --smoke    # a dry run on the CPU (tiny space, two steps each)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PYTHON:-python3}
if ! "$PY" -c "import yaml" 2>/dev/null; then
  if [ -n "${WHEELS:-}" ]; then
    deps=$(mktemp -d)
    "$PY" -m pip install -q --no-index --find-links "$WHEELS" --target "$deps" pyyaml
    export PYTHONPATH="$deps${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "gpu.sh: needs PyYAML (pip install pyyaml, or WHEELS=DIR holding its wheel)" >&2
    exit 2
  fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec timeout 240 "$PY" experiments/bench/gpu.py "$@"
