"""Cold-start import cost and warm per-request overhead of each Lambda handler.

    .venv/bin/python benchmarks/bench_handlers.py [--runs 9] [--requests 2000] [--json]
                                                  [--function NAME ...] [--baseline-ref f7cdbeb]

1. Cold import, as Lambda runs it: ``deployctl package`` output unpacked (the function's zip as
   /var/task, each layer's ``python/`` as /opt/python), imported by the RUNTIME's Python (the
   interpreter :mod:`deployctl.artifacts.bytecode` finds for ``[lambda].runtime``, 3.12), isolated
   (``-I``; ``sys.path`` holds those dirs and the stdlib only, no site-packages), with ``-B`` and
   ``PYTHONDONTWRITEBYTECODE=1`` on read-only trees, so only the ``.pyc`` the zips ship help; a fresh
   interpreter per sample, ``-X importtime``, the handler module's cumulative time. The budget's
   baseline, alternating with it in the same run: the same handlers without the layer
   (``--baseline-ref``, default the last commit before it: its ``lambda_src/`` from ``git archive``,
   the hand-written JSON logger, no powertools), with bytecode compiled the same way deployctl ships
   it. Target: each handler <= 1.2x. For context, the same zips with their ``.pyc`` removed (what
   deployctl shipped before it compiled bytecode), and ``import boto3``, which the users function pays
   on its first AWS call.

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
TARGET_RATIO = 1.2


# after the import, what the first request does with the logger: the layer's Logger is made on the first line
FIRST_LINE = ("import io, time; t = time.perf_counter(); import {module}; from shared import log; "
              "log.set_stream(io.StringIO()); log.bind('req-1', 'bench'); log.info('request', status=200); "
              "print(round((time.perf_counter() - t) * 1e6))")


def import_once_us(python: str, module: str, paths: list[Path], *, first_line: bool = False) -> int:
    """Cumulative import time of ``module`` in a fresh, isolated ``python`` that finds only ``paths``
    (and the stdlib) and writes no bytecode: what it does not find shipped, it compiles.
    ``first_line``: the wall time of the import plus the first request's log line instead."""
    code = ("import sys; sys.path[:] = " + repr([str(p) for p in paths])
            + " + [p for p in sys.path if p and 'site-packages' not in p]; "
            + (FIRST_LINE.format(module=module) if first_line else "import " + module))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["AWS_DEFAULT_REGION"] = env.get("AWS_DEFAULT_REGION", "eu-west-1")
    argv = [python, "-I", "-B", *([] if first_line else ["-X", "importtime"]), "-c", code]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, env=env, cwd=paths[0])
    if first_line:
        return int(proc.stdout.strip().splitlines()[-1])
    err = proc.stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.removeprefix("import time:").split("|")]
        if len(parts) == 3 and parts[2] == module:
            return int(parts[1])
    raise RuntimeError(f"no import time for {module}")


def paired(python: str, module: str, runs: int, arms: dict[str, list[Path]], *, first_line: bool = False) -> dict[str, float]:
    """The arms measured in alternation (machine load drifts hit all alike): the median of each,
    and the median of the per-round ratios of each arm to the first."""
    first = next(iter(arms))
    rounds = [{name: import_once_us(python, module, paths, first_line=first_line) for name, paths in arms.items()}
              for _ in range(runs)]
    out: dict[str, float] = {}
    for name in arms:
        out[f"{name}_us"] = statistics.median(r[name] for r in rounds)
        if name != first:
            out[f"{name}_ratio"] = round(statistics.median(r[name] / r[first] for r in rounds), 3)
    return out


