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
