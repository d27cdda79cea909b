#!/usr/bin/env bash
# The GPU measurements of the README's Speed section, in one go on a CUDA machine (a lent one has no internet:
# wheels it lacks can wait in .whl/, see below). Writes everything under OUT (default ./gpu-out):
#   env.txt        GPU, driver, torch
#   tests.log      the test suite, the CUDA tests (tests/test_cuda.py) included
#   bench.jsonl    `repro bench` at paper size (256x256, width 64, batch 4): pred and recon in fp32 and bf16, pred
#                  compiled and pred without CUDA graphs
#   profile.txt    torch.profiler's top entries of the one-frame test-time update (pred, fp32)
# Usage: scripts/gpu-measure.sh [tests|bench|profile|variants|table5]...   (default: tests bench profile)
# table5: `repro sweep table5` on the synthetic default with exec.device=cuda, timed (minutes).
set -uo pipefail
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
PYTHON=${PYTHON:-python3}
export PYTHONUNBUFFERED=1

if compgen -G ".whl/*.whl" >/dev/null; then  # packages the machine lacks (openTSNE, tomli-w), carried as wheels
    $PYTHON -m pip install -q --no-index --no-deps .whl/*.whl || exit 2
fi
$PYTHON -m pip install -q --no-deps --no-build-isolation -e . || exit 2

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader; $PYTHON -c \
    "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name())"; \
    nproc; } | tee "$OUT/env.txt"

run_tests() {
    # Ray is not on a lent machine: its executor's tests are left out there.
    local ignore=()
    $PYTHON -c "import ray" 2>/dev/null || ignore=(--ignore tests/test_ray_executor.py)
    PIP_NO_BUILD_ISOLATION=0 $PYTHON -m pytest -n 8 -q "${ignore[@]}" 2>&1 | tee "$OUT/tests.log" | tail -15
}

run_bench() {
    : >"$OUT/bench.jsonl"
    local common=(--device cuda --size 256 --width 64 --batch 4 --seconds 3)
    for task in pred recon; do
        for precision in fp32 bf16; do
            repro bench "${common[@]}" --task "$task" --precision "$precision" | tee -a "$OUT/bench.jsonl"
        done
    done
    repro bench "${common[@]}" --task pred --precision fp32 --compile | tee -a "$OUT/bench.jsonl"
    repro bench "${common[@]}" --task pred --precision fp32 --set exec.cuda_graphs=false | tee -a "$OUT/bench.jsonl"
}

run_variants() {
    $PYTHON scripts/gpu_eval_variants.py 2>&1 | tee "$OUT/variants.txt"
    for task in pred recon; do
        for precision in fp32 bf16; do
            repro bench --device cuda --task "$task" --size 256 --width 64 --batch 4 --seconds 3 \
                --precision "$precision" --set exec.deterministic=false | tee -a "$OUT/bench-fastest.jsonl"
        done
    done
}

run_profile() {
    $PYTHON scripts/profile_update.py 2>&1 | tee "$OUT/profile.txt" | head -40
}

run_table5() {
    local start=$SECONDS
    timeout "${TABLE5_SECONDS:-3000}" repro sweep table5 --runs /tmp/gpu-runs --set exec.device=cuda \
        --out "$OUT/table5" 2>&1 | tr '\r' '\n' | tail -40
    echo "table5 on cuda: $((SECONDS - start)) s" | tee -a "$OUT/env.txt"
}

for step in "${@:-tests bench profile}"; do
    for s in $step; do "run_$s"; done
done
