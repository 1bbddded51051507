"""Cold-start import cost and warm per-request overhead of each Lambda handler.

    .venv/bin/python benchmarks/bench_handlers.py [--runs 7] [--requests 2000] [--json]
                                                  [--baseline-ref f7cdbeb]

1. Import cost: ``python -X importtime -c "import <handler module>"`` in a fresh
   interpreter, median of ``--runs``; the handler module's cumulative import
   time (its package, shared/ and the stdlib modules it pulls in that the bare
   interpreter has not loaded). Measured as Lambda loads it: the function's zip
   and its layers' zips (``deployctl package``) unpacked side by side, the
   function's code first, then each layer's ``python/`` (as /opt/python).
   Baselines, measured the same way in the same run:
   - the handlers before the shared layer (``--baseline-ref``, default the last
     commit without it: its ``lambda_src/`` extracted with ``git archive``, the
     hand-written JSON logger, no powertools): the cold start budget is each
     handler's ratio to this, target <= 1.5x;
   - ``import boto3``, which every Python Lambda pays once per cold start (our
     handlers import it lazily, on the first AWS call).

2. Warm per-request overhead of the handler itself, excluding DynamoDB time:
   the handler runs in-process with ``shared.aws.set_factory`` swapped for an
   in-memory stub client whose calls are dict operations (a few microseconds),
   so the measured time is event parsing, routing, validation, serialisation,
   CORS headers and the INFO log line. Baseline in the same run: a minimal
   proxy handler that only ``json.dumps`` a small body.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAMBDA = ROOT / "lambda_src"
sys.path.insert(0, str(ROOT / "cli"))
sys.path.insert(0, str(LAMBDA))


# the last commit before the shared layer (hand-written shared/log.py, no powertools)
BASELINE_REF = "f7cdbeb"
TARGET_RATIO = 1.5


def import_once_us(module: str, paths: list[Path] | None = None, *, bytecode: bool = True) -> int:
    """Cumulative import time of ``module`` in a fresh interpreter. ``bytecode=False``: no
    .pyc is written (nor found, in a tree that never had one), as on Lambda, where /var/task
    and /opt are read-only and deployctl ships no .pyc: every cold start compiles."""
    code = f"import sys; sys.path[:0] = {[str(p) for p in (paths or [LAMBDA])]!r}; import {module}"
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    argv = [sys.executable, *([] if bytecode else ["-B"]), "-X", "importtime", "-c", code]
    err = subprocess.run(argv, capture_output=True, text=True, check=True, env=env).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no import time for {module}")


def import_cost_us(module: str, runs: int, paths: list[Path] | None = None) -> float:
    if paths is not None:
        import_once_us(module, paths)  # writes the bytecode cache
    return statistics.median(import_once_us(module, paths) for _ in range(runs))


def paired(module: str, runs: int, old: list[Path], new: list[Path], *, bytecode: bool) -> dict:
    """Before/after measured in alternation (machine load drifts hit both alike): medians and
    the median of the per-pair ratios."""
    if bytecode:
        import_once_us(module, old)
        import_once_us(module, new)
    pairs = [(import_once_us(module, old, bytecode=bytecode), import_once_us(module, new, bytecode=bytecode))
             for _ in range(runs)]
    return {"before_us": statistics.median(a for a, _ in pairs), "after_us": statistics.median(b for _, b in pairs),
            "ratio": round(statistics.median(b / a for a, b in pairs), 3)}


def baseline_tree(ref: str, dest: Path) -> Path:
    """``lambda_src/`` as of ``ref`` (git archive), extracted under ``dest``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "lambda_src"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"bench_handlers: cannot read lambda_src at {ref!r}: {archive.stderr.decode().strip()} "
                         "(pass --baseline-ref)")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "lambda_src"


