"""`deployctl local` under load: latency over keep-alive, throughput, listing at 10,000 items.

    .venv/bin/python benchmarks/bench_local_http.py [--requests 300] [--items 10000] [--json]

Everything is measured in the same run, on the same machine, against baselines
measured in that run (no absolute thresholds):

1. gateway overhead: median latency of a request that runs no handler (an
   unknown route, 403) over ONE keep-alive connection, as a ratio to a trivial
   standard-library ``http.server`` handler (HTTP/1.1 keep-alive, small JSON
   body, TCP_NODELAY) in a subprocess, over one connection too. Target <= 3x.
2. handler overhead: median latency of ``GET /health`` over one keep-alive
   connection, as a ratio to the handler's own median time for the same
   requests (the ``durationMs`` of its JSON log line). Target <= 1.5x.
3. throughput: requests/s of ``GET /health`` from CONCURRENCY clients, each
   on its own keep-alive connection (bounded load).
4. listing at size: ``GET /items?limit=20`` requests/s over one connection with
   ``--items`` items in the table (seeded straight into the embedded DynamoDB),
   with the sorted-index fast path and, for comparison, without it
   (``DEPLOYCTL_LOCAL_QUERY_INDEX=0``: moto as shipped). Target >= 50/s.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "lambda_src"))
TARGETS = {"gateway_ratio": 3.0, "health_ratio": 1.5, "list_rps": 50.0}
CONCURRENCY = 4

BASELINE_SERVER = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    def do_GET(self):
        body = json.dumps({"message": "Missing Authentication Token", "requestId": "x" * 36}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


class Local:
    def __init__(self, extra_env: dict[str, str] | None = None):
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update({"PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(extra_env or {})})
        self.errfile = Path(tempfile.mkstemp(prefix="bench-local-", suffix=".log")[1])
        with self.errfile.open("w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "deployctl", "local", "--port", "0", "--json"],
                                         cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=err, text=True)
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"deployctl local did not start:\n{self.errfile.read_text()}")
            lines.append(line)
            if line.rstrip() == "}":
                break
        out = json.loads("".join(lines))
        self.info = out.get("result", out)  # --json wraps the command's result in an envelope
        self.port = self.info["port"]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
        self.errfile.unlink()


def timed_requests(port: int, target: str, n: int) -> list[float]:
    """Latency (s) of ``n`` GETs over one keep-alive connection (after one warm-up)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", target)
    conn.getresponse().read()
    sock = conn.sock
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("GET", target)
        conn.getresponse().read()
        out.append(time.perf_counter() - t)
    assert conn.sock is sock, "the server closed the keep-alive connection"
    conn.close()
    return out


def throughput(port: int, target: str, total: int) -> float:
    per_client = total // CONCURRENCY
    start = threading.Barrier(CONCURRENCY + 1)

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        start.wait()
        for _ in range(per_client):
            conn.request("GET", target)
            conn.getresponse().read()
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(CONCURRENCY)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return per_client * CONCURRENCY / (time.perf_counter() - t0)


def handler_durations(log: str, count: int) -> list[float]:
    """durationMs of the last ``count`` health-check request log lines (seconds)."""
    found = []
    for line in log.splitlines():
        if not line.startswith("{"):
            continue
        record = json.loads(line)
        if record.get("function") == "health-check" and record.get("message") == "request":
            found.append(record["durationMs"] / 1000)
    return found[-count:]


def seed_items(endpoint: str, region: str, table: str, n: int) -> None:
    import boto3

    from items import model

    client = boto3.client("dynamodb", endpoint_url=endpoint, region_name=region, aws_access_key_id="testing",
                          aws_secret_access_key="testing")
    base = time.time() - n
    batch = []
    for i in range(n):
        item_id = str(uuid.uuid4())
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(base + i)) + f".{i % 1000000:06d}Z"
        item = {"id": item_id, "name": f"item {i}", "created_at": ts, "updated_at": ts, **model.keys(item_id, ts)}
        batch.append({"PutRequest": {"Item": {k: {"S": v} for k, v in item.items()}}})
        if len(batch) == 25:
            client.batch_write_item(RequestItems={table: batch})
            batch = []
    if batch:
        client.batch_write_item(RequestItems={table: batch})


def listing_rps(n_items: int, requests: int, fast: bool) -> float:
    server = Local(None if fast else {"DEPLOYCTL_LOCAL_QUERY_INDEX": "0"})
    try:
        table = next(t for t in server.info["tables"] if t.endswith("items"))
        seed_items(server.info["dynamodb_endpoint"], os.environ.get("AWS_REGION") or _region(server), table, n_items)
        lat = timed_requests(server.port, "/items?limit=20", requests)
        return 1 / statistics.median(lat)
    finally:
        server.stop()


def _region(server: Local) -> str:
    from deployctl.config import load_env

    return load_env(server.info["env"], ROOT).region


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.requests

    base = subprocess.Popen([sys.executable, "-c", BASELINE_SERVER], stdout=subprocess.PIPE, text=True)
    try:
        base_port = int(base.stdout.readline())
        baseline = statistics.median(timed_requests(base_port, "/nope", n))
    finally:
        base.kill()
        base.wait()
        base.stdout.close()

    server = Local()
    try:
        gateway = statistics.median(timed_requests(server.port, "/nope", n))
        health_lat = timed_requests(server.port, "/health", n)
        time.sleep(0.5)
        handler = handler_durations(server.errfile.read_text(), n)
        rps = throughput(server.port, "/health", 400)
    finally:
        server.stop()
    health = statistics.median(health_lat)
    handler_med = statistics.median(handler)
    list_fast = listing_rps(args.items, 100, fast=True)
    list_moto = listing_rps(args.items, 3, fast=False)
    result = {
        "baseline_stdlib_http_server_ms": round(baseline * 1000, 3),
        "unknown_route_ms": round(gateway * 1000, 3),
        "gateway_ratio": round(gateway / baseline, 2),
        "health_ms": round(health * 1000, 3),
        "health_handler_ms": round(handler_med * 1000, 3),
        "health_ratio": round(health / handler_med, 2),
        "health_rps_concurrent": round(rps, 1),
        "concurrency": CONCURRENCY,
        "items": args.items,
        "list_rps": round(list_fast, 1),
        "list_rps_moto_unpatched": round(list_moto, 2),
        "targets": TARGETS,
    }
    result["ok"] = (result["gateway_ratio"] <= TARGETS["gateway_ratio"]
                    and result["health_ratio"] <= TARGETS["health_ratio"]
                    and result["list_rps"] >= TARGETS["list_rps"])
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"over one keep-alive connection, median of {n} requests")
        print(f"  stdlib http.server, trivial handler   {baseline * 1000:8.3f} ms")
        print(f"  unknown route (403, no handler)        {gateway * 1000:8.3f} ms   "
              f"{result['gateway_ratio']:5.2f} x baseline (target <= {TARGETS['gateway_ratio']})")
        print(f"  GET /health                            {health * 1000:8.3f} ms   "
              f"{result['health_ratio']:5.2f} x the handler's own {handler_med * 1000:.3f} ms "
              f"(target <= {TARGETS['health_ratio']})")
        print(f"GET /health, {CONCURRENCY} concurrent keep-alive clients: {rps:8.1f} requests/s")
        print(f"GET /items?limit=20 with {args.items} items: {list_fast:8.1f} requests/s "
              f"(target >= {TARGETS['list_rps']:.0f}); moto unpatched: {list_moto:.2f} requests/s")
        print(f"targets met: {'yes' if result['ok'] else 'NO'}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
