"""deployctl doctor: what is installed, what is missing or wrong, and how to fix it.

Every failed check carries the exit code the deploy commands would use for the
same problem (a missing or too old terraform/checkov/dependency 3, a config gap 2,
credentials of another account than ``aws.account_id`` 4, a missing state bucket
or foundation 1). ``doctor`` exits with the highest code among the failed required
checks: refused (4) > tool missing (3) > configuration (2) > failed (1). So with
credentials of another account, ``doctor --env dev`` exits 4 like ``plan --env dev``.

Without an env only the tools and the AWS identity are checked (and placeholder
account ids of every env, as warnings); with ``--env`` the identity must belong to
the env's account, and the state bucket and the foundation (KMS alias, artifact
bucket) must exist.
"""

from __future__ import annotations

import copy
import os
import platform
import sys
from dataclasses import dataclass, field, fields
from importlib import metadata
from pathlib import Path

from deployctl import tools
from deployctl.config import EnvConfig, Settings, known_envs, load_env
from deployctl.errors import (
    EXIT_FAILED,
    EXIT_MISSING_TOOL,
    EXIT_OK,
    EXIT_USAGE,
    ConfigError,
    DeployctlError,
    OperationFailed,
    Refused,
    ToolMissing,
)

# Account ids the repository's env.toml files ship with, AWS's documentation examples and
# emulator defaults: never a real deploy target unless the credentials say so (moto uses
# 123456789012, LocalStack 000000000000).
PLACEHOLDER_ACCOUNT_IDS = frozenset(
    {d * 12 for d in "0123456789"} | {"123456789012", "012345678901", "210987654321", "111122223333",
                                      "444455556666", "777788889999"}
)

# Short timeouts and few attempts: doctor should answer quickly even with no network.
_PROBE = {"connect_timeout": 3, "read_timeout": 10, "retries": {"mode": "standard", "total_max_attempts": 2}}


@dataclass
class Check:
    name: str
    required: bool
    ok: bool
    version: str | None = None
    path: str | None = None
    detail: str | None = None
    fix: str | None = None
    exit_code: int = EXIT_OK  # what a deploy command would exit with for this problem (0 when ok)
    skipped: bool = False
    cause: DeployctlError | None = field(default=None, repr=False)  # the error a deploy command would raise

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "cause"}

    @property
    def failed(self) -> bool:
        return self.required and not self.ok and not self.skipped


def _fail(name: str, err: DeployctlError, *, required: bool = True, fix: str | None = None) -> Check:
    detail = f"{err.where}: {err.message}" if err.where else err.message
    return Check(name, required, False, detail=detail, fix=fix or err.hint, exit_code=err.exit_code, cause=err)


def _skip(name: str, why: str) -> Check:
    return Check(name, False, False, detail=f"skipped: {why}", skipped=True)


def is_placeholder(account_id: str) -> bool:
    return account_id in PLACEHOLDER_ACCOUNT_IDS


def _package(name: str, required: bool, purpose: str) -> Check:
    try:
        version = metadata.version(name)
    except metadata.PackageNotFoundError:
        return Check(name, required, False, detail=f"not installed ({purpose})",
                     fix=f"pip install -e . (it brings {name})", exit_code=EXIT_MISSING_TOOL)
    return Check(name, required, True, version=version, detail=purpose)


def _default_region() -> str:
    from deployctl import aws

    return aws.default_region() or os.environ.get("AWS_REGION") or "us-east-1"


def _identity(cfg: EnvConfig | None) -> tuple[Check, dict | None]:
    """Who boto3's standard chain acts as. Required (and compared with aws.account_id) with an env;
    only informative without one (deployctl local needs no AWS)."""
    name = "aws-identity"
    required = cfg is not None
    try:
        from deployctl import aws
    except ImportError:  # pragma: no cover - boto3 is a dependency
        return Check(name, required, False, detail="boto3 is not installed", fix="pip install -e .",
                     exit_code=EXIT_MISSING_TOOL), None
    try:
        ident = aws.caller_identity(cfg.region if cfg else _default_region(), **_PROBE)
    except DeployctlError as exc:
        check = _fail(name, exc, required=required)
        check.detail = exc.message  # not "env.toml: ...": the credentials are not in the env's files
        if not required:
            check.fix = f"{exc.hint}; only needed to deploy" if exc.hint else "only needed to deploy"
        return check, None
    account = ident.get("Account", "")
    check = Check(name, required, True, version=account, detail=f"{ident.get('Arn')} (account {account})")
    if cfg is not None:
        refused = aws.account_mismatch(cfg, ident)
        if refused is not None:
            return _fail(name, refused), ident
    return check, ident


