"""Cold start of `moeplan estimate` against the cost of importing typer, rich and pydantic.

Each run starts the baseline and every command once, in turn, in fresh interpreters; a command's ratio is
the median over runs of its time divided by that run's baseline (paired, so a drift of the machine's speed
cancels), for the wall time and for the CPU time (user + system, from the kernel's accounting of the child:
on a loaded machine the wall time also counts waiting for a core). Goal: at most 2.5x for the rich report and
2.3x with --json; the floor row is what any typer command with one pydantic model costs. README's first
command does not fit on the default GPU, so its verdict also finds the fewest GPUs that fit (a handful of
scalar estimates); the h200 rows fit and skip it.
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
    "estimate mixtral-8x7b (no fit: fewest GPUs)": ESTIMATE,
    "estimate mixtral-8x7b --json (no fit)": [*ESTIMATE, "--json"],
}
ENV = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}


def run_times(command: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one run of ``command``; exit status 1 (does not fit) is a normal outcome."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, env=ENV)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(command)} exited {process.returncode}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main(runs: int) -> None:
    for command in COMMANDS.values():  # warm the file cache and the bytecode
        run_times(command)
    samples = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, command in COMMANDS.items():
            samples[name].append(run_times(command))
    baselines = samples[BASELINE]
    print(f"{'':45s} {'wall ms':>8s} {'ratio':>6s} {'CPU ms':>8s} {'ratio':>6s}  (medians; ratios paired with the imports)")
    for name, values in samples.items():
        figures = []
        for i in (0, 1):
            ratio = statistics.median(v[i] / b[i] for v, b in zip(values, baselines))
            figures.append(f"{statistics.median(v[i] for v in values) * 1000:8.1f} {ratio:5.2f}x")
        print(f"{name:45s} {' '.join(figures)}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
