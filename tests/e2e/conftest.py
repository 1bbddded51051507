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
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import harness
from .harness import (  # noqa: F401 - the suite's modules import these names from here
    CI_REPOSITORY,
    MOTO_ACCOUNT,
    REGION,
    ROOT,
    Moto,
    copy_project,
    free_port,
)

CALL_TIMEOUT_S = float(os.environ.get("DEPLOYCTL_E2E_CALL_TIMEOUT_S", "600"))


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


# -- tools (tests/e2e/harness.py; missing ones skip, or fail with DEPLOYCTL_E2E_REQUIRED=1) -------


def find_terraform() -> tuple[str, str]:
    """(binary, version) of a Terraform >= 1.10, or unavailable()."""
    try:
        return harness.find_terraform()
    except harness.Unavailable as exc:
        unavailable(str(exc))
        raise AssertionError("not reached") from None


def provider_config(tmp: Path) -> dict[str, str]:
    """Environment variables that let terraform init install hashicorp/aws, or unavailable()."""
    try:
        return harness.provider_config(tmp)
    except harness.Unavailable as exc:
        unavailable(str(exc))
        raise AssertionError("not reached") from None


# -- the emulator --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def moto_server(tmp_path_factory):
    moto = harness.start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    try:
        yield moto
    finally:
        moto.stop()


# -- the project and the CLI ----------------------------------------------------------------


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
    env = harness.cli_env(root, moto_server.endpoint, terraform, provider_env)
    return Deployctl(root, env, moto_server, terraform)
