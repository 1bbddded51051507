"""What the e2e suite and the benchmarks that deploy share, without pytest: finding Terraform
and the AWS provider, the moto server with tests/e2e/moto_compat.py's fixes, a copy of the
project, and the environment deployctl runs in against that server.

tests/e2e/conftest.py wraps these in fixtures (and turns :class:`Unavailable` into a skip, or a
failure with ``DEPLOYCTL_E2E_REQUIRED=1``); benchmarks/bench_plan.py calls them directly.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

MOTO_ACCOUNT = "123456789012"  # moto's default account id (docs/emulators.md)
CI_REPOSITORY = "example-org/deployctl-demo"
REGION = "eu-west-1"
MIN_TERRAFORM = (1, 10)
COPIED = ("api", "lambda_src", "policy", "terraform")
GENERATED = {".terraform", ".deployctl", "__pycache__", ".terraform.lock.hcl", "deployctl.auto.tfvars.json",
             "backend.hcl", "artifacts.json", "terraform.tfstate", "terraform.tfstate.backup"}


class Unavailable(Exception):
    """Terraform or the provider is missing: the one line saying what and how to provide it."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- tools ---------------------------------------------------------------------------------


def terraform_version(binary: str) -> tuple[int, ...] | None:
    try:
        out = subprocess.run([binary, "version", "-json"], capture_output=True, text=True, timeout=60).stdout
        version = json.loads(out)["terraform_version"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return None
    return tuple(int(x) for x in re.findall(r"\d+", version)[:3])


def find_terraform() -> tuple[str, str]:
    """(binary, version) of a Terraform >= 1.10: ``DEPLOYCTL_E2E_TERRAFORM`` or ``DEPLOYCTL_TERRAFORM``,
    else the first new enough ``terraform`` on PATH; else :class:`Unavailable`."""
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
    raise Unavailable("no Terraform >= 1.10 (set DEPLOYCTL_E2E_TERRAFORM or put one on PATH); found: "
                      + (", ".join(seen) or "none"))


def provider_config(tmp: Path, mirror: str | None = None) -> dict[str, str]:
    """Environment variables that let terraform init install hashicorp/aws, else :class:`Unavailable`.

    An explicit mirror (``mirror``, else ``DEPLOYCTL_E2E_PROVIDER_MIRROR``, what .ci/run passes)
    wins; then a ``TF_CLI_CONFIG_FILE`` that exists (machines may export one that does not); then
    the registry, only when asked for (``DEPLOYCTL_E2E_PROVIDER=registry``).
    """
    mirror = mirror or os.environ.get("DEPLOYCTL_E2E_PROVIDER_MIRROR")
    if mirror:
        found = list(Path(mirror).glob("registry.terraform.io/hashicorp/aws/*/*/terraform-provider-aws*"))
        if not found:
            raise Unavailable(f"DEPLOYCTL_E2E_PROVIDER_MIRROR={mirror} holds no registry.terraform.io/hashicorp/aws "
                              "provider")
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
    raise Unavailable("no hashicorp/aws provider source: set DEPLOYCTL_E2E_PROVIDER_MIRROR=<mirror folder>, "
                      "TF_CLI_CONFIG_FILE (an existing file with a filesystem_mirror), or "
                      "DEPLOYCTL_E2E_PROVIDER=registry with internet"
                      f"{f' (TF_CLI_CONFIG_FILE={configured} does not exist)' if configured else ''}")


# -- the emulator --------------------------------------------------------------------------


@dataclass
class Moto:
    endpoint: str
    process: subprocess.Popen
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self) -> None:
        """SIGTERM (moto_compat's handler runs atexit: its Lambda workers end), then SIGKILL after 10 s."""
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_moto(log: Path, *, timeout: float = 60) -> Moto:
    """tests/e2e/moto_compat.py on a free port of 127.0.0.1, answering; its output goes to ``log``."""
    port = free_port()
    with log.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("moto_compat.py")), str(port)],
                                stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=2).read()
            return Moto(endpoint, proc, log)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=10)
                raise RuntimeError(f"moto server did not start: {log.read_text(errors='replace')[-2000:]}") from None
            time.sleep(0.2)


# -- the project and the CLI ----------------------------------------------------------------


def copy_project(dest: Path) -> Path:
    """The checkout's deployable parts (symlinks kept: staging/prod link to dev), minus generated files,
    with the dev env pointed at moto's account (path-style S3) and the CI roles on."""
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


def cli_env(root: Path, endpoint: str, terraform: str, provider_env: dict[str, str]) -> dict[str, str]:
    """The environment deployctl (and raw terraform) run in against the moto server at ``endpoint``:
    fake credentials, moto's URL by a host name, bounded retries, no AWS_/DEPLOYCTL_/TF_ variable of
    the caller's own."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "DEPLOYCTL_", "TF_")) and k not in {"PYTHONSTARTUP"}}
    env.update(provider_env)
    env.update({
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
        "AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL": endpoint.replace("127.0.0.1", "localhost"),
        "AWS_EC2_METADATA_DISABLED": "true",
        # bound every AWS retry loop (the provider honours these too): a 500 fails in seconds, not minutes
        "AWS_MAX_ATTEMPTS": "3", "AWS_RETRY_MODE": "standard",
        "DEPLOYCTL_TERRAFORM": terraform, "DEPLOYCTL_ROOT": str(root),
        "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "CI": "true",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "cli"), os.environ.get("PYTHONPATH", "")])),
    })
    if os.environ.get("TF_PLUGIN_CACHE_DIR"):
        env["TF_PLUGIN_CACHE_DIR"] = os.environ["TF_PLUGIN_CACHE_DIR"]
    return env
