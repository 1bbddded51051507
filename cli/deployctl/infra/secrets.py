"""Secure parameters: created, rotated and deleted by deployctl, never by Terraform.

Every ``[parameters.NAME] secure = true`` of the env config is an SSM
SecureString ``/<env>/<app>/NAME`` encrypted with the env's CMK
(``alias/<app>-<env>``, :func:`deployctl.naming.kms_alias`). Terraform only
knows the names (for the functions' IAM grants): a managed parameter, even with
``ignore_changes = [value]``, reads the decrypted value into the state and the
plan JSON on every refresh.

- :func:`ensure_secrets` creates the missing ones with a generated value and
  never overwrites an existing one (a rerun says "kept"). A value shorter than
  16 characters is a placeholder (earlier versions created ``set-out-of-band``
  through Terraform) and is replaced.
- :func:`rotate_secret` replaces one value and returns what that invalidates.
- :func:`delete_secrets` deletes them (for ``destroy``); refused for protected envs.

Values are generated here, sent to SSM and dropped: never printed, logged,
returned, or written to a file. Results carry names, versions and statuses only.

Generators (``generate = ...`` per parameter, default ``random32``):
    random32  ``secrets.token_urlsafe(32)``: 32 random bytes, base64url without
              padding (43 characters). The users handler uses the text's UTF-8
              bytes as its HMAC key (lambda_src/shared/pagination.py).
    none      set by hand (``aws ssm put-parameter``); ensure reports "missing".
"""

from __future__ import annotations

import secrets as _random
from dataclasses import dataclass
from typing import Any

from deployctl import aws, naming
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, Refused, UsageError
from deployctl.infra.guards import account_guard, is_protected
from deployctl.ui import UI

DEFAULT_GENERATOR = "random32"
PLACEHOLDER_MAX_LEN = 15  # shorter than the handlers' minimum key length (16): a placeholder, not a secret
MANAGED_BY_TAG = {"Key": "ManagedBy", "Value": "deployctl"}


@dataclass(frozen=True)
class Secret:
    """A declared secure parameter (no value: deployctl never holds one longer than a call)."""

    name: str  # key under the prefix, e.g. "pagination-key"
    parameter: str  # full SSM name, e.g. "/dev/deployctl-demo/pagination-key"
    generator: str
    invalidates: str
    description: str

    def as_dict(self) -> dict:
        return {"name": self.name, "parameter": self.parameter, "generator": self.generator}


def declared(cfg: EnvConfig) -> list[Secret]:
    """The env's secure parameters, by name."""
    prefix = naming.parameter_prefix(cfg)
    out = []
    for name, p in sorted((cfg.data.get("parameters") or {}).items()):
        if p.get("secure"):
            out.append(Secret(name=name, parameter=prefix + name, generator=p.get("generate") or DEFAULT_GENERATOR,
                              invalidates=p.get("invalidates") or "anything signed or encrypted with the old value",
                              description=p.get("description") or ""))
    return out


def generate(generator: str) -> str:
    """A new value (the caller sends it to SSM and drops it)."""
    if generator == "random32":
        return _random.token_urlsafe(32)
    raise UsageError(f"generator {generator!r} cannot make a value")


def _tags(cfg: EnvConfig, secret: Secret) -> list[dict]:
    """The stack's default tags (terraform/envs/*/providers.tf), with ManagedBy = deployctl."""
    app = cfg.data.get("app", {})
    return [
        {"Key": "Application", "Value": cfg.app},
        {"Key": "CostCenter", "Value": app.get("cost_center") or "-"},
        {"Key": "Environment", "Value": cfg.name},
        MANAGED_BY_TAG,
        {"Key": "Owner", "Value": app.get("owner") or "-"},
        {"Key": "deployctl:generator", "Value": secret.generator},
    ]


def _guard(cfg: EnvConfig) -> dict:
    return account_guard(cfg, needed=True)


def _kms_key(cfg: EnvConfig) -> str:
    """The env's CMK alias, after checking that it exists (the foundation created it)."""
    alias = naming.kms_alias(cfg)
    kms = aws.client("kms", cfg.region)
    try:
        kms.describe_key(KeyId=alias)
    except Exception as exc:
        if aws.error_code(exc) == "NotFoundException":
            raise OperationFailed(
                f"KMS key '{alias}' does not exist: secure parameters are encrypted with it",
                hint=f"apply the foundation first (deployctl plan --env {cfg.name} --foundation, then apply)",
            ) from None
        raise aws.translate(exc, "look up the env's KMS key", alias) from exc
    return alias


