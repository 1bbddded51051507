"""Code change to live: `publish-lambda --deploy` + `promote`, against a minimal boto3 script.

A moto server (tests/e2e/moto_compat.py, a subprocess on 127.0.0.1, its request log in a file)
stands in for AWS. What the dev env's stack would hold for one function is created directly with
boto3 (artifact bucket, versioned; the KMS key and its alias; the state bucket; the function with
its ``live`` and ``staging`` aliases): the measure is the code path, not Terraform, and an
``up`` would cost minutes of plan/apply for nothing this benchmark reads. One warm-up
``publish-lambda --deploy`` + ``promote`` builds the shared layer and uploads it (as a deployed
env already has it).

Then, per run (``--runs``, interleaved, the order alternating), each variant starts from a
one-line change to the function's handler module (a new comment line, so new zip bytes):

* baseline: a minimal boto3 script in its own process: zip the function's sources, ``put_object``,
  ``update_function_code``, ``publish_version``, ``update_alias`` live;
* ``deployctl publish-lambda --function F --deploy`` then ``deployctl promote --function F --yes``
  (two processes; ``promote`` without ``--strategy`` is the product's immediate move, the default
  path for dev: no bake, no watch);
* ``deployctl publish-lambda --function F --deploy --promote`` (one process, the same two steps),
  when the CLI has that option.

Printed: the median CPU time (user + system, the process and its children) and wall time of each,
their ratios to the baseline of the same run, and the AWS requests each made, counted in moto's
request log (one line per HTTP request). Everything is torn
down at the end, also on failure or Ctrl-C (the server's process group, the temp project).

Run: .venv/bin/python benchmarks/bench_code_to_live.py [--runs 7] [--function health-check]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli"))

MOTO_ACCOUNT = "123456789012"  # moto's default account: the copy's dev env says so (docs/emulators.md)
TARGET = 1.3
# werkzeug's request line; codes other than 200 come wrapped in ANSI colours
REQUEST_LINE = re.compile(r'"(?:\x1b\[[\d;]*m)*(GET|PUT|POST|HEAD|DELETE|PATCH) (\S+) HTTP/[\d.]+(?:\x1b\[[\d;]*m)*" (\d{3})')

BASELINE = r'''
import io, sys, zipfile
from pathlib import Path

import boto3

src, files, bucket, key, function = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], sys.argv[5]
buf = io.BytesIO()
with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
    for name in files:
        zf.write(Path(src) / name, name)
s3, lam = boto3.client("s3"), boto3.client("lambda")
obj = s3.put_object(Bucket=bucket, Key=key, Body=buf.getvalue())
lam.update_function_code(FunctionName=function, S3Bucket=bucket, S3Key=key, S3ObjectVersion=obj["VersionId"])
version = lam.publish_version(FunctionName=function)["Version"]
lam.update_alias(FunctionName=function, Name="live", FunctionVersion=version)
'''


# -- the emulator --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    """tests/e2e/moto_compat.py in its own process group; every request is a line of ``log``."""

    def __init__(self, workdir: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = workdir / "moto.log"
        with self.log.open("wb") as fh:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests/e2e/moto_compat.py"), str(self.port)],
                                         stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/data.json", timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto did not start: {self.log.read_text(errors='replace')[-2000:]}") from None
                time.sleep(0.1)

    def mark(self) -> int:
        return self.log.stat().st_size

    def requests_since(self, mark: int) -> list[str]:
        with self.log.open("rb") as fh:
            fh.seek(mark)
            text = fh.read().decode("utf-8", "replace")
        return [f"{m[1]} {m[2]}" for m in REQUEST_LINE.finditer(text) if "/moto-api/" not in m[2]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


# -- the project and what the stack would hold ------------------------------------------------------


def make_project(dest: Path) -> Path:
    (dest / "terraform/envs/dev").mkdir(parents=True)
    shutil.copytree(ROOT / "api", dest / "api")
    shutil.copytree(ROOT / "lambda_src", dest / "lambda_src", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(ROOT / "terraform/envs/defaults.toml", dest / "terraform/envs/defaults.toml")
    text = (ROOT / "terraform/envs/dev/env.toml").read_text(encoding="utf-8")
    text, n = re.subn(r'(?m)^account_id\s*=\s*"\d*".*$', f'account_id = "{MOTO_ACCOUNT}"', text)
    assert n == 1, "terraform/envs/dev/env.toml must set aws.account_id"
    (dest / "terraform/envs/dev/env.toml").write_text(text, encoding="utf-8")
    # a checkout with a commit, as a user's: the provenance names it, and an artifact whose bytes the
    # manifest already records with their documents (the layer) keeps them
    git = ["git", "-C", str(dest), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "bench project"]):
        subprocess.run([*git, *args], check=True, capture_output=True)
    return dest


def placeholder_zip() -> bytes:
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("placeholder.py", "def handler(event, context):\n    return None\n")
    return buf.getvalue()


def deploy_stack(cfg, function: str) -> str:
    """The artifact bucket, KMS alias, state bucket, the function and its aliases; returns its name."""
    import boto3

    from deployctl import naming

    where = {"LocationConstraint": cfg.region}
    s3 = boto3.client("s3", region_name=cfg.region)
    s3.create_bucket(Bucket=cfg.artifact_bucket(), CreateBucketConfiguration=where)
    s3.put_bucket_versioning(Bucket=cfg.artifact_bucket(), VersioningConfiguration={"Status": "Enabled"})
    s3.create_bucket(Bucket=cfg.state_bucket(), CreateBucketConfiguration=where)
    kms = boto3.client("kms", region_name=cfg.region)
    kms.create_alias(AliasName=naming.kms_alias(cfg), TargetKeyId=kms.create_key()["KeyMetadata"]["KeyId"])
    role = boto3.client("iam").create_role(RoleName=f"{cfg.prefix}-{function}", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }))["Role"]["Arn"]
    physical = naming.function_name(cfg, function)
    lam = boto3.client("lambda", region_name=cfg.region)
    lam.create_function(FunctionName=physical, Runtime=cfg.get("lambda.runtime"), Role=role,
                        Handler=cfg.functions[function]["handler"], Code={"ZipFile": placeholder_zip()}, Publish=True)
    for alias in ("live", "staging"):
        lam.create_alias(FunctionName=physical, Name=alias, FunctionVersion="1")
    return physical


def function_files(project: Path, cfg, function: str) -> tuple[Path, list[str]]:
    """The baseline zips the function's package and the shared package (what the handler imports)."""
    src = project / "lambda_src"
    package = cfg.functions[function]["handler"].split(".")[0]
    files = sorted(str(p.relative_to(src)) for d in (package, "shared") for p in (src / d).rglob("*.py"))
    return src, files


