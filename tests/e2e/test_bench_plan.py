"""benchmarks/bench_plan.py runs as shipped: on a tiny input (one function, one table, one run) it
starts its own moto server, deploys the dev env with `up`, prints every row of its table with a
ratio against raw `terraform plan -out`, and leaves no moto server and no temp dir behind.

It lives with the e2e modules (not in tests/test_benchmarks.py) because it is one: a deploy from
empty through the real provider, about 5.5 minutes on the loaded 2-core machines, mostly the
provider's waits. scripts/test runs each e2e module beside the rest, off the critical path.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request

import pytest

from . import harness
from .conftest import ROOT, unavailable

pytestmark = pytest.mark.e2e


def test_bench_plan_deploys_to_moto_measures_and_tears_down_on_a_tiny_input(tmp_path):
    try:
        terraform, _version = harness.find_terraform()
        harness.provider_config(tmp_path)
    except harness.Unavailable as exc:
        unavailable(str(exc))
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
    assert "1 functions, 1 tables" in proc.stdout, proc.stdout
    assert "where deployctl plan (nothing changed) spends" in proc.stdout, proc.stdout
    assert "where deployctl plan (one-line HCL change) spends" in proc.stdout, proc.stdout
    assert "note:" not in proc.stdout, proc.stdout  # nothing-changed plans had no changes, the HCL change one update
    # torn down: the temp dir is gone and the moto server no longer answers
    tmp = re.search(r"temp dir (\S+)", proc.stderr).group(1)
    endpoint = re.search(r"moto server at (\S+)", proc.stderr).group(1)
    assert not os.path.exists(tmp), tmp
    with pytest.raises(OSError):
        urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2)
