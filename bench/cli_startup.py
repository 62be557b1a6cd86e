"""How long ``avsr --help`` (and a subcommand's help) takes, and how much memory it peaks at.

    python -m bench.cli_startup [--repeats 7]

Each command runs in a fresh interpreter, ``--repeats`` times; printed: the median wall time and
the median peak RSS of the child process, beside a bare ``python -c pass`` and ``import torch``
measured in the same run (the floor, and what the CLI cost when it imported torch for a help text).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

AVSR = str(Path(sys.executable).with_name("avsr"))  # the installed console script

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "avsr --help": [AVSR, "--help"],
    "avsr transcribe --help": [AVSR, "transcribe", "--help"],
    "avsr prepare lrs3 --help": [AVSR, "prepare", "lrs3", "--help"],
    "python -c 'import torch'": [sys.executable, "-c", "import torch"],
}


def run_once(command: list[str]) -> tuple[float, float]:
    """Wall seconds and the child's peak RSS in MB (``wait4``'s rusage counts this child alone)."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if status != 0:
        raise SystemExit(f"{' '.join(command)}: exit status {status}")
    return seconds, usage.ru_maxrss / 1024  # Linux reports kilobytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"{'command':28s} {'median s':>9s} {'peak RSS MB':>12s}   ({args.repeats} runs each)")
    for name, command in COMMANDS.items():
        runs = [run_once(command) for _ in range(args.repeats)]
        print(f"{name:28s} {statistics.median(r[0] for r in runs):9.3f} {statistics.median(r[1] for r in runs):12.1f}")


if __name__ == "__main__":
    main()
