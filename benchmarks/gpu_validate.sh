#!/usr/bin/env bash
# benchmarks/gpu_validate.sh: check `moeplan profile` on one GPU against independent references on the same GPU,
# in one bounded run (BUDGET_S, default 470 s: under 8 minutes on one H100/H200), and print a table of
# moeplan ÷ reference per figure with OK/CHECK (OK: 0.9–1.1 for HBM, copies and GEMM TFLOP/s).
#
# The references live outside the project so that they stay independent of it (../shared/gpu-refs/:
# nvbandwidth v0.8 source, nvbw_lite.cu, refs.py, nccl_smoke.py, compare.py). This script uses a copy of that
# folder in .gpu-refs/ (ignored by git), which is what travels to the GPU machine.
#
#   benchmarks/gpu_validate.sh --prepare   copy REFS_SRC (default /work/shared/gpu-refs) into .gpu-refs/ and, where an
#                                          index is reachable, download the wheels the GPU machine lacks into
#                                          .gpu-refs/.whl (pydantic, typer, rich, ...; cp312, manylinux x86-64)
#   benchmarks/gpu_validate.sh             on the GPU machine: install those wheels offline, run `moeplan profile`
#                                          on every section, the references, then the table
#   benchmarks/gpu_validate.sh --dry-run   without a GPU: runs what a CPU can (moeplan profile --device cpu on its
#                                          sections, the table's plumbing) and lists every step it skipped
#
# Env: OUT (outputs; default /tmp/gpu-validate), BUDGET_S, PY (default python3, or .venv/bin/python in --dry-run).
# Exit code: 0 when every step ran as expected, 1 otherwise (the table and log.txt say which).
set -u -o pipefail
MODE=run
case "${1:-}" in
  --prepare) MODE=prepare ;;
  --dry-run) MODE=dry ;;
  "") ;;
  *) echo "usage: benchmarks/gpu_validate.sh [--prepare | --dry-run]" >&2; exit 2 ;;
esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
cd "$REPO"
REFS=$REPO/.gpu-refs
REFS_SRC=${REFS_SRC:-/work/shared/gpu-refs}
START=$(date +%s)
BUDGET_S=${BUDGET_S:-470}
DEADLINE=$((START + BUDGET_S))
OUT=${OUT:-/tmp/gpu-validate}
W=$OUT/work
rm -rf "$W" && mkdir -p "$W"
LOG=$OUT/log.txt
: > "$LOG"
printf 'step\trc\tseconds\texpected\n' > "$W/steps.tsv"
SKIPPED=()
FAILED=0
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
say() { echo "[$(( $(date +%s) - START ))s] $*" | tee -a "$LOG"; }
skip() { SKIPPED+=("$1: $2"); say "SKIPPED $1: $2"; printf '%s\tskipped\t0\t-\n' "$1" >> "$W/steps.tsv"; }

# step NAME MAX_S EXPECTED_RC CMD...: bounded by MAX_S and by what is left of the budget (20 s kept for the table);
# output to the log, rc and seconds to steps.tsv; `timeout -k` kills what ignores SIGTERM.
step() {
  local name=$1 max=$2 expect=$3; shift 3
  local left=$((DEADLINE - $(date +%s) - 20))
  local limit=$(( max < left ? max : left ))
  if [ "$limit" -lt 10 ]; then skip "$name" "budget spent"; FAILED=1; return 99; fi
  say "== $name (limit ${limit}s)"
  local t0=$(date +%s)
  timeout -k 10 "$limit" "$@" >> "$LOG" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$(( $(date +%s) - t0 ))" "$expect" >> "$W/steps.tsv"
  say "   $name rc=$rc (expected $expect)"
  [ "$rc" = "$expect" ] || FAILED=1
  return $rc
}

copy_refs() {
  if [ ! -f "$REFS/compare.py" ]; then
    if [ -d "$REFS_SRC" ]; then
      mkdir -p "$REFS" && cp -r "$REFS_SRC"/. "$REFS"/ && chmod -R u+w "$REFS"
      say "copied $REFS_SRC into $REFS"
    else
      say "no references: neither $REFS nor $REFS_SRC exists"; return 1
    fi
  fi
}

