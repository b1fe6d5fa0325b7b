"""Layouts per second of `moeplan plan`'s search on one core.

Runs the whole search (enumeration, the per-model tables, evaluation of every layout, ranking) for
DeepSeek-V3 on H100s up to --max-gpus 4096 at several batch sizes, best of N runs each, and prints
layouts evaluated per second of wall time. Threads are pinned to one before numpy loads. The busiest-rank
closed form (perf.experts) is cached per process, so later runs are warm; each batch's first run is printed
too (batch 1's is what a fresh `moeplan plan` pays).
Usage: python benchmarks/plan_rate.py [N] [MAX_GPUS]
"""

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import sys  # noqa: E402
import time  # noqa: E402

from moeplan.plan.search import search  # noqa: E402
from moeplan.spec.deployment import Deployment  # noqa: E402
from moeplan.spec.presets import load_preset  # noqa: E402
from moeplan.spec.resolve import ResolvedSpec  # noqa: E402

MODEL, GPU = "deepseek-v3", "h100-sxm"
BATCHES = (1, 8, 64, 256)


def main(runs: int, max_gpus: int) -> None:
    resolved = ResolvedSpec(spec=load_preset(MODEL))
    total_layouts, total_s = 0, 0.0
    print(f"{MODEL} on {GPU}, up to {max_gpus} GPUs, best of {runs} runs, one thread")
    for batch in BATCHES:
        deployment = Deployment(gpu=GPU, batch=batch, context=8192)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            report = search(resolved, deployment, max_gpus, "throughput-per-gpu", keep=10)
            times.append(time.perf_counter() - start)
        best = min(times)
        total_layouts += report.evaluated
        total_s += best
        print(f"batch {batch:>4}: {report.evaluated:,} layouts ({report.feasible:,} fit) in {best:.3f} s = "
              f"{report.evaluated / best:,.0f} layouts/s (first run {times[0]:.3f} s)")
    print(f"overall: {total_layouts / total_s:,.0f} layouts/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3, int(sys.argv[2]) if len(sys.argv) > 2 else 4096)
