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


def test_bench_plan_deploys_to_moto_measures_and_tears_down_on_a_tiny_input(tmp_path):
    """One function, one table, one run: it deploys with `up`, prints every row with its ratio, and
    leaves no moto server and no temp dir behind."""
    import re
    import urllib.request

    from e2e import harness

    try:
        terraform, _version = harness.find_terraform()
        harness.provider_config(tmp_path)
    except harness.Unavailable as exc:
        if os.environ.get("DEPLOYCTL_E2E_REQUIRED") == "1":
            pytest.fail(f"bench_plan not run: {exc} (DEPLOYCTL_E2E_REQUIRED=1 makes this a failure)", pytrace=False)
        pytest.skip(f"bench_plan needs Terraform and the AWS provider: {exc}")
    argv = [sys.executable, str(ROOT / "benchmarks/bench_plan.py"), "--runs", "1", "--functions", "1", "--tables", "1",
            "--terraform", terraform]
    if os.environ.get("DEPLOYCTL_E2E_PROVIDER_MIRROR"):
        argv += ["--provider-mirror", os.environ["DEPLOYCTL_E2E_PROVIDER_MIRROR"]]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=1200, env=env, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = {line.split("  ")[0].strip(): line for line in proc.stdout.splitlines()}
    assert rows["terraform plan -out (baseline)"].rstrip().endswith(" 1.00x"), proc.stdout
    assert rows["terraform plan -out, one-line HCL change (baseline)"].rstrip().endswith(" 1.00x"), proc.stdout
    for row, target in (("deployctl plan, nothing changed", "1.3"), ("deployctl plan, one-line HCL change", "2.0"),
                        ("deployctl up, nothing changed", "1.5")):
        assert re.search(rf" \d+\.\d\dx +<= {target}x +(met|missed by \d+\.\d\dx)$", rows[row]), proc.stdout
    assert "1 functions, 1 tables" in proc.stdout and "where deployctl plan" in proc.stdout, proc.stdout
    assert "note:" not in proc.stdout, proc.stdout  # nothing-changed plans had no changes, the HCL change one update
    # torn down: the temp dir is gone and the moto server no longer answers
    tmp = re.search(r"temp dir (\S+)", proc.stderr).group(1)
    endpoint = re.search(r"moto server at (\S+)", proc.stderr).group(1)
    assert not os.path.exists(tmp), tmp
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2)
