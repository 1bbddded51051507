"""Every benchmark must run as shipped: a regression here is a crash, not a slow number."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow


def test_bench_package_runs_as_shipped_and_a_no_change_publish_uploads_nothing():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_package.py"), "--repeat", "1"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("  ")[0].strip(): line for line in proc.stdout.splitlines()}
    assert rows["publish-lambda, no change"].rstrip().endswith(" 0 B"), proc.stdout


def test_bench_invoke_local_starts_and_prints_its_table_on_a_tiny_input():
    from deployctl.errors import ToolMissing
    from deployctl.local import runtime

    try:
        runtime.find_interpreter("python3.12")
    except ToolMissing as exc:
        pytest.skip(exc.message)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_invoke_local.py"), "--repeat", "2",
                           "--cold", "1"], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line.split("  ")[0].strip(): line.split() for line in proc.stdout.splitlines()}
    for row in ("warm invoke, in-process handler call", "warm invoke, python3.12 worker",
                "cold start (Init Duration), no layer (empty handler)",
                "cold start (Init Duration), health-check + shared layer"):
        assert rows[row][-1].endswith("x"), proc.stdout


def test_bench_handlers_runs_as_shipped_and_prints_its_cold_import_table():
    """One handler, one round: it packages, unpacks, runs the runtime's Python and prints the ratios."""
    from deployctl.artifacts import bytecode
    from deployctl.config import load_env

    if bytecode.find(load_env("dev", ROOT)).interpreter is None:
        pytest.skip("needs the runtime's Python (python3.12) to run the handlers as Lambda does")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_handlers.py"), "--runs", "1", "--requests", "20",
                           "--function", "health-check"], capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in proc.stdout.splitlines() if line.strip().startswith("health.health_check.handler")]
    assert len(rows) == 2, proc.stdout  # the budget's row and the import + first log line row
    assert "<= 1.2x" in rows[0] and rows[0].rstrip().endswith("x"), proc.stdout
    assert "items." not in proc.stdout  # --function limits the run


def test_bench_logs_follow_runs_and_prints_its_table():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_logs_follow.py"), "--rounds", "2",
                           "--poll", "0.2"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line[:34].strip(): line.split() for line in proc.stdout.splitlines()}
    assert rows["raw boto3 filter_log_events loop"][-1] == "1.00", proc.stdout
    assert float(rows["deployctl logs --follow"][-1]) > 0, proc.stdout


def test_bench_rollout_prints_its_overhead_next_to_the_bake_time_on_a_tiny_input():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_rollout.py"), "--bake", "1", "--poll", "1"],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = dict(line.rsplit("  ", 1) for line in proc.stdout.splitlines())
    rows = {k.strip(): v.strip() for k, v in rows.items()}
    assert rows["bake time watched"] == "1.00 s" and int(rows["polls"]) >= 2, proc.stdout
    assert 2 <= float(rows["AWS calls per poll (alarms + metrics + lease)"]) <= 4, proc.stdout
    assert rows["poll time / poll interval"].endswith("x") and rows["own time / bake time"].endswith("x")
