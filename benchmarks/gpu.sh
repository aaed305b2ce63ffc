#!/usr/bin/env bash
# The one GPU check (issue 17): GPU tests, train-step and ensemble benchmarks, reproduction
# slices, in under 9 minutes on one H100/H200; writes OUT/gpu.json and OUT/gpu.txt.
#
#   bash benchmarks/gpu.sh [--dry] [--out DIR] [--budget SECONDS] [--papers NAME ...]
#
# OUT is --out, else $OUT_DIR, else runs/gpu. --dry runs the same pipeline on the CPU at toy
# sizes (what tests/test_gpu_script.py runs). The Python is $ICLREG_PYTHON, else .venv/bin/python,
# else python3. Details: benchmarks/gpu.py.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if [[ -n "${ICLREG_PYTHON:-}" ]]; then
    py="$ICLREG_PYTHON"
elif [[ -x .venv/bin/python ]]; then
    py=".venv/bin/python"
else
    py="python3"
fi
dry=0
for arg in "$@"; do
    [[ "$arg" == "--dry" ]] && dry=1
done
if [[ "$dry" == 0 ]] && ! "$py" -c 'import sys, torch; sys.exit(not torch.cuda.is_available())'; then
    echo "gpu.sh: no CUDA device visible to $py; on a CPU machine run: bash benchmarks/gpu.sh --dry" >&2
    exit 2
fi
exec "$py" benchmarks/gpu.py "$@"
