"""deployctl doctor: what is installed, what is missing, and how to fix it."""

from __future__ import annotations

import platform
import sys
from dataclasses import asdict, dataclass
from importlib import metadata

from deployctl import tools
from deployctl.config import EnvConfig, Settings


@dataclass
class Check:
    name: str
    required: bool
    ok: bool
    version: str | None = None
    path: str | None = None
    detail: str | None = None
    fix: str | None = None


def _package(name: str, required: bool, purpose: str) -> Check:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, required, False, detail=f"not installed ({purpose})",
                     fix=f"pip install -e . (it brings {name})")
    return Check(name, required, True, version=version, detail=purpose)


def _aws_identity(cfg: EnvConfig | None) -> Check:
    """Who boto3's standard chain would act as; never required (deployctl local needs none)."""
    name = "aws-identity"
    try:
        import boto3
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:
        return Check(name, False, False, detail="boto3 is not installed", fix="pip install -e .")
    region = cfg.region if cfg else None
    session = boto3.Session(region_name=region) if region else boto3.Session()
    if session.get_credentials() is None:
        return Check(name, False, False, detail="no AWS credentials found in the standard chain",
                     fix="aws configure / aws sso login / set AWS_PROFILE; only needed to deploy")
    try:
        sts = session.client("sts", region_name=session.region_name or "us-east-1",
                             config=Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 1}))
        ident = sts.get_caller_identity()
    except (BotoCoreError, ClientError) as exc:
        return Check(name, False, False, detail=f"credentials found but STS failed: {exc}"[:300],
                     fix="check network access, the profile, or AWS_ENDPOINT_URL")
    account = ident.get("Account", "")
    detail = f"{ident.get('Arn')} (account {account})"
    check = Check(name, False, True, version=account, detail=detail)
    if cfg and cfg.account_id and account != cfg.account_id:
        check.ok = False
        check.fix = f"env '{cfg.name}' is for account {cfg.account_id}: use credentials for that account"
    return check


def run(settings: Settings, cfg: EnvConfig | None) -> list[Check]:
    checks: list[Check] = []
    minimum = (cfg.get("tools.terraform_min_version") if cfg else None) or "1.10.0"

    py_ok = sys.version_info >= (3, 11)
    checks.append(Check("python", True, py_ok, version=platform.python_version(), path=sys.executable,
                        fix=None if py_ok else "use Python 3.11 or newer"))

    tf_bin = settings.terraform(cfg)
    tf, err = tools.safe(tools.terraform_version, tf_bin, minimum)
    if tf:
        checks.append(Check("terraform", True, True, version=f"{tf.name} {tf.version}", path=tf.path,
                            detail=f"needs >= {minimum}"))
    else:
        checks.append(Check("terraform", True, False, detail=err.message, fix=err.hint))

    ck, err = tools.safe(tools.checkov_version, settings.checkov(cfg))
    if ck:
        checks.append(Check("checkov", True, True, version=ck.version, path=ck.path, detail="policy gate"))
    else:
        checks.append(Check("checkov", True, False, detail=err.message, fix=err.hint))

    checks.append(_package("boto3", True, "AWS API calls"))
    checks.append(_package("click", True, "command line"))
    checks.append(_package("jinja2", True, "tfvars rendering"))
    checks.append(_package("moto", False, "embedded emulator for `deployctl local` and tests"))
    checks.append(_aws_identity(cfg))
    return checks


def as_dict(checks: list[Check]) -> dict:
    return {
        "ok": all(c.ok for c in checks if c.required),
        "checks": {c.name: asdict(c) for c in checks},
    }
