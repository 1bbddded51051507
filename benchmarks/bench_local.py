"""`deployctl local`: start-up to the first served request (target: < 3 s).

    .venv/bin/python benchmarks/bench_local.py [--runs 3] [--json]

Each run starts ``python -m deployctl local --port 0`` and measures, from the
spawn: the URL printed (serving), the first ``GET /health`` answered, and the
first ``GET /users`` answered (the first call of a function that reads SSM
parameters: moto's SSM backend loads then, ~1.5 s, like a cold start).
Baseline in the same run: ``python -m deployctl --version`` (interpreter plus
CLI start-up), so the ratio shows what serving adds on this machine.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 3.0


def baseline() -> float:
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "deployctl", "--version"], cwd=ROOT, check=True, capture_output=True)
    return time.perf_counter() - t


def one_run() -> dict[str, float]:
    t = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "deployctl", "local", "--port", "0"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        url = re.search(r"http://\S+", line).group(0)
        serving = time.perf_counter() - t
        urllib.request.urlopen(url + "/health", timeout=30).read()
        health = time.perf_counter() - t
        urllib.request.urlopen(url + "/users", timeout=30).read()
        users = time.perf_counter() - t
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=15)
        proc.stdout.close()
    return {"serving_s": serving, "first_request_s": health, "first_ssm_function_request_s": users}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    base = statistics.median(baseline() for _ in range(args.runs))
    runs = [one_run() for _ in range(args.runs)]
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    result = {
        "baseline_cli_start_s": round(base, 3),
        **{k: round(v, 3) for k, v in med.items()},
        "ratios_to_baseline": {k: round(v / base, 2) for k, v in med.items()},
        "target_first_request_s": TARGET_S,
        "ok": med["first_request_s"] < TARGET_S,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"median of {args.runs} runs")
        print(f"  baseline: deployctl --version      {base:6.2f} s")
        for k, v in med.items():
            print(f"  {k:<35}{v:6.2f} s   {v / base:5.1f} x baseline")
        print(f"  first request < {TARGET_S:.0f} s: {'yes' if result['ok'] else 'NO'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