# ---------------------------------------------------------------- --prepare (a machine with the references and an index)
if [ "$MODE" = prepare ]; then
  copy_refs || exit 1
  ${PY:-python3} -m pip download -q --only-binary :all: --python-version 3.12 --platform manylinux2014_x86_64 \
    --implementation cp -d "$REFS/.whl" "pydantic>=2.11" "typer>=0.12" "rich>=13" "nvidia-ml-py>=12" "numpy>=1.26" "pyyaml>=6" "pytest>=8" \
    && say "wheels in $REFS/.whl" || say "no index reachable: the GPU machine must already have pydantic, typer, rich"
  say "carry .gpu-refs (and nothing else ignored) to the GPU machine, then run benchmarks/gpu_validate.sh there"
  exit 0
fi

copy_refs || FAILED=1
GPU=0
if [ "$MODE" = run ] && command -v nvidia-smi > /dev/null 2>&1 && nvidia-smi -L > /dev/null 2>&1; then GPU=1; fi
if [ "$MODE" = run ] && [ "$GPU" = 0 ]; then say "no GPU answers nvidia-smi: running the dry run instead"; MODE=dry; fi
if [ "$MODE" = dry ] && [ -z "${PY:-}" ] && [ -x "$REPO/.venv/bin/python" ]; then PY=$REPO/.venv/bin/python; fi
PY=${PY:-python3}

