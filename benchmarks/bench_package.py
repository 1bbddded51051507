"""Benchmark: deployctl package (cold and warm) against `zip -r -X`, and a no-change publish-lambda.

Run: .venv/bin/python benchmarks/bench_package.py [--repeat N]

* cold: every function built with an empty cache; warm: the same call again (cache hits);
  both as ratios to the baseline measured in the same run: `zip -r -X -q` of the whole
  lambda_src/ tree once per function (what a naive per-function script does).
* publish: a second `publish-lambda` with nothing changed, against a local moto server
  over HTTP: wall time and bytes uploaded (target: 0 bytes, well under a second).

Works on a temp copy of the project's defaults.toml and lambda_src/ (or the test
fixture if lambda_src/ has no handlers yet), so the checkout's cache is untouched.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli"))

from deployctl.artifacts import packaging, publish  # noqa: E402
from deployctl.config import load_defaults, load_env  # noqa: E402
from deployctl.ui import UI, table  # noqa: E402

FIXTURE = ROOT / "tests" / "fixtures" / "lambda_src_demo"
MOTO_ACCOUNT = "123456789012"


def make_project(dest: Path) -> Path:
    if any((ROOT / "lambda_src").rglob("*.py")):
        (dest / "terraform/envs/dev").mkdir(parents=True)
        shutil.copy(ROOT / "terraform/envs/defaults.toml", dest / "terraform/envs/defaults.toml")
        shutil.copy(ROOT / "terraform/envs/dev/env.toml", dest / "terraform/envs/dev/env.toml")
        shutil.copytree(ROOT / "lambda_src", dest / "lambda_src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    else:
        shutil.copytree(FIXTURE, dest)
    # The publish part runs against moto, whose account is 123456789012: the copy's dev env
    # says so (as docs/emulators.md tells a user to), so the account guard passes.
    env_toml = dest / "terraform/envs/dev/env.toml"
    text = env_toml.read_text(encoding="utf-8")
    text, n = re.subn(r'(?m)^account_id\s*=\s*"[0-9]*"', f'account_id = "{MOTO_ACCOUNT}"', text)
    if n == 0:
        text += f'\n[aws]\naccount_id = "{MOTO_ACCOUNT}"\n'
    env_toml.write_text(text, encoding="utf-8")
    return dest


def timed(fn, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def bench_package(project: Path, repeat: int) -> list[list[str]]:
    cfg = load_defaults(project)
    n = len(cfg.functions)
    out = project / "zipbase"
    out.mkdir()

    def baseline():
        for i in range(n):
            subprocess.run(["zip", "-r", "-X", "-q", str(out / f"{i}.zip"), "lambda_src"], cwd=project, check=True)
        for p in out.iterdir():
            p.unlink()

    def cold():
        shutil.rmtree(project / ".deployctl", ignore_errors=True)
        packaging.package(cfg)

    def warm():
        arts = packaging.package(cfg)
        assert all(a.cached for a in arts)

    base = timed(baseline, repeat)
    cold_s = timed(cold, repeat)
    warm_s = timed(warm, repeat)
    return [
        [f"zip -r -X lambda_src x{n} (baseline)", f"{base * 1000:.1f} ms", "1.00"],
        [f"package cold ({n} functions)", f"{cold_s * 1000:.1f} ms", f"{cold_s / base:.2f}"],
        [f"package warm ({n} functions)", f"{warm_s * 1000:.1f} ms", f"{warm_s / base:.2f}"],
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_publish(project: Path) -> list[list[str]]:
    import logging

    import boto3
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no per-request lines from the emulator

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
            os.environ.pop(key, None)
        os.environ.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                           "AWS_EC2_METADATA_DISABLED": "true",
                           "AWS_DEFAULT_REGION": "eu-west-1", "AWS_REGION": "eu-west-1",
                           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"})
        cfg = load_env("dev", project)
        s3 = boto3.client("s3")
        bucket = cfg.artifact_bucket()
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": cfg.region})
        s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        kms = boto3.client("kms")
        kms.create_alias(AliasName=f"alias/{cfg.prefix}", TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
        quiet = UI(json_mode=True, err=open(os.devnull, "w"))  # noqa: SIM115
        start = time.perf_counter()
        first = publish.publish(cfg, ui=quiet)
        first_s = time.perf_counter() - start
        start = time.perf_counter()
        second = publish.publish(cfg, ui=quiet)
        second_s = time.perf_counter() - start
    finally:
        server.stop()
    return [
        ["publish-lambda, first (uploads)", f"{first_s * 1000:.1f} ms", f"{first['bytes_uploaded']} B"],
        ["publish-lambda, no change", f"{second_s * 1000:.1f} ms", f"{second['bytes_uploaded']} B"],
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = make_project(Path(tmp) / "proj")
        print(table(bench_package(project, args.repeat), ["package", "median", "ratio"]))
        print()
        print(table(bench_publish(project), ["publish (local moto over HTTP)", "time", "uploaded"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