def _account_id(cfg: EnvConfig, ident: dict | None) -> Check:
    """aws.account_id is set, and is not a placeholder (unless the credentials really are that account)."""
    name = "account-id"
    where = cfg.where("aws.account_id")
    fix = (f"set aws.account_id in {where} to the 12-digit id of the account '{cfg.name}' deploys to "
           "(aws sts get-caller-identity --query Account)")
    if not cfg.account_id:
        return _fail(name, ConfigError("key 'aws.account_id' is not set: the account guard needs it", where=where),
                     fix=fix)
    if is_placeholder(cfg.account_id):
        if ident is not None and ident.get("Account") == cfg.account_id:
            return Check(name, True, True, version=cfg.account_id,
                         detail=f"placeholder-like id, but the credentials are that account (an emulator?): {where}")
        return _fail(name, ConfigError(f"key 'aws.account_id' holds the placeholder {cfg.account_id}", where=where),
                     fix=fix)
    return Check(name, True, True, version=cfg.account_id, detail=where)


def _placeholders_everywhere(root: Path) -> Check | None:
    """Without --env: a warning naming every env whose aws.account_id is still a placeholder."""
    found = []
    for env in known_envs(root):
        try:
            cfg = load_env(env, root)
        except DeployctlError:
            continue  # an invalid config is reported by the commands (and by doctor --env)
        if not cfg.account_id or is_placeholder(cfg.account_id):
            found.append(f"{cfg.where('aws.account_id')} (aws.account_id = {cfg.account_id or 'unset'!r})")
    if not found:
        return Check("account-ids", False, True, detail=f"no placeholders in {root / 'terraform' / 'envs'}")
    return Check("account-ids", False, False, detail="placeholder account ids: " + "; ".join(found),
                 fix="set aws.account_id in each file to the real 12-digit account id", exit_code=EXIT_USAGE)