def _existing(ssm: Any, names: list[str]) -> dict[str, dict]:
    """Metadata (type, key id, version) of the parameters that exist, by full name; no values."""
    found: dict[str, dict] = {}
    for i in range(0, len(names), 10):  # DescribeParameters takes at most 10 names per filter
        chunk = names[i:i + 10]
        kwargs: dict[str, Any] = {"ParameterFilters": [{"Key": "Name", "Option": "Equals", "Values": chunk}]}
        while True:
            with aws.errors("describe the secure parameters", ", ".join(chunk)):
                page = ssm.describe_parameters(**kwargs)
            for p in page.get("Parameters", []):
                found[p["Name"]] = p
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return found


def _is_placeholder(ssm: Any, parameter: str) -> bool:
    """Whether the stored value is a placeholder (too short to be a key). The value is compared and dropped."""
    with aws.errors("read a secure parameter's length", parameter):
        value = ssm.get_parameter(Name=parameter, WithDecryption=True)["Parameter"]["Value"]
    short = len(value) <= PLACEHOLDER_MAX_LEN
    del value
    return short


def _put(ssm: Any, secret: Secret, key_id: str, *, overwrite: bool, tags: list[dict] | None) -> int:
    """Store a freshly generated value; the SSM version. Raises ParameterAlreadyExists through (overwrite=False)."""
    kwargs: dict[str, Any] = {
        "Name": secret.parameter, "Type": "SecureString", "KeyId": key_id, "Tier": "Standard",
        "Overwrite": overwrite,
    }
    if secret.description:
        kwargs["Description"] = secret.description[:1024]
    if tags:  # SSM refuses tags together with Overwrite=True
        kwargs["Tags"] = tags
    kwargs["Value"] = generate(secret.generator)
    try:
        return int(ssm.put_parameter(**kwargs).get("Version", 0))
    finally:
        kwargs.clear()  # drop the value


def ensure_secrets(cfg: EnvConfig, ui: UI) -> dict:
    """Create every declared secure parameter that does not exist; keep every one that does.

    ``{"env", "prefix", "kms_key", "account_guard", "secrets": [{"name", "parameter", "generator",
    "status", "version", "warning"?}], "created", "kept", "missing"}``; status is ``created``, ``kept``,
    ``replaced placeholder`` or ``missing`` (generate = "none" and not set yet).
    """
    wanted = declared(cfg)
    account = _guard(cfg)
    result: dict[str, Any] = {"env": cfg.name, "prefix": naming.parameter_prefix(cfg), "kms_key": naming.kms_alias(cfg),
                              "account_guard": account, "secrets": []}
    if not wanted:
        ui.info("no secure parameters declared ([parameters.NAME] secure = true)")
        return _counted(result)
    key_id = _kms_key(cfg)
    ssm = aws.client("ssm", cfg.region)
    existing = _existing(ssm, [s.parameter for s in wanted])
    for secret in wanted:
        entry = secret.as_dict()
        meta = existing.get(secret.parameter)
        if meta is None and secret.generator == "none":
            entry.update(status="missing", version=None,
                         warning=f"generate = \"none\": set it with aws ssm put-parameter --type SecureString "
                                 f"--key-id {key_id} --name {secret.parameter} --value file:///dev/stdin")
        elif meta is None:
            try:
                with aws.errors("create a secure parameter", secret.parameter):
                    version = _put(ssm, secret, key_id, overwrite=False, tags=_tags(cfg, secret))
                entry.update(status="created", version=version)
            except OperationFailed as exc:
                if "ParameterAlreadyExists" not in exc.message:  # created concurrently: kept
                    raise
                entry.update(status="kept", version=None)
        elif secret.generator != "none" and meta.get("Type") == "SecureString" and _is_placeholder(ssm, secret.parameter):
            with aws.errors("replace a placeholder secure parameter", secret.parameter):
                version = _put(ssm, secret, key_id, overwrite=True, tags=None)
                ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=secret.parameter, Tags=_tags(cfg, secret))
            entry.update(status="replaced placeholder", version=version)
        else:
            entry.update(status="kept", version=meta.get("Version"))
            warning = _drift(meta, key_id, cfg)
            if warning:
                entry["warning"] = warning
        ui.info(f"  {secret.parameter:<48} {entry['status']}")
        if entry.get("warning"):
            ui.warn(f"{secret.parameter}: {entry['warning']}")
        result["secrets"].append(entry)
    return _counted(result)


