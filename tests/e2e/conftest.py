"""The end-to-end harness: the real deployctl CLI, real Terraform and the real AWS
provider, against a moto server (with tests/e2e/moto_compat.py's fixes) on 127.0.0.1.

What it needs, found the way a user's machine provides it:
- Terraform >= 1.10: ``DEPLOYCTL_E2E_TERRAFORM`` or ``DEPLOYCTL_TERRAFORM``, else the
  first ``terraform`` on PATH that is new enough (the test-only 1.0.3 in .venv/bin is
  passed over).
- the hashicorp/aws provider through Terraform's own mechanisms: ``TF_CLI_CONFIG_FILE``
  (e.g. a ``filesystem_mirror`` block), or ``DEPLOYCTL_E2E_PROVIDER_MIRROR`` (a mirror
  folder, the one above ``registry.terraform.io``) for which a CLI config is written,
  or ``DEPLOYCTL_E2E_PROVIDER=registry`` on a machine that reaches the registry.

Without them the suite skips with one line saying what is missing; with
``DEPLOYCTL_E2E_REQUIRED=1`` (set by .ci/run) that skip is a failure instead.
Every wait is bounded: each CLI call has a timeout and kills its whole process
group when it runs out; AWS_MAX_ATTEMPTS keeps the provider from retrying a 500
for minutes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MOTO_ACCOUNT = "123456789012"
CI_REPOSITORY = "example-org/deployctl-demo"  # moto's default account id (docs/emulators.md)
REGION = "eu-west-1"
MIN_TERRAFORM = (1, 10)
CALL_TIMEOUT_S = float(os.environ.get("DEPLOYCTL_E2E_CALL_TIMEOUT_S", "600"))
COPIED = ("api", "lambda_src", "policy", "terraform")
GENERATED = {".terraform", ".deployctl", "__pycache__", ".terraform.lock.hcl", "deployctl.auto.tfvars.json",
             "backend.hcl", "artifacts.json", "terraform.tfstate", "terraform.tfstate.backup"}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pytest_collection_modifyitems(items):
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.slow)


def unavailable(what: str) -> None:
    message = f"e2e suite not run: {what}"
    if os.environ.get("DEPLOYCTL_E2E_REQUIRED") == "1":
        pytest.fail(message + " (DEPLOYCTL_E2E_REQUIRED=1 makes this a failure)", pytrace=False)
    pytest.skip(message)


# -- tools ---------------------------------------------------------------------------------


def terraform_version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60).stdout
        version = json.loads(out)["terraform_version"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def find_terraform() -> tuple[str, str]:
    """(binary, version) of a Terraform >= 1.10, or unavailable()."""
    candidates = []
    chosen = os.environ.get("DEPLOYCTL_E2E_TERRAFORM") or os.environ.get("DEPLOYCTL_TERRAFORM")
    if chosen:
        candidates.append(chosen)
    else:
        for folder in os.environ.get("PATH", "").split(os.pathsep):
            exe = Path(folder) / "terraform"
            if exe.is_file() and os.access(exe, os.X_OK) and str(exe) not in candidates:
                candidates.append(str(exe))
    seen = []
    for binary in candidates:
        version = terraform_version(binary)
        seen.append(f"{binary} ({'.'.join(map(str, version)) if version else 'not runnable'})")
        if version and version[:2] >= MIN_TERRAFORM:
            return binary, ".".join(map(str, version))
    unavailable("no Terraform >= 1.10 (set DEPLOYCTL_E2E_TERRAFORM or put one on PATH); found: "
                + (", ".join(seen) or "none"))
    raise AssertionError("not reached")


def provider_config(tmp: Path) -> dict[str, str]:
    """Environment variables that let terraform init install hashicorp/aws, or unavailable().

    An explicit mirror (``DEPLOYCTL_E2E_PROVIDER_MIRROR``, what .ci/run passes) wins; then a
    ``TF_CLI_CONFIG_FILE`` that exists (machines may export one that does not); then the registry,
    only when asked for.
    """
    mirror = os.environ.get("DEPLOYCTL_E2E_PROVIDER_MIRROR")
    if mirror:
        found = list(Path(mirror).glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"))
        if not found:
            unavailable(f"DEPLOYCTL_E2E_PROVIDER_MIRROR={mirror} holds no registry.terraform.io/hashicorp/aws provider")
        config = tmp / "terraform.rc"
        config.write_text(
            "provider_installation {\n  filesystem_mirror {\n"
            f"    path    = {json.dumps(str(Path(mirror).resolve()))}\n"
            '    include = ["registry.terraform.io/hashicorp/aws"]\n  }\n}\n',
            encoding="utf-8",
        )
        return {"TF_CLI_CONFIG_FILE": str(config)}
    configured = os.environ.get("TF_CLI_CONFIG_FILE")
    if configured and Path(configured).is_file():
        return {"TF_CLI_CONFIG_FILE": configured}
    if os.environ.get("DEPLOYCTL_E2E_PROVIDER") == "registry":
        return {}
    unavailable("no hashicorp/aws provider source: set DEPLOYCTL_E2E_PROVIDER_MIRROR=<mirror folder>, "
                "TF_CLI_CONFIG_FILE (an existing file with a filesystem_mirror), or DEPLOYCTL_E2E_PROVIDER=registry "
                f"with internet{f' (TF_CLI_CONFIG_FILE={configured} does not exist)' if configured else ''}")
    raise AssertionError("not reached")


# -- the emulator --------------------------------------------------------------------------


@dataclass
class Moto:
    endpoint: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("moto_compat.py")), str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"moto server did not start: {log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.2)
    try:
        yield Moto(endpoint, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the project and the CLI ----------------------------------------------------------------


def copy_project(dest: Path) -> Path:
    """The checkout's deployable parts (symlinks kept: staging/prod link to dev), minus generated files."""
    def ignore(_dir, names):
        return [n for n in names if n in GENERATED]

    for name in COPIED:
        shutil.copytree(ROOT / name, dest / name, symlinks=True, ignore=ignore)
    env_toml = dest / "terraform/envs/dev/env.toml"
    text = env_toml.read_text(encoding="utf-8")
    # moto's account, and path-style S3: the suite reaches moto through a host name (localhost),
    # as a user reaches LocalStack, so the backend, the provider and boto3 must all use it
    text, n = re.subn(r'(?m)^account_id\s*=\s*"\d*".*$', f'account_id = "{MOTO_ACCOUNT}"\ns3_use_path_style = true',
                      text)
    assert n == 1, "terraform/envs/dev/env.toml must set aws.account_id"
    text += f'\n[ci]\ngithub_repository = "{CI_REPOSITORY}"\n'  # the CI roles are part of the foundation
    env_toml.write_text(text, encoding="utf-8")
    return dest


