"""A rollout's own overhead, in time and AWS API calls per poll, next to the bake time it watches.

One canary rollout of the runtime_demo fixture's ``echo`` function on a moto server (127.0.0.1,
in-process ThreadedMotoServer), driven by the real rollout loop
(:class:`deployctl.delivery.rollout.Rollout`: guarded record writes, alias moves, alarm and metric
reads) with a custom strategy from config: ``--weight`` % for ``--bake`` seconds, then 100 %,
polling every ``--poll`` seconds. The pre-traffic invocation is left out (it is one Invoke, and
moto without the e2e compat layer cannot run code). Reported:

* the bake time watched, the wall time of the whole rollout, and the difference (the rollout's own
  time: alias moves, record writes, the last poll);
* polls, and per poll: AWS requests (DescribeAlarms, GetMetricData, the record's lease renewal)
  and the time they took, as a share of the poll interval (the watcher's duty cycle).

Against real AWS the per-call latencies are higher (tens of ms) than against a local moto; the call
counts are the same.

Run: .venv/bin/python benchmarks/bench_rollout.py [--bake 6] [--poll 1] [--weight 10]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli"))

ACCOUNT = "123456789012"


def _setup(endpoint: str, project: Path) -> None:
    import boto3

    def client(service):
        return boto3.client(service, endpoint_url=endpoint, region_name="eu-west-1")

    s3, lam, iam, cw = client("s3"), client("lambda"), client("iam"), client("cloudwatch")
    where = {"LocationConstraint": "eu-west-1"}
    s3.create_bucket(Bucket="code", CreateBucketConfiguration=where)
    s3.create_bucket(Bucket=f"rtdemo-tfstate-{ACCOUNT}-eu-west-1", CreateBucketConfiguration=where)
    s3.put_object(Bucket="code", Key="echo.zip", Body=(project / "echo.zip").read_bytes())
    role = iam.create_role(RoleName="fn", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "lambda.amazonaws.com"}}]}))
    lam.create_function(FunctionName="rtdemo-dev-echo", Runtime="python3.12", Role=role["Role"]["Arn"],
                        Handler="echo.handler.handler", Code={"S3Bucket": "code", "S3Key": "echo.zip"})
    lam.publish_version(FunctionName="rtdemo-dev-echo")
    lam.update_function_configuration(FunctionName="rtdemo-dev-echo", Description="new")
    lam.publish_version(FunctionName="rtdemo-dev-echo")
    lam.create_alias(FunctionName="rtdemo-dev-echo", Name="live", FunctionVersion="1")
    for kind in ("errors", "throttles", "dlq-depth"):
        cw.put_metric_alarm(AlarmName=f"rtdemo-dev-lambda-echo-{kind}", MetricName="Errors", Namespace="AWS/Lambda",
                            Statistic="Sum", Period=60, EvaluationPeriods=1, Threshold=1,
                            ComparisonOperator="GreaterThanOrEqualToThreshold")


def measure(bake: int, poll: int, weight: int) -> dict:
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log lines

    from deployctl.config import load_env
    from deployctl.delivery import rollout as core
    from deployctl.delivery.record import RecordStore
    from deployctl.delivery.watch import Watcher
    from deployctl.ui import UI

    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        shutil.copytree(ROOT / "tests/fixtures/runtime_demo", project)
        (project / "terraform/envs/dev/env.toml").write_text(
            f'[aws]\naccount_id = "{ACCOUNT}"\n\n[rollout]\npoll_s = {poll}\n\n[rollout.strategies.Bench]\n'
            f"steps = [{{ weight = {weight}, bake_s = {bake} }}, {{ weight = 100, bake_s = 0 }}]\n")
        import zipfile

        with zipfile.ZipFile(project / "echo.zip", "w") as zf:
            zf.writestr("echo/handler.py", "def handler(event, context):\n    return {'statusCode': 200}\n")
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                                "AWS_DEFAULT_REGION", "AWS_EC2_METADATA_DISABLED")}
        os.environ.update({"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "testing",
                           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                           "AWS_EC2_METADATA_DISABLED": "true"})
        try:
            _setup(f"http://127.0.0.1:{port}", project)
            cfg = load_env("dev", project)
            name, steps = core.strategies.resolve(cfg, "echo", "Bench")
            data = {"function": "echo", "function_name": "rtdemo-dev-echo", "env": "dev", "from": "1", "to": "2",
                    "strategy": name, "steps": [s.to_dict() for s in steps], "step": 0,
                    "started": core._iso(core._now()), "by": "bench", "owner": "bench", "engine": "lambda-alias",
                    "error_rate_percent": 1.0, "ignored_alarms": []}
            store = RecordStore(cfg)
            etag = store.create("echo", data)
            poll_times: list[float] = []
            original = Watcher.read

            def timed(self):
                t0 = time.perf_counter()
                try:
                    return original(self)
                finally:
                    poll_times.append(time.perf_counter() - t0)

            Watcher.read = timed
            calls_before = store.calls
            run = core.Rollout(cfg, "echo", data, store, etag, UI(err=open(os.devnull, "w")), threading.Event())
            t0 = time.perf_counter()
            result = run.run()
            wall = time.perf_counter() - t0
            Watcher.read = original
            assert result["outcome"] == "promoted", result
            polls = run.polls
            watcher_calls = run.watcher.calls
            record_calls = store.calls - calls_before
            return {"bake_s": sum(s.bake_s for s in steps), "wall_s": wall, "polls": polls,
                    "watch_calls": watcher_calls, "record_calls": record_calls, "alias_calls": run.engine.calls,
                    "poll_ms": 1000 * sum(poll_times) / max(len(poll_times), 1), "poll_s": poll}
        finally:
            server.stop()
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bake", type=int, default=6, help="seconds of bake at the first step")
    parser.add_argument("--poll", type=int, default=1, help="poll interval ([rollout] poll_s)")
    parser.add_argument("--weight", type=int, default=10, help="the canary's weight")
    args = parser.parse_args(argv)
    m = measure(args.bake, args.poll, args.weight)
    per_poll_calls = (m["watch_calls"] + max(m["record_calls"] - 2, 0)) / max(m["polls"], 1)
    rows = [
        ("bake time watched", f"{m['bake_s']:.2f} s"),
        ("rollout wall time", f"{m['wall_s']:.2f} s"),
        ("rollout's own time (wall - bake)", f"{m['wall_s'] - m['bake_s']:.2f} s"),
        ("own time / bake time", f"{(m['wall_s'] - m['bake_s']) / max(m['bake_s'], 1):.3f}x"),
        ("polls", str(m["polls"])),
        ("AWS calls per poll (alarms + metrics + lease)", f"{per_poll_calls:.2f}"),
        ("time per poll (alarms + metrics)", f"{m['poll_ms']:.1f} ms"),
        ("poll time / poll interval", f"{m['poll_ms'] / 1000 / m['poll_s']:.3f}x"),
        ("alias calls (reads + UpdateAlias), whole rollout", str(m["alias_calls"])),
        ("record calls (create excluded), whole rollout", str(m["record_calls"])),
    ]
    width = max(len(r[0]) for r in rows)
    for label, value in rows:
        print(f"{label:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