def _bucket(name: str, bucket: str, cfg: EnvConfig, fix: str) -> Check:
    from deployctl import aws

    s3 = aws.s3_client(cfg, **_PROBE)
    try:
        with aws.errors(f"HeadBucket {bucket}"):
            s3.head_bucket(Bucket=bucket)
    except OperationFailed as exc:
        cause = exc.__cause__
        code = aws.error_code(cause) if cause is not None else None
        status = getattr(cause, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in ("404", "NoSuchBucket", "NotFound") or status == 404:
            return Check(name, True, False, detail=f"s3://{bucket} does not exist", fix=fix, exit_code=EXIT_FAILED)
        return _fail(name, exc)
    except DeployctlError as exc:
        return _fail(name, exc)
    return Check(name, True, True, detail=f"s3://{bucket}")


def _kms_alias(cfg: EnvConfig, fix: str) -> Check:
    from deployctl import aws, naming

    alias = naming.kms_alias(cfg)
    kms = aws.client("kms", cfg.region, **_PROBE)
    try:
        with aws.errors(f"DescribeKey {alias}"):
            key = kms.describe_key(KeyId=alias)["KeyMetadata"]
    except OperationFailed as exc:
        cause = exc.__cause__
        if cause is not None and aws.error_code(cause) == "NotFoundException":
            return Check("kms-key", True, False, detail=f"{alias} does not exist", fix=fix, exit_code=EXIT_FAILED)
        return _fail("kms-key", exc)
    except DeployctlError as exc:
        return _fail("kms-key", exc)
    state = key.get("KeyState", "?")
    if state != "Enabled":
        return Check("kms-key", True, False, detail=f"{alias} -> {key.get('KeyId')} is {state}",
                     fix="the env's key must be Enabled (cancel a pending deletion: aws kms cancel-key-deletion)",
                     exit_code=EXIT_FAILED)
    return Check("kms-key", True, True, detail=f"{alias} -> {key.get('KeyId')}")


def foundation_checks(cfg: EnvConfig) -> list[Check]:
    """The foundation step's resources: the env's KMS key (by alias) and its artifact bucket."""
    fix = f"run deployctl plan --env {cfg.name} --foundation && deployctl apply --env {cfg.name}"
    return [_kms_alias(cfg, fix), _bucket("artifact-bucket", cfg.artifact_bucket(), cfg, fix)]


def _env_resources(cfg: EnvConfig, identity_ok: bool) -> list[Check]:
    from deployctl.infra.terraform import backend_type, uses_aws

    names = ("state-bucket", "kms-key", "artifact-bucket")
    if not identity_ok:
        return [_skip(n, "no usable AWS identity for this env (see aws-identity)") for n in names]
    checks: list[Check] = []
    if backend_type(cfg.env_dir) == "s3":
        checks.append(_bucket("state-bucket", cfg.state_bucket(), cfg, f"run deployctl bootstrap --env {cfg.name}"))
    else:
        checks.append(_skip("state-bucket", "the env root declares no s3 backend"))
    if uses_aws(cfg.env_dir):
        checks += foundation_checks(cfg)
    else:
        checks += [_skip(n, "the env root uses no AWS provider") for n in names[1:]]
    return checks


def run(settings: Settings, cfg: EnvConfig | None, root: Path | None = None) -> list[Check]:
    checks: list[Check] = []
    minimum = (cfg.get("tools.terraform_min_version") if cfg else None) or "1.10.0"

    py_ok = sys.version_info >= (3, 11)
    checks.append(Check("python", True, py_ok, version=platform.python_version(), path=sys.executable,
                        fix=None if py_ok else "use Python 3.11 or newer",
                        exit_code=EXIT_OK if py_ok else EXIT_MISSING_TOOL))

    tf, err = tools.safe(tools.terraform_version, settings.terraform(cfg), minimum)
    if tf:
        checks.append(Check("terraform", True, True, version=f"{tf.name} {tf.version}", path=tf.path,
                            detail=f"needs >= {minimum}"))
    else:
        checks.append(_fail("terraform", err))

    ck, err = tools.safe(tools.checkov_version, settings.checkov(cfg))
    if ck:
        checks.append(Check("checkov", True, True, version=ck.version, path=ck.path, detail="policy gate"))
    else:
        checks.append(_fail("checkov", err))

    checks.append(_package("boto3", True, "AWS API calls"))
    checks.append(_package("click", True, "command line"))
    checks.append(_package("jinja2", True, "tfvars rendering"))
    checks.append(_package("moto", False, "embedded emulator for `deployctl local` and tests"))

    identity, ident = _identity(cfg)
    checks.append(identity)
    if cfg is not None:
        checks.append(_account_id(cfg, ident))
        checks += _env_resources(cfg, identity.ok)
    elif root is not None:
        warning = _placeholders_everywhere(root)
        if warning is not None:
            checks.append(warning)
    return checks


def exit_code(checks: list[Check]) -> int:
    """The highest exit code among the failed required checks: 4 > 3 > 2 > 1; 0 when none failed."""
    return max((c.exit_code or EXIT_FAILED for c in checks if c.failed), default=EXIT_OK)


def error(checks: list[Check]) -> DeployctlError | None:
    """The one-line error doctor reports: the most serious failed check, naming the others."""
    failed = [c for c in checks if c.failed]
    if not failed:
        return None
    code = exit_code(checks)
    top = next(c for c in failed if (c.exit_code or EXIT_FAILED) == code)
    others = [c.name for c in failed if c is not top]
    hint = top.fix or ""
    if others:
        hint = f"{hint}; also failed: {', '.join(others)}" if hint else f"also failed: {', '.join(others)}"
    if top.cause is not None:  # the very error the deploy command raises (same kind, text and file)
        err = copy.copy(top.cause)
        err.hint = hint or None
        return err
    cls = {4: Refused, 3: ToolMissing, 2: ConfigError}.get(code, OperationFailed)
    return cls(top.detail or "failed", where=f"doctor {top.name}", hint=hint or None)


def as_dict(checks: list[Check]) -> dict:
    return {
        "ok": not any(c.failed for c in checks),
        "exit_code": exit_code(checks),
        "checks": {c.name: c.as_dict() for c in checks},
    }
