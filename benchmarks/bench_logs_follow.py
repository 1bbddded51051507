"""`deployctl logs --follow`: lag from put_log_events to the printed line, against moto.

In one run, on one moto server (127.0.0.1): `deployctl logs --env dev --function alpha --follow --json`
as a subprocess, and, side by side in this process, a raw boto3 loop that calls filter_log_events
every poll interval. Each round puts one line and times when each prints/sees it. Both poll at
the same interval (``DEPLOYCTL_LOGS_POLL_S`` for deployctl), so the ratio shows what deployctl's
loop costs on top (process, formatting, its bounded backoff while idle); the lag is also given as a
multiple of the poll interval. Rounds are spaced at random (0 to 2 intervals) so neither loop is
always in phase.

Usage: .venv/bin/python benchmarks/bench_logs_follow.py [--rounds 20] [--poll 0.5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

GROUP = "/aws/lambda/bench-dev-alpha"
ACCOUNT = "123456789012"  # moto's default account


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_project(root: Path) -> Path:
    envs = root / "terraform" / "envs"
    (envs / "dev").mkdir(parents=True)
    (envs / "defaults.toml").write_text(
        '[app]\nname = "bench"\n\n[aws]\nregion = "eu-west-1"\n'
        f'account_id = "{ACCOUNT}"\n\n[functions.alpha]\nhandler = "svc.alpha.handler"\n\n'
        '[tables.items]\npartition_key = "pk"\n', encoding="utf-8")
    (envs / "dev" / "env.toml").write_text("", encoding="utf-8")
    return root


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--poll", type=float, default=0.5, help="poll interval of both loops, seconds")
    args = parser.parse_args()

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines between the results

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "eu-west-1",
                "AWS_DEFAULT_REGION": "eu-west-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "AWS_EC2_METADATA_DISABLED": "true", "NO_COLOR": "1"})
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    import boto3

    logs = boto3.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="s")

    seen: dict[str, dict[str, float]] = {"deployctl": {}, "raw": {}}
    stop = threading.Event()

    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp))
        env.update({"DEPLOYCTL_ROOT": str(root), "DEPLOYCTL_LOGS_POLL_S": str(args.poll)})
        proc = subprocess.Popen([sys.executable, "-m", "deployctl", "logs", "--env", "dev", "--function", "alpha",
                                 "--follow", "--since", "1m", "--json"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

        def read_deployctl() -> None:
            for line in proc.stdout:
                now = time.perf_counter()
                try:
                    message = (json.loads(line).get("record") or {}).get("message")
                except ValueError:
                    continue
                if message:
                    seen["deployctl"].setdefault(message, now)

        def raw_loop() -> None:
            client = boto3.client("logs")
            cursor = int(time.time() * 1000) - 60_000
            ids: set[str] = set()
            while not stop.is_set():
                for ev in client.filter_log_events(logGroupName=GROUP, startTime=cursor).get("events", []):
                    if ev["eventId"] in ids:
                        continue
                    ids.add(ev["eventId"])
                    cursor = max(cursor, ev["timestamp"])
                    seen["raw"].setdefault(json.loads(ev["message"])["message"], time.perf_counter())
                stop.wait(args.poll)

        threads = [threading.Thread(target=read_deployctl, daemon=True), threading.Thread(target=raw_loop, daemon=True)]
        for t in threads:
            t.start()
        time.sleep(max(2.0, 3 * args.poll))  # both loops running (deployctl has started and polled)

        lags: dict[str, list[float]] = {"deployctl": [], "raw": []}
        rng = random.Random(7)
        for i in range(args.rounds):
            marker = f"bench-{i}"
            t0 = time.perf_counter()
            logs.put_log_events(logGroupName=GROUP, logStreamName="s", logEvents=[
                {"timestamp": int(time.time() * 1000), "message": json.dumps({"level": "INFO", "message": marker})}])
            deadline = time.monotonic() + 30 * args.poll + 10
            while not all(marker in seen[k] for k in seen) and time.monotonic() < deadline:
                time.sleep(0.005)
            for k in seen:
                if marker not in seen[k]:
                    raise SystemExit(f"{k} never showed {marker}: {proc.stderr.read() if k == 'deployctl' else ''}")
                lags[k].append(seen[k][marker] - t0)
            time.sleep(rng.uniform(0, 2 * args.poll))

        stop.set()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=30)
        server.stop()
        if code != 0:
            raise SystemExit(f"deployctl logs --follow exited {code} on Ctrl-C: {proc.stderr.read()[-2000:]}")

    d, r = lags["deployctl"], lags["raw"]
    print(f"logs --follow lag, {args.rounds} lines, poll interval {args.poll * 1000:.0f} ms (moto on 127.0.0.1)")
    print(f"{'loop':<34} {'median ms':>10} {'p90 ms':>9} {'x poll':>7} {'ratio':>7}")
    for label, values in (("raw boto3 filter_log_events loop", r), ("deployctl logs --follow", d)):
        med = statistics.median(values)
        print(f"{label:<34} {med * 1000:>10.1f} {pct(values, 0.9) * 1000:>9.1f} {med / args.poll:>7.2f} "
              f"{med / statistics.median(r):>7.2f}")


if __name__ == "__main__":
    main()
