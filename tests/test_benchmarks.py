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


def test_bench_logs_follow_runs_and_prints_its_table():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks/bench_logs_follow.py"), "--rounds", "2",
                           "--poll", "0.2"], capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {line[:34].strip(): line.split() for line in proc.stdout.splitlines()}
    assert rows["raw boto3 filter_log_events loop"][-1] == "1.00", proc.stdout
    assert float(rows["deployctl logs --follow"][-1]) > 0, proc.stdout