def baseline_tree(ref: str, dest: Path) -> Path:
    """``lambda_src/`` as of ``ref`` (git archive), extracted under ``dest``."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", ref, "lambda_src"],
                             capture_output=True, check=False)
    if archive.returncode != 0:
        raise SystemExit(f"bench_handlers: cannot read lambda_src at {ref!r}: {archive.stderr.decode().strip()} "
                         "(pass --baseline-ref)")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "lambda_src"


def compile_tree(tree: Path, interp) -> None:
    """Put the .pyc deployctl would ship beside every .py of ``tree`` (the baseline's handlers)."""
    from deployctl.artifacts import bytecode
    from deployctl.artifacts.zipbuild import Entry

    entries = [Entry(p.relative_to(tree).as_posix(), p, False, p.read_bytes()) for p in sorted(tree.rglob("*.py"))]
    for pyc in bytecode.compile_entries(entries, interp, bytecode.FUNCTION_ROOT):
        (tree / pyc.arcname).parent.mkdir(parents=True, exist_ok=True)
        (tree / pyc.arcname).write_bytes(pyc.content())


def unpack(zip_path: Path, dest: Path, *, pyc: bool = True) -> Path:
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if pyc or not name.endswith(".pyc"):
                zf.extract(name, dest)
    return dest


def packaged_paths(cfg, dest: Path, functions: list[str], *, pyc: bool = True) -> dict[str, list[Path]]:
    """Each function's import path as on Lambda: its unpacked zip, then its layers' python/
    (``pyc=False``: the same with every .pyc left out)."""
    from deployctl.artifacts import packaging

    build = packaging.build(cfg, functions, dest / "dist")
    tag = "pyc" if pyc else "src"
    opt = {layer.function: unpack(layer.path, dest / tag / "opt" / layer.function, pyc=pyc) / "python"
           for layer in build.layers}
    return {art.function: [unpack(art.path, dest / tag / "task" / art.function, pyc=pyc), *(opt[n] for n in art.layers)]
            for art in build.functions}


def read_only(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode & ~0o222)


def writable(tree: Path) -> None:
    for path in [tree, *tree.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o200)


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
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--function", action="append", default=[], help="only this function (repeatable)")
    ap.add_argument("--baseline-ref", default=BASELINE_REF,
                    help="git ref of the handlers to compare with (default: the last commit without the layer)")
    args = ap.parse_args()

    from deployctl import naming
    from deployctl.artifacts import bytecode
    from deployctl.config import load_env

    cfg = load_env("dev", ROOT)
    handlers = {fn: spec["handler"] for fn, spec in cfg.functions.items() if not args.function or fn in args.function}
    if not handlers:
        raise SystemExit(f"bench_handlers: no function {args.function} in [functions]")
    choice = bytecode.find(cfg)
    if choice.interpreter is None:
        raise SystemExit(f"bench_handlers: needs the runtime's Python {choice.wanted} to run the handlers as Lambda "
                         f"does ({bytecode.warning(choice)})")
    python = choice.interpreter.path

    with tempfile.TemporaryDirectory(prefix="bench-handlers-") as tmp:
        old = baseline_tree(args.baseline_ref, Path(tmp))
        compile_tree(old, choice.interpreter)
        paths = packaged_paths(cfg, Path(tmp), list(handlers))
        src_only = packaged_paths(cfg, Path(tmp), list(handlers), pyc=False)
        for tree in (old, Path(tmp) / "pyc", Path(tmp) / "src"):
            read_only(tree)
        try:
            boto3_us = statistics.median(import_once_us(python, "boto3", [Path(tmp)]) for _ in range(args.runs)) \
                if _has_boto3(python) else None
            cold = {fn: paired(python, h.rpartition(".")[0], args.runs,
                               {"before": [old], "layer": paths[fn], "layer_no_pyc": src_only[fn]})
                    for fn, h in handlers.items()}
            # not the budget's measure, shown so the moved cost is not hidden: import + the first log line
            first = {fn: paired(python, h.rpartition(".")[0], args.runs, {"before": [old], "layer": paths[fn]},
                                first_line=True)
                     for fn, h in handlers.items()}
        finally:
            for tree in (old, Path(tmp) / "pyc", Path(tmp) / "src"):
                writable(tree)

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
        if fn not in handlers:
            continue
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
        "python": {"path": python, "version": choice.interpreter.version},
        "cold_import_us": {fn: {"without_layer": m["before_us"], "with_layer": m["layer_us"],
                                "with_layer_no_pyc": m["layer_no_pyc_us"]} for fn, m in cold.items()},
        "cold_import_ratio": {fn: m["layer_ratio"] for fn, m in cold.items()},
        "cold_import_ratio_no_pyc": {fn: m["layer_no_pyc_ratio"] for fn, m in cold.items()},
        "cold_import_budget_ok": all(m["layer_ratio"] <= TARGET_RATIO for m in cold.values()),
        "import_and_first_log_line_us": {fn: {"without_layer": m["before_us"], "with_layer": m["layer_us"]}
                                         for fn, m in first.items()},
        "import_and_first_log_line_ratio": {fn: m["layer_ratio"] for fn, m in first.items()},
        "import_boto3_us": boto3_us,
        "warm_request_us": {"baseline_minimal_handler": round(baseline_us, 2), **{k: round(v, 2) for k, v in warm.items()}},
        "warm_ratio_to_baseline": {k: round(v / baseline_us, 2) for k, v in warm.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"cold import as Lambda runs it: Python {choice.interpreter.version} -I -B, read-only code, only the shipped "
          f".pyc (median of {args.runs} rounds, alternating)")
    print(f"  {'handler':<28} {'no layer':>9} {'with layer':>11} {'ratio':>6}  target   "
          f"{'layer, no .pyc':>14} {'ratio':>6}")
    for fn, m in cold.items():
        flag = "ok" if m["layer_ratio"] <= TARGET_RATIO else "OVER"
        print(f"  {handlers[fn]:<28} {m['before_us'] / 1000:6.1f} ms {m['layer_us'] / 1000:8.1f} ms "
              f"{m['layer_ratio']:5.2f}x  <= {TARGET_RATIO}x {flag:<4} {m['layer_no_pyc_us'] / 1000:8.1f} ms "
              f"{m['layer_no_pyc_ratio']:5.2f}x")
    print("import + the first request's log line (powertools' Logger is made there): wall time, same trees")
    for fn, m in first.items():
        print(f"  {handlers[fn]:<28} {m['before_us'] / 1000:6.1f} ms {m['layer_us'] / 1000:8.1f} ms "
              f"{m['layer_ratio']:5.2f}x")
    if boto3_us is not None:
        print(f"  {'for scale: import boto3':<28} {boto3_us / 1000:6.1f} ms (once per cold start, on the first AWS call)")
    print("warm per-request overhead, DynamoDB excluded (in-memory stub client; best of 5 batches)")
    print(f"  {'baseline: minimal handler':<28} {baseline_us:8.1f} us")
    for label, us in warm.items():
        print(f"  {label:<28} {us:8.1f} us   {us / baseline_us:6.1f} x baseline")
    return 0


def _has_boto3(python: str) -> bool:
    return subprocess.run([python, "-I", "-c", "import boto3"], capture_output=True, check=False).returncode == 0


if __name__ == "__main__":
    sys.exit(main())