# ---------------------------------------------------------------- 0. the machine
{
  echo "== machine"; uname -r; nproc
  [ "$GPU" = 1 ] && nvidia-smi --query-gpu=name,driver_version,memory.total,pcie.link.gen.max,pcie.link.width.max,clocks.max.sm,compute_mode --format=csv
  [ "$GPU" = 1 ] && nvidia-smi topo -m 2>&1 | head -20
  $PY -c "import sys, torch; print('python', sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} >> "$LOG" 2>&1

# ---------------------------------------------------------------- 1. install what is missing, offline
SITE=$OUT/site
if ! $PY -c "import pydantic, typer, rich" 2> /dev/null; then
  if ls "$REFS"/.whl/*.whl > /dev/null 2>&1; then
    step install 90 0 $PY -m pip install -q --no-index --no-deps --no-compile --target "$SITE" "$REFS"/.whl/*.whl
  else
    say "pydantic/typer/rich missing and no wheels in $REFS/.whl (run --prepare where an index is reachable)"; FAILED=1
  fi
fi
export PYTHONPATH=$SITE:$REPO${PYTHONPATH:+:$PYTHONPATH}
M="$PY -m moeplan"
step import 60 0 $PY -c "import moeplan.cli.app, moeplan.profile.runner, torch; print('moeplan imports')"

# ---------------------------------------------------------------- 2. moeplan profile, every section
if [ "$GPU" = 1 ]; then
  COUNT=$(nvidia-smi -L | wc -l)
  step profile_all 200 0 bash -c "$M profile --gpus 0 --model mixtral-8x7b --only topo,hbm,gemm,h2d,p2p,a2a --out $W/A.jsonl --save $W/A.calib.json --nvml-record $W/nvml-box.json --json > $W/A.json"
  step profile_deepseek_gemm 120 0 bash -c "$M profile --gpus 0 --model deepseek-v3 --ep 8 --only topo,gemm --out $W/B.jsonl --json > $W/B.json"
  if [ "$COUNT" -ge 2 ]; then
    step profile_p2p_a2a 90 0 bash -c "$M profile --gpus 0,1 --model mixtral-8x7b --only topo,p2p,a2a --json > $W/C.json"
  else
    skip profile_p2p_a2a "one GPU: p2p and the NCCL all-to-all need two (the a2a worker runs on one rank in nccl_smoke)"
  fi
else
  step profile_cpu 120 0 bash -c "$M profile --device cpu --procs 2 --model mixtral-8x7b --only topo,hbm,gemm,h2d,p2p,a2a --iters 2 --warmup 0 --out $W/A.jsonl --save $W/A.calib.json --json > $W/A.json"
  skip profile_gpu "no GPU: h2d, p2p, CUDA graphs, fp8 paths, spin-kernel copies and NCCL are not exercised"
  skip profile_deepseek_gemm "no GPU"
fi

# ---------------------------------------------------------------- 3. copy references: nvbandwidth, else its method in nvbw_lite
if [ "$GPU" = 1 ]; then
  NVB_TESTS="device_local_copy host_to_device_memcpy_ce device_to_host_memcpy_ce host_to_device_bidirectional_memcpy_ce host_to_device_memcpy_sm"
  NVB=""
  if [ -x "$REFS/nvbandwidth" ] && "$REFS/nvbandwidth" --help > /dev/null 2>&1; then NVB=$REFS/nvbandwidth; fi
  if [ -z "$NVB" ] && [ -f "$REFS/nvbandwidth-v0.8-src.tar.gz" ] && [ -f /usr/include/boost/program_options.hpp ] && command -v cmake > /dev/null; then
    mkdir -p "$W/nvbw" && tar -xzf "$REFS/nvbandwidth-v0.8-src.tar.gz" -C "$W/nvbw" \
      && step build_nvbandwidth 150 0 bash -c "cd $W/nvbw/nvbandwidth* && cmake -S . -B build -DCMAKE_CUDA_ARCHITECTURES=90 > /dev/null && cmake --build build -j > /dev/null" \
      && NVB=$(ls -d "$W"/nvbw/nvbandwidth*/build/nvbandwidth)
  fi
  if [ -n "$NVB" ]; then
    step nvbandwidth 90 0 bash -c "$NVB -j -b 1024 -t $NVB_TESTS > $W/nvbw.json"
  elif command -v nvcc > /dev/null; then
    step build_nvbw_lite 90 0 nvcc -O2 -arch=sm_90 -o "$W/nvbw_lite" "$REFS/nvbw_lite.cu" \
      && step nvbw_lite 60 0 bash -c "$W/nvbw_lite 1024 16 3 > $W/nvbw_lite.jsonl"
  else
    skip nvbandwidth "no runnable nvbandwidth in $REFS, no Boost to build it, no nvcc for nvbw_lite"; FAILED=1
  fi
  # ------------------------------------------------------------ 4. torch-only references, 5. the NCCL worker on one rank
  step torch_refs 150 0 $PY "$REFS/refs.py" "$W/refs.json"
  step nccl_smoke 90 0 $PY "$REFS/nccl_smoke.py" "$W/nccl_smoke.json"
  # ------------------------------------------------------------ the project's GPU tests, with what budget is left
  if $PY -c "import pytest" 2> /dev/null; then
    step pytest_gpu 150 0 $PY -m pytest -q -p no:cacheprovider tests/test_profile_gpu.py
  else
    skip pytest_gpu "pytest is not installed (add it to the wheels with --prepare)"
  fi
else
  skip nvbandwidth "needs a GPU"
  skip torch_refs "needs a GPU (refs.py: gated copies, 8192³ matmul, FFN in CUDA graphs)"
  skip nccl_smoke "needs a GPU (NCCL)"
  skip pytest_gpu "needs a GPU (tests/test_profile_gpu.py)"
fi

# ---------------------------------------------------------------- 6. the table: moeplan ÷ reference, OK/CHECK
step compare 30 0 bash -c "$PY $REFS/compare.py $W > $OUT/summary.txt"
tar -czf "$OUT/results.tar.gz" --exclude=./nvbw -C "$W" . 2>> "$LOG"
cat "$OUT/summary.txt" 2> /dev/null
echo
if [ "$MODE" = dry ]; then
  echo "DRY RUN on $(uname -n): no GPU here, so this is NOT a GPU validation; the ratios above are n/a or CPU figures."
fi
if [ "${#SKIPPED[@]}" -gt 0 ]; then
  echo "skipped:"
  printf '  - %s\n' "${SKIPPED[@]}"
fi
say "done in $(( $(date +%s) - START ))s; outputs in $OUT (summary.txt, log.txt, results.tar.gz)"
exit "$FAILED"
