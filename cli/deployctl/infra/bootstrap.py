"""deployctl bootstrap: what must exist before the first plan, created idempotently.

The Terraform state bucket (versioned, encrypted, private, TLS-only, owner-
enforced) lives outside Terraform: Terraform cannot create the bucket that
holds its own state. Each step reports "created", "updated" or "ok".
"""

from __future__ import annotations

import json

from deployctl import naming
from deployctl.config import EnvConfig
from deployctl.errors import Refused

FIRST_DEPLOY = [
    ("bootstrap", "deployctl bootstrap --env {env}", "state bucket (this command)"),
    ("foundation plan", "deployctl plan --env {env} --foundation", "KMS key + artifact bucket only (targeted)"),
    ("foundation apply", "deployctl apply --env {env}", "apply exactly that reviewed plan"),
    ("secrets", "deployctl secret ensure --env {env}", "generate each secure parameter once, under the CMK"),
    ("publish", "deployctl publish-lambda --env {env}", "upload the Lambda zips, write artifacts.json"),
    ("full plan", "deployctl plan --env {env}", "everything: tables, functions, API, alarms"),
    ("full apply", "deployctl apply --env {env}", "then `deployctl outputs --env {env}` shows the API URL"),
]


def first_deploy_steps(env: str) -> list[dict]:
    return [{"step": s, "command": c.format(env=env), "what": w.format(env=env)} for s, c, w in FIRST_DEPLOY]


def tls_only_policy(bucket: str, partition: str = "aws") -> dict:
    arn = f"arn:{partition}:s3:::{bucket}"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "s3:*",
                "Resource": [arn, f"{arn}/*"],
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def _code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "") if hasattr(exc, "response") else ""


def ensure_state_bucket(cfg: EnvConfig, *, client=None) -> dict:
    """Create/align the state bucket; returns {"bucket":..., "steps": {name: created|updated|ok}}.

    Uses the shared client (bounded retries, timeouts, error translation) and the
    region's partition in every ARN (GovCloud, China).
    """
    from deployctl import aws

    bucket = cfg.state_bucket()
    part = naming.partition(cfg.region)
    steps: dict[str, str] = {}
    _guard_account(cfg)
    if client is None:
        client = aws.s3_client(cfg)
    with aws.errors("bootstrap the state bucket", where=f"s3://{bucket}"):
        steps["bucket"] = _ensure_bucket(client, bucket, cfg.region)
        steps["versioning"] = _ensure(
            lambda: client.get_bucket_versioning(Bucket=bucket).get("Status") == "Enabled",
            lambda: client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"}),
        )
        steps["encryption"] = _ensure(
            lambda: _encryption_ok(client, bucket),
            lambda: client.put_bucket_encryption(
                Bucket=bucket,
                ServerSideEncryptionConfiguration={
                    "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"}, "BucketKeyEnabled": True}]
                },
            ),
        )
        block = {k: True for k in ("BlockPublicAcls", "IgnorePublicAcls", "BlockPublicPolicy", "RestrictPublicBuckets")}
        steps["public_access_block"] = _ensure(
            lambda: _get(lambda: client.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]) == block,
            lambda: client.put_public_access_block(Bucket=bucket, PublicAccessBlockConfiguration=block),
        )
        steps["ownership"] = _ensure(
            lambda: _get(lambda: client.get_bucket_ownership_controls(Bucket=bucket)["OwnershipControls"]["Rules"][0]["ObjectOwnership"]) == "BucketOwnerEnforced",
            lambda: client.put_bucket_ownership_controls(
                Bucket=bucket, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
            ),
        )
        current = _get(lambda: client.get_bucket_policy(Bucket=bucket)["Policy"])
        steps["tls_only_policy"] = _ensure(
            lambda: _policy_has_tls_deny(current),
            lambda: client.put_bucket_policy(Bucket=bucket, Policy=json.dumps(_with_tls_deny(current, bucket, part))),
        )
    return {"env": cfg.name, "bucket": bucket, "region": cfg.region, "key": cfg.state_key(), "steps": steps,
            "first_deploy": first_deploy_steps(cfg.name)}


def _guard_account(cfg: EnvConfig) -> None:
    from deployctl.infra.guards import account_guard

    account_guard(cfg, needed=True)


def _ensure_bucket(client, bucket: str, region: str) -> str:
    from botocore.exceptions import ClientError

    try:
        client.head_bucket(Bucket=bucket)
        return "ok"
    except ClientError as exc:
        if _code(exc) in {"403", "Forbidden", "AccessDenied"}:
            raise Refused(f"state bucket {bucket} exists but is not accessible (owned by another account?)",
                          hint="set [state] bucket in the env config to a name you own") from None
        if _code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
            raise
    kwargs = {"Bucket": bucket}
    if region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
    except ClientError as exc:
        if _code(exc) == "BucketAlreadyOwnedByYou":
            return "ok"
        if _code(exc) == "BucketAlreadyExists":
            raise Refused(f"the bucket name {bucket} is taken by another account",
                          hint="set [state] bucket in the env config to another name") from None
        raise
    client.get_waiter("bucket_exists").wait(Bucket=bucket, WaiterConfig={"Delay": 1, "MaxAttempts": 30})
    return "created"


def _get(fn):
    """fn() or None when the configuration does not exist yet."""
    from botocore.exceptions import ClientError

    try:
        return fn()
    except ClientError as exc:
        if "NoSuch" in _code(exc) or "NotFound" in _code(exc):
            return None
        raise


def _ensure(is_ok, fix) -> str:
    if is_ok():
        return "ok"
    fix()
    return "updated"


def _encryption_ok(client, bucket: str) -> bool:
    conf = _get(lambda: client.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"])
    rules = (conf or {}).get("Rules") or []
    return any(r.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") == "aws:kms" for r in rules)


def _with_tls_deny(current: str | None, bucket: str, partition: str = "aws") -> dict:
    """The bucket's policy plus the TLS-only statement (other statements are kept)."""
    try:
        doc = json.loads(current) if current else None
    except json.JSONDecodeError:
        doc = None
    if not isinstance(doc, dict) or not isinstance(doc.get("Statement"), list):
        return tls_only_policy(bucket, partition)
    doc["Statement"] = [st for st in doc["Statement"] if st.get("Sid") != "DenyInsecureTransport"]
    doc["Statement"] += tls_only_policy(bucket, partition)["Statement"]
    return doc


def _policy_has_tls_deny(text: str | None) -> bool:
    if not text:
        return False
    try:
        doc = json.loads(text)
    except json.JSONDecodeError:
        return False
    for st in doc.get("Statement", []):
        cond = (st.get("Condition") or {}).get("Bool") or {}
        if st.get("Effect") == "Deny" and str(cond.get("aws:SecureTransport")).lower() == "false":
            return True
    return False
