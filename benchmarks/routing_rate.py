"""Tokens per second of the seeded routing simulation (zipf routing, DeepSeek-V3's 256 experts, top-8).

The simulation that `--routing zipf:S` runs; replaces the wall-clock assertion that once lived in the tests.
Prints tokens routed per second, best of N runs, for several token counts. Threads are pinned to one.
Usage: python benchmarks/routing_rate.py [N]
"""

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_variable] = "1"

import sys  # noqa: E402
import time  # noqa: E402

from moeplan.traffic.routing import simulate_routing  # noqa: E402

EXPERTS, TOP_K = 256, 8
TOKENS = (10_000, 100_000, 1_000_000)


def main(runs: int) -> None:
    print(f"zipf:1.0 routing of {EXPERTS} experts, top-{TOP_K}, best of {runs} runs, one thread")
    for tokens in TOKENS:
        best = float("inf")
        for seed in range(runs):
            start = time.perf_counter()
            simulate_routing(tokens, EXPERTS, TOP_K, "zipf:1.0", seed=seed)
            best = min(best, time.perf_counter() - start)
        print(f"{tokens:>10,} tokens: {best:7.3f} s  ({tokens / best:,.0f} tokens/s)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