def packaged_paths(cfg, dest: Path) -> dict[str, list[Path]]:
    """Each function's import path as on Lambda: its unpacked zip, then its layers' python/."""
    from deployctl.artifacts import packaging

    build = packaging.build(cfg, None, dest / "dist")
    opt = {}
    for layer in build.layers:
        with zipfile.ZipFile(layer.path) as zf:
            zf.extractall(dest / "opt" / layer.function)
        opt[layer.function] = dest / "opt" / layer.function / "python"
    out = {}
    for art in build.functions:
        with zipfile.ZipFile(art.path) as zf:
            zf.extractall(dest / "task" / art.function)
        out[art.function] = [dest / "task" / art.function, *(opt[n] for n in art.layers)]
    return out


class StubDynamoDB:
    """Just enough of the DynamoDB/SSM client API, in memory."""

    def __init__(self):
        self.items: dict[tuple, dict] = {}

    def put_item(self, TableName, Item, **_):
        self.items[(TableName, json.dumps({k: v for k, v in Item.items() if k in ("pk", "sk", "UserId")}))] = Item
        return {}

    def get_item(self, TableName, Key, **_):
        found = self.items.get((TableName, json.dumps(Key)))
        return {"Item": found} if found else {}

    def query(self, TableName, Limit, **_):
        rows = [v for (t, _), v in self.items.items() if t == TableName][:Limit]
        return {"Items": rows}

    def scan(self, TableName, Limit, **_):
        rows = [v for (t, _), v in self.items.items() if t == TableName][:Limit]
        return {"Items": rows}

    def update_item(self, TableName, Key, ExpressionAttributeNames, ExpressionAttributeValues, **_):
        item = self.items[(TableName, json.dumps(Key))]
        for i, name in enumerate(ExpressionAttributeNames.values()):
            item[name] = ExpressionAttributeValues[f":v{i}"]
        return {"Attributes": item}

    def delete_item(self, **_):
        return {}

    def describe_table(self, TableName):
        return {"Table": {"TableName": TableName, "TableStatus": "ACTIVE"}}

    def get_parameters_by_path(self, Path, **_):
        return {"Parameters": [{"Name": Path + "page-size", "Value": "20"},
                               {"Name": Path + "pagination-key", "Value": "k" * 32}]}

    def get_paginator(self, operation):  # the powertools parameters utility paginates
        stub = self

        class Paginator:
            def paginate(self, **kwargs):
                yield getattr(stub, operation)(**kwargs)

        return Paginator()


def event(method, resource, body=None, query=None, params=None):
    return {"resource": resource, "path": resource, "httpMethod": method,
            "headers": {"Content-Type": "application/json", "Origin": "http://localhost:3000"},
            "queryStringParameters": query, "pathParameters": params,
            "body": json.dumps(body) if body is not None else None, "isBase64Encoded": False,
            "requestContext": {"requestId": str(uuid.uuid4()), "stage": "dev"}}