@dataclass
class CallResult:
    code: int
    doc: dict
    stdout: str
    stderr: str

    @property
    def result(self) -> dict:
        return self.doc.get("result") or {}


@dataclass
class Deployctl:
    root: Path
    env: dict[str, str]
    moto: Moto
    terraform: str

    def __call__(self, *args: str, expect: int = 0, timeout: float = CALL_TIMEOUT_S) -> CallResult:
        """Run ``deployctl ARGS --json`` as a subprocess; its own process group dies with it on timeout."""
        argv = [sys.executable, "-m", "deployctl", *args, "--json"]
        proc = subprocess.Popen(argv, cwd=self.root, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, stderr = proc.communicate()
            raise AssertionError(f"deployctl {' '.join(args)} did not finish in {timeout:.0f}s; "
                                 f"stderr tail:\n{stderr[-3000:]}\nmoto log tail:\n{self.moto.log_text()[-2000:]}") from None
        try:
            doc = json.loads(stdout) if stdout.strip() else {}
        except json.JSONDecodeError:
            raise AssertionError(f"deployctl {' '.join(args)} printed no JSON envelope:\n{stdout[-2000:]}") from None
        assert proc.returncode == expect, (
            f"deployctl {' '.join(args)} exited {proc.returncode}, expected {expect}\n"
            f"stderr tail:\n{stderr[-4000:]}\nmoto log tail:\n{self.moto.log_text()[-1500:]}")
        return CallResult(proc.returncode, doc, stdout, stderr)

    def terraform_cmd(self, *args: str, env_name: str = "dev") -> subprocess.CompletedProcess:
        return subprocess.run([self.terraform, *args], cwd=self.root / "terraform/envs" / env_name, env=self.env,
                              capture_output=True, text=True, timeout=300)

    def client(self, service: str):
        import boto3

        return boto3.client(service, endpoint_url=self.moto.endpoint, region_name=REGION,
                            aws_access_key_id="testing", aws_secret_access_key="testing",
                            aws_session_token="testing")


@pytest.fixture(scope="module")
def deployctl(tmp_path_factory, moto_server) -> Deployctl:
    tmp = tmp_path_factory.mktemp("e2e")
    terraform, _version = find_terraform()
    provider_env = provider_config(tmp)
    root = copy_project(tmp / "project")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DEPLOYCTL_", "TF_")) and k not in {"PYTHONSTARTUP"}}
    env.update(provider_env)
    env.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": moto_server.endpoint.replace("127.0.0.1", "localhost"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # bound every AWS retry loop (the provider honours these too): a 500 fails in seconds, not minutes
        "AWS_MAX_ATTEMPTS": "3", "AWS_RETRY_MODE": "standard",
        "DEPLOYCTL_TERRAFORM": terraform, "DEPLOYCTL_ROOT": str(root),
        "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "CI": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "cli"), os.environ.get("PYTHONPATH", "")])),
    })
    if os.environ.get("TF_PLUGIN_CACHE_DIR"):
        env["TF_PLUGIN_CACHE_DIR"] = os.environ["TF_PLUGIN_CACHE_DIR"]
    return Deployctl(root, env, moto_server, terraform)