def handler_file(project: Path, cfg, function: str) -> Path:
    module = cfg.functions[function]["handler"].rsplit(".", 1)[0]
    return project / "lambda_src" / (module.replace(".", "/") + ".py")


# -- one measured command --------------------------------------------------------------------------


def _children_cpu() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], env: dict, moto: Moto, cwd: Path) -> tuple[float, float, list[str]]:
    """Wall time, CPU time (the process and its children: git, the runtime's Python) and the requests."""
    mark = moto.mark()
    cpu = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    cpu = _children_cpu() - cpu
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    time.sleep(0.05)  # the server's log line of the last request
    return elapsed, cpu, moto.requests_since(mark)


def measure(runs: int, function: str, show_requests: bool) -> list[dict]:
    from deployctl.config import load_env

    deployctl = str(Path(sys.executable).with_name("deployctl"))
    with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
        work = Path(tmp)
        project = make_project(work / "project")
        moto = Moto(work)
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOYCTL_"))}
            env.update({"AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing",
                        "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "eu-west-1",
                        "AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true",
                        "DEPLOYCTL_ROOT": str(project), "CI": "1"})
            # bytecode as a user's machine has it after the first run (warm-ups below), for every variant
            # alike, kept in the temp dir (the venv is not written to)
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
            os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
            cfg = load_env("dev", project)
            physical = deploy_stack(cfg, function)
            script = work / "baseline.py"
            script.write_text(BASELINE, encoding="utf-8")
            src, files = function_files(project, cfg, function)
            handler = handler_file(project, cfg, function)
            publish = [deployctl, "--env", "dev", "publish-lambda", "--function", function, "--deploy"]
            promote = [deployctl, "--env", "dev", "promote", "--function", function, "--yes"]
            help_text = subprocess.run([deployctl, "publish-lambda", "--help"], env=env, capture_output=True,
                                       text=True, cwd=project).stdout
            single = "--promote" in help_text
            change = iter(range(1_000_000))

            def edit() -> None:
                with handler.open("a", encoding="utf-8") as fh:
                    fh.write(f"# bench change {next(change)}\n")

            def baseline() -> dict:
                edit()
                key = f"bench/{function}-{time.monotonic_ns()}.zip"
                t, cpu, reqs = run([sys.executable, str(script), str(src), ",".join(files), cfg.artifact_bucket(), key,
                                    physical], env, moto, project)
                return {"time": t, "cpu": cpu, "requests": reqs}

            # warm-up (not measured): the layer is built and uploaded once, the bytecode caches are written
            edit()
            run(publish, env, moto, project)
            run(promote, env, moto, project)
            baseline()

            def pair() -> dict:
                edit()
                t1, c1, r1 = run(publish, env, moto, project)
                t2, c2, r2 = run(promote, env, moto, project)
                return {"time": t1 + t2, "cpu": c1 + c2, "requests": r1 + r2, "parts": (len(r1), len(r2))}

            def one() -> dict:
                edit()
                t, cpu, reqs = run([*publish, "--promote"], env, moto, project)
                return {"time": t, "cpu": cpu, "requests": reqs}

            variants = {"baseline": baseline, "pair": pair}
            if single:
                variants["single"] = one
            samples: dict[str, list[dict]] = {name: [] for name in variants}
            names = list(variants)
            for i in range(runs):
                for name in names if i % 2 == 0 else list(reversed(names)):
                    samples[name].append(variants[name]())
            live = _live_version(cfg, physical)
        finally:
            moto.stop()
    base = statistics.median(s["time"] for s in samples["baseline"])
    base_cpu = statistics.median(s["cpu"] for s in samples["baseline"])
    rows = []
    labels = {
        "baseline": "boto3 script: zip, put_object, update_function_code, publish_version, update_alias",
        "pair": "publish-lambda --deploy, then promote --yes (2 processes)",
        "single": "publish-lambda --deploy --promote (1 process)",
    }
    for name, items in samples.items():
        t = statistics.median(s["time"] for s in items)
        last = items[-1]
        cpu = statistics.median(s["cpu"] for s in items)
        row = {"name": name, "label": labels[name], "time": t, "ratio": t / base, "cpu": cpu,
               "cpu_ratio": cpu / base_cpu if base_cpu else 0.0, "requests": len(last["requests"]),
               "detail": last["requests"]}
        if "parts" in last:
            row["parts"] = last["parts"]
        rows.append(row)
    if show_requests:
        for row in rows:
            print(f"{row['label']}:", file=sys.stderr)
            for line in row["detail"]:
                print(f"  {line}", file=sys.stderr)
    assert live.isdigit(), live
    return rows


