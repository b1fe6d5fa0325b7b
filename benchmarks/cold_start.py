"""Cold start of `moeplan estimate` against the cost of importing typer, rich and pydantic.

Runs both commands alternately N times in fresh interpreters and prints the medians and their ratio
(the aim is 3x or less). Usage: python benchmarks/cold_start.py [N]
"""

import statistics
import subprocess
import sys
import time

COMMANDS = {
    "import typer, rich, pydantic": [sys.executable, "-c", "import typer, rich, pydantic"],
    "moeplan estimate mixtral-8x7b": [sys.executable, "-m", "moeplan", "estimate", "mixtral-8x7b"],
    "moeplan estimate mixtral-8x7b --json": [sys.executable, "-m", "moeplan", "estimate", "mixtral-8x7b", "--json"],
}


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(runs: int) -> None:
    samples = {name: [] for name in COMMANDS}
    for _ in range(runs):
        for name, command in COMMANDS.items():
            samples[name].append(wall_time(command))
    baseline = statistics.median(samples["import typer, rich, pydantic"])
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:40s} median {median * 1000:7.1f} ms  ({median / baseline:4.2f}x the imports)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10)