def per_request_us(fn, ev, n: int) -> float:
    for _ in range(50):
        fn(ev, None)
    best = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(n // 5):
            fn(ev, None)
        best.append((time.perf_counter() - t) / (n // 5))
    return min(best) * 1e6


def baseline_handler(event, context):
    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},
            "body": json.dumps({"id": "x", "name": "y"}), "isBase64Encoded": False}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--baseline-ref", default=BASELINE_REF,
                    help="git ref of the handlers to compare with (default: the last commit without the layer)")
    args = ap.parse_args()

    from deployctl import naming
    from deployctl.config import load_env

    cfg = load_env("dev", ROOT)
    handlers = {fn: spec["handler"] for fn, spec in cfg.functions.items()}

    boto3_us = import_cost_us("boto3", args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-handlers-") as tmp:
        old = baseline_tree(args.baseline_ref, Path(tmp))
        paths = packaged_paths(cfg, Path(tmp))
        # first without bytecode (the fresh trees have none: as on Lambda), then with a warm cache
        cold = {fn: paired(h.rpartition(".")[0], args.runs, [old], paths[fn], bytecode=False)
                for fn, h in handlers.items()}
        warm_pyc = {fn: paired(h.rpartition(".")[0], args.runs, [old], paths[fn], bytecode=True)
                    for fn, h in handlers.items()}
    before = {fn: m["before_us"] for fn, m in warm_pyc.items()}
    imports = {fn: m["after_us"] for fn, m in warm_pyc.items()}
    budget = {fn: m["ratio"] for fn, m in warm_pyc.items()}
    budget_cold = {fn: m["ratio"] for fn, m in cold.items()}

    import importlib

    from shared import aws, log
    from shared import config as app_config

    stub = StubDynamoDB()
    aws.set_factory(lambda service: stub)
    log.set_stream(io.StringIO())
    uid = "0b5c1b9e-1111-4a4a-8a8a-123456789abc"
    stub.items[("deployctl-demo-dev-users", json.dumps({"UserId": {"S": uid}}))] = {
        "UserId": {"S": uid}, "name": {"S": "n"}, "email": {"S": "e@x.io"}}
    cases = {
        "create-item": event("POST", "/items", {"name": "lamp", "description": "a red lamp"}),
        "get-items": event("GET", "/items", query={"limit": "20"}),
        "health-check": event("GET", "/health"),
        "users": event("GET", "/users/{userId}", params={"userId": uid}),
        "users PUT": event("PUT", "/users/{userId}", {"email": "new@x.io"}, params={"userId": uid}),
        "users POST": event("POST", "/users", {"name": "Ada", "email": "ada@example.com"}),
    }
    baseline_us = per_request_us(baseline_handler, cases["health-check"], args.requests)
    warm = {}
    for label, ev in cases.items():
        fn = label.split()[0]
        for key in [k for k in os.environ if k.startswith("TABLE_")]:
            del os.environ[key]
        os.environ.update(naming.function_environment(cfg, fn))
        os.environ["LOG_LEVEL"] = "INFO"
        app_config.clear()
        module_name, _, attr = handlers[fn].rpartition(".")
        handler = getattr(importlib.import_module(module_name), attr)
        out = handler(ev, None)
        assert out["statusCode"] < 300, (label, out)
        warm[label] = per_request_us(handler, ev, args.requests)

    result = {
        "baseline_ref": args.baseline_ref,
        "import_us_before_layer": before,
        "import_ratio_to_before_layer": budget,
        "import_budget_ok": all(r <= TARGET_RATIO for r in budget.values()),
        "no_bytecode": {"import_us_before_layer": {fn: m["before_us"] for fn, m in cold.items()},
                        "import_us": {fn: m["after_us"] for fn, m in cold.items()},
                        "import_ratio_to_before_layer": budget_cold},
        "import_us": {"baseline_import_boto3": boto3_us, **imports},
        "import_ratio_to_boto3": {fn: round(us / boto3_us, 3) for fn, us in imports.items()},
        "warm_request_us": {"baseline_minimal_handler": round(baseline_us, 2), **{k: round(v, 2) for k, v in warm.items()}},
        "warm_ratio_to_baseline": {k: round(v / baseline_us, 2) for k, v in warm.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"import time (median of {args.runs} fresh interpreters; boto3 is imported lazily on the first AWS call)")
    print(f"  {'baseline: import boto3':<28} {boto3_us / 1000:8.1f} ms")
    for title, data in (("with a bytecode cache", warm_pyc),
                        ("no bytecode (as on Lambda: read-only code, no .pyc shipped)", cold)):
        print(f"  {title}")
        print(f"  {'handler':<28} {'before':>8}    {'with layer':>10}   ratio (target <= {TARGET_RATIO}x)")
        for fn, m in data.items():
            flag = "" if m["ratio"] <= TARGET_RATIO else "  OVER"
            print(f"  {handlers[fn]:<28} {m['before_us'] / 1000:6.1f} ms   {m['after_us'] / 1000:8.1f} ms"
                  f"   {m['ratio']:6.2f} x{flag}   {m['after_us'] / boto3_us:6.3f} x boto3")
    print("warm per-request overhead, DynamoDB excluded (in-memory stub client; best of 5 batches)")
    print(f"  {'baseline: minimal handler':<28} {baseline_us:8.1f} us")
    for label, us in warm.items():
        print(f"  {label:<28} {us:8.1f} us   {us / baseline_us:6.1f} x baseline")
    return 0


if __name__ == "__main__":
    sys.exit(main())