def _live_version(cfg, physical: str) -> str:
    import boto3

    return boto3.client("lambda", region_name=cfg.region).get_alias(FunctionName=physical, Name="live")[
        "FunctionVersion"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="interleaved runs (the median is printed)")
    parser.add_argument("--function", default="health-check", help="the function changed and deployed")
    parser.add_argument("--show-requests", action="store_true", help="list each variant's requests on stderr")
    args = parser.parse_args(argv)
    rows = measure(args.runs, args.function, args.show_requests)
    width = max(len(r["label"]) for r in rows)
    print(f"{'code change to live (moto, median of ' + str(args.runs) + ')':<{width}}  {'cpu s':>6}  {'cpu':>6}  "
          f"{'median s':>8}  {'ratio':>6}  {'requests':>8}")
    for r in rows:
        reqs = f"{r['requests']}" + (f" ({r['parts'][0]}+{r['parts'][1]})" if "parts" in r else "")
        print(f"{r['label']:<{width}}  {r['cpu']:>6.3f}  {r['cpu_ratio']:>5.2f}x  {r['time']:>8.3f}  "
              f"{r['ratio']:>5.2f}x  {reqs:>8}")
    print(f"target: <= {TARGET}x (the wall-time ratio; cpu: user + system time of the process and its children, "
          "steadier on a loaded machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
