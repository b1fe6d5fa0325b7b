"""Cold start of `moeplan estimate` against the cost of importing typer, rich and pydantic.

Each run starts the baseline and every command once, in turn, in fresh interpreters; a command's ratio is
the median over runs of its time divided by that run's baseline (paired, so a drift of the machine's speed
cancels). Goal: at most 2.5x for the rich report and 2.3x with --json; the floor row is what any typer command
with one pydantic model costs. README's first command does not fit
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
FLOOR = ("import typer, rich.console, pydantic\n"
         "class A(pydantic.BaseModel):\n    x: int\n"
         "app = typer.Typer()\n"
         "@app.command()\ndef f(x: int = 1):\n    A(x=x)\n"
         "app(['--x', '2'], standalone_mode=False)")
"""The least a typer CLI with rich output and one pydantic model costs: `import pydantic` and `import rich` alone
load neither pydantic's schema builder nor rich's console, which any such command needs."""
ESTIMATE = [sys.executable, "-m", "moeplan", "estimate", "mixtral-8x7b"]
COMMANDS = {
    BASELINE: [sys.executable, "-c", BASELINE],
    "floor: a one-model typer command": [sys.executable, "-c", FLOOR],
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