def _drift(meta: dict, key_id: str, cfg: EnvConfig) -> str | None:
    """A warning when a kept parameter is not what ensure would have created."""
    if meta.get("Type") != "SecureString":
        return (f"is a {meta.get('Type')} parameter, not a SecureString: delete it and re-run "
                f"deployctl secret ensure --env {cfg.name}")
    if (meta.get("KeyId") or "alias/aws/ssm") == "alias/aws/ssm":
        return f"is encrypted with the AWS managed key, not {key_id}: rotate it to re-encrypt it with the CMK"
    return None


def _counted(result: dict) -> dict:
    for status in ("created", "kept", "missing"):
        result[status] = [s["name"] for s in result["secrets"] if s["status"] == status]
    result["replaced_placeholder"] = [s["name"] for s in result["secrets"] if s["status"] == "replaced placeholder"]
    return result


def _find(cfg: EnvConfig, name: str) -> Secret:
    wanted = {s.name: s for s in declared(cfg)}
    secret = wanted.get(name) or next((s for s in wanted.values() if s.parameter == name), None)
    if secret is None:
        raise UsageError(
            f"'{name}' is not a secure parameter of environment '{cfg.name}'",
            where=cfg.where("parameters"),
            hint=f"secure parameters: {', '.join(sorted(wanted)) or 'none'} ([parameters.NAME] secure = true)",
        )
    return secret


def rotate_secret(cfg: EnvConfig, name: str, ui: UI) -> dict:
    """Replace one secure parameter's value with a new generated one (the old one is gone for good).

    Protected envs (prod, deletion protection) ask for confirmation (or --yes). Returns
    ``{"name", "parameter", "status": "rotated", "version", "previous_version", "invalidates", ...}``.
    """
    secret = _find(cfg, name)
    if secret.generator == "none":
        raise UsageError(f"{secret.parameter} is set by hand (generate = \"none\"): deployctl cannot make its value",
                         where=cfg.where(f"parameters.{secret.name}"),
                         hint="put the new value with aws ssm put-parameter --overwrite")
    account = _guard(cfg)
    key_id = _kms_key(cfg)
    ssm = aws.client("ssm", cfg.region)
    meta = _existing(ssm, [secret.parameter]).get(secret.parameter)
    if meta is None:
        raise OperationFailed(f"{secret.parameter} does not exist yet: nothing to rotate",
                              hint=f"create it with deployctl secret ensure --env {cfg.name}")
    ui.warn(f"rotating {secret.parameter} invalidates {secret.invalidates}")
    if is_protected(cfg):
        ui.confirm(f"Rotate {secret.parameter} in {cfg.name} (account {cfg.account_id})?",
                   what=f"rotating {secret.name} in {cfg.name}")
    with aws.errors("rotate a secure parameter", secret.parameter):
        version = _put(ssm, secret, key_id, overwrite=True, tags=None)
        ssm.add_tags_to_resource(ResourceType="Parameter", ResourceId=secret.parameter, Tags=_tags(cfg, secret))
    return {**secret.as_dict(), "env": cfg.name, "status": "rotated", "version": version,
            "previous_version": meta.get("Version"), "invalidates": secret.invalidates, "account_guard": account,
            "note": "functions read parameters once per cold start: warm containers keep the old value until "
                    "they are recycled"}


def delete_secrets(cfg: EnvConfig, ui: UI, *, allow_protected: bool = False) -> dict:
    """Delete the env's declared secure parameters (``destroy``, after terraform destroy succeeded).

    SSM deletes immediately and for good. Refused (exit 4) for an env with
    ``protection.deletion_protection`` unless ``allow_protected``.
    Returns ``{"env", "deleted": [names], "absent": [names]}``.
    """
    if cfg.get("protection.deletion_protection") and not allow_protected:
        raise Refused(
            f"environment '{cfg.name}' has protection.deletion_protection: its secure parameters are not deleted",
            where=cfg.where("protection.deletion_protection"),
            hint="turn deletion protection off first if the environment is really to go",
        )
    wanted = declared(cfg)
    account = _guard(cfg)
    result: dict[str, Any] = {"env": cfg.name, "account_guard": account, "deleted": [], "absent": []}
    if not wanted:
        return result
    ssm = aws.client("ssm", cfg.region)
    by_param = {s.parameter: s.name for s in wanted}
    names = list(by_param)
    for i in range(0, len(names), 10):
        with aws.errors("delete the secure parameters", ", ".join(names[i:i + 10])):
            res = ssm.delete_parameters(Names=names[i:i + 10])
        result["deleted"] += [by_param[n] for n in res.get("DeletedParameters", [])]
        result["absent"] += [by_param[n] for n in res.get("InvalidParameters", [])]
    for name in result["deleted"]:
        ui.info(f"  deleted {naming.parameter_prefix(cfg)}{name}")
    result["deleted"].sort()
    result["absent"].sort()
    return result
