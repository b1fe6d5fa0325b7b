"""Cold start of `moeplan estimate` against the cost of importing typer, rich and pydantic.

Each run starts the baseline and every command once, in turn, in fresh interpreters; a command's ratio is
the median over runs of its time divided by that run's baseline (paired, so a drift of the machine's speed
cancels). Goal: at most 2.5x for the rich report and 2.3x with --json. README's first command does not fit
on the default GPU, so its verdict also runs `moeplan plan`'s search (numpy); the h200 rows fit and skip it.
PYTHONDONTWRITEBYTECODE is cleared so an editable install is not recompiled on every start.
For whole-process figures with CPU time and memory, time the same commands with `farm-bench -n 20 --vs
"python -c 'import typer, rich, pydantic'" -- python -m moeplan estimate mixtral-8x7b`.
Usage: python benchmarks/cold_start.py [RUNS]
"""

import os
import statistics
import subprocess
import sys
import time

BASELINE = "import typer, rich, pydantic"
ESTIMATE = [sys.executable, "-m", "moeplan", "estimate", "mixtral-8x7b"]
COMMANDS = {
    BASELINE: [sys.executable, "-c", BASELINE],
    "estimate mixtral-8x7b --gpu h200": [*ESTIMATE, "--gpu", "h200"],
    "estimate mixtral-8x7b --gpu h200 --json": [*ESTIMATE, "--gpu", "h200", "--json"],
    "estimate mixtral-8x7b (no fit: plan search)": ESTIMATE,
    "estimate mixtral-8x7b --json (no fit)": [*ESTIMATE, "--json"],
}
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=ENV)
    return time.perf_counter() - start


def main(runs: int) -> None:
    for command in COMMANDS.values():  # warm the file cache and the bytecode
        wall_time(command)
    samples = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, command in COMMANDS.items():
            samples[name].append(wall_time(command))
    baselines = samples[BASELINE]
    for name, values in samples.items():
        ratio = statistics.median(v / b for v, b in zip(values, baselines))
        print(f"{name:45s} median {statistics.median(values) * 1000:7.1f} ms  paired ratio {ratio:4.2f}x the imports")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
