#!/usr/bin/env bash
# Every GPU benchmark in one prepared run on a lent GPU machine (the `device` tool's `run`).
#
# The GPU image has Python 3.12, jax (CUDA), flax, optax, orbax, numpy, scipy, pyarrow, click,
# rich and matplotlib, but not astropy, fitsio, speclite, zlib-ng or deflate, and it reaches no registry;
# ../shared does not travel either. jaxvac itself runs installed (jaxvac.kernels is the repo's
# kernels/ folder, mapped at install). So, here, once per session:
#     make gpu-bundle        # wheels (jaxvac's too) -> .whl/, the real spectra -> .lamost/ (git-ignored)
# then one device call:
#     run(command="bash bench/gpu.sh", carry=[".whl", ".lamost"], timeout_s=540)
# Arguments are passed to every benchmark (e.g. --quick). The JSON results and logs come back
# in $OUT (keep them as bench/results/gpu/<script>.json); each benchmark has its own time limit
# so that one that hangs leaves the others their time. jax there is newer than the pin here
# (0.11 vs 0.10); the code runs on both (checked on the CPU with the same versions).
set -uo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH="/tmp/site" PYTHONUNBUFFERED=1 JAXVAC_LAMOST="$PWD/.lamost"
out="${OUT:-bench/results/gpu}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no nvidia-smi"
python3 -c "import jax, jaxvac.kernels; print('jax', jax.__version__, jax.devices())" || exit 1
for b in bench_infer:120 bench_normalize:90 bench_pipeline:210 bench_train:120; do
    name=${b%%:*} limit=${b##*:}
    echo "== $name (limit ${limit} s)"
    timeout "$limit" python3 "bench/$name.py" "$@" 2>&1 | tee "$out/$name.log" | tail -40
    [ -f "bench/results/$name.json" ] && cp "bench/results/$name.json" "$out/"
done
