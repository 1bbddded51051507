"""schemathesis against `deployctl local` (a subprocess on a free port), bounded and seeded.

All checks, positive and negative data (``--mode all``), every phase
(coverage, fuzzing, stateful), a fixed seed and at most MAX_EXAMPLES examples
per operation. Settings and the two documented exceptions (API Gateway's 403
for undeclared methods, opaque cursors) are in tests/schemathesis.toml.
The run must find nothing, and the server's log must hold no traceback.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from test_local_http import start_local, stop_local

pytestmark = pytest.mark.slow

SEED = 11
MAX_EXAMPLES = 40


def _st() -> list[str]:
    exe = Path(sys.executable).with_name("st")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("st")
    if found is None:
        pytest.fail("schemathesis is not installed: bash scripts/setup --test")
    return [found]


def test_schemathesis_finds_nothing():
    server = start_local()
    try:
        proc = subprocess.run(
            [*_st(), "--config-file", str(ROOT / "tests" / "schemathesis.toml"), "run", str(ROOT / "api" / "openapi.json"),
             "--url", server.url, "--checks", "all", "--exclude-checks", "unsupported_method", "--mode", "all",
             "--seed", str(SEED), "--max-examples", str(MAX_EXAMPLES), "--workers", "1", "--no-color"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
    finally:
        code = stop_local(server)
    log = server.log()
    server.stderr.unlink()
    report = proc.stdout[-6000:] + proc.stderr[-2000:]
    assert proc.returncode == 0, report
    assert "No issues found" in proc.stdout, report
    generated = re.search(r"(\d+) generated, \1 passed", proc.stdout)
    assert generated and int(generated.group(1)) >= 200, report  # it really ran
    assert code == 0
    served = len(re.findall(r"^[A-Z]+ +/\S* \d{3} ", log, flags=re.M))
    assert served >= int(generated.group(1)) // 2, served  # the requests reached this server
    assert "Traceback" not in log, log[-4000:]
