"""Start-up cost of `deployctl --help`, as a ratio to `python -c "import click"`.

Both are measured in the same run, interleaved, so machine noise hits both
alike. Usage: .venv/bin/python benchmarks/bench_cli.py [--runs N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def wall(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    python = sys.executable
    script = Path(python).with_name("deployctl")
    help_cmd = [str(script), "--help"] if script.exists() else [python, "-m", "deployctl", "--help"]
    baseline_cmd = [python, "-c", "import click"]
    wall(help_cmd), wall(baseline_cmd)  # warm the page cache and bytecode
    base, cli = [], []
    for _ in range(args.runs):
        base.append(wall(baseline_cmd))
        cli.append(wall(help_cmd))
    b, c = statistics.median(base), statistics.median(cli)
    print(f"{'command':<34} {'median ms':>10} {'ratio':>7}")
    label = 'python -c "import click"'
    print(f"{label:<34} {b * 1000:>10.1f} {1.0:>7.2f}")
    print(f"{'deployctl --help':<34} {c * 1000:>10.1f} {c / b:>7.2f}")


if __name__ == "__main__":
    main()
