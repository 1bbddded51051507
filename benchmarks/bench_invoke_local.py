"""`deployctl invoke --local`'s runtime worker: warm latency and cold starts, as ratios in one run.

* warm invoke: the fixture's ``echo`` function (tests/fixtures/runtime_demo, no AWS call) invoked in
  its warm python3.12 worker, next to calling the same handler in this process (what the in-process
  ``deployctl local`` does): the worker's cost per request (a JSON line each way, log capture).
* cold start: Lambda's ``Init Duration`` (runtime start + the handler module's import) of a handler
  that imports nothing, without a layer (the baseline), with the shared layer attached, and of the
  real ``health-check`` function (its zip + the shared layer: aws-lambda-powertools imported from
  /opt/python, compiled from source as on Lambda's read-only /opt).

Run: .venv/bin/python benchmarks/bench_invoke_local.py [--repeat 50] [--cold 5]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli"))

from deployctl.config import load_env  # noqa: E402
from deployctl.local import runtime  # noqa: E402


def _zip(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


class _Context:
    aws_request_id = "bench"
    function_name = "bench"
    memory_limit_in_mb = "128"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:000000000000:function:bench"

    def get_remaining_time_in_millis(self) -> int:
        return 3000


def warm(repeat: int, tmp: Path) -> tuple[float, float]:
    """(in-process ms, worker ms): medians over ``repeat`` calls of echo's handler."""
    project = tmp / "runtime_demo"
    shutil.copytree(ROOT / "tests/fixtures/runtime_demo", project)
    cfg = load_env("dev", project)
    code = runtime.built_code(cfg, ["echo"])["echo"]
    spec = runtime.spec_for(cfg, "echo", code, {})
    event = {"httpMethod": "GET", "path": "/echo", "body": "x" * 200}
    sys.path.insert(0, str(project / "lambda_src"))
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        from echo.handler import handler  # the same source, imported in this process

    inproc, worker = [], []
    with runtime.Runtime(spec.runtime, tmp / "cache") as rt, open(os.devnull, "w") as devnull:
        rt.invoke(spec, event)  # the cold start is measured separately
        for _ in range(repeat):
            with contextlib.redirect_stdout(devnull):  # its print goes nowhere, as the worker's goes to its log
                started = time.perf_counter()
                handler(event, _Context())
                inproc.append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            rt.invoke(spec, event)
            worker.append((time.perf_counter() - started) * 1000)
    return statistics.median(inproc), statistics.median(worker)


def cold(times: int, tmp: Path) -> dict[str, float]:
    """Median Init Duration (ms) of each cold-start case, alternating the cases in the same run."""
    cfg = load_env("dev", ROOT)
    health = runtime.built_code(cfg, ["health-check"])["health-check"]
    shared_layer = health.layer_zips
    empty = _zip({"app.py": "def handler(event, context):\n    return 1\n"})
    cases = {
        "no layer (empty handler)": runtime.Code(empty, []),
        "shared layer attached (empty handler)": runtime.Code(empty, shared_layer),
        "health-check + shared layer": health,
    }
    from deployctl.local.server import FAKE_AWS, Backend

    backend = Backend(cfg)
    endpoint = backend.start()
    results: dict[str, list[float]] = {name: [] for name in cases}
    try:
        for i in range(times):
            for name, code in cases.items():
                handler = "app.handler" if code.function_zip is empty else cfg.functions["health-check"]["handler"]
                spec = runtime.spec_for(cfg, "health-check", code, {**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
                spec.handler = handler
                spec.environment["BENCH_RUN"] = str(i)  # a new execution environment every time: a cold start
                with runtime.Runtime(spec.runtime, tmp / "cache") as rt:
                    inv = rt.invoke(spec, {"httpMethod": "GET", "path": "/health", "resource": "/health"})
                    assert inv.init_duration_ms is not None, inv.log
                    results[name].append(inv.init_duration_ms)
    finally:
        backend.stop()
    return {name: statistics.median(values) for name, values in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50, help="warm invocations (median)")
    parser.add_argument("--cold", type=int, default=5, help="cold starts per case (median)")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="bench-invoke-"))
    try:
        inproc, worker = warm(args.repeat, tmp)
        starts = cold(args.cold, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = starts["no layer (empty handler)"]
    rows = [
        ("warm invoke, in-process handler call", f"{inproc:.3f} ms", "1.00x"),
        ("warm invoke, python3.12 worker", f"{worker:.3f} ms", f"{worker / inproc:.1f}x"),
        *((f"cold start (Init Duration), {name}", f"{ms:.1f} ms", f"{ms / base:.2f}x") for name, ms in starts.items()),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'case':<{width}}  {'median':>12}  ratio")
    for name, value, ratio in rows:
        print(f"{name:<{width}}  {value:>12}  {ratio}")
    print(f"(warm: {args.repeat} calls; cold: {args.cold} per case; the ratios are against the first row "
          "of each group, measured in this run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
