"""The env's Lambda functions as publish, promote and rollouts read them: a light module.

``promote`` imports only this (not the packaging, SBOM and provenance code of ``publish``), so a
process that moves an alias loads what it needs and no more. boto3 is never imported here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from deployctl import aws
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, UsageError


def check_functions(cfg: EnvConfig, functions: Sequence[str] | None) -> list[str]:
    """The requested function keys (all of them if none), validated against [functions]."""
    known = list(cfg.functions)
    if not functions:
        return known
    unknown = [f for f in functions if f not in cfg.functions]
    if unknown:
        raise UsageError(
            f"unknown function {', '.join(repr(u) for u in unknown)}",
            where="--function",
            hint=f"known functions: {', '.join(known) or 'none'} (from [functions] in the env config)",
        )
    return list(dict.fromkeys(functions))


def _missing(physical: str, qualifier: str | None = None) -> OperationFailed:
    what = f"version {qualifier} of function '{physical}'" if qualifier else f"function '{physical}'"
    return OperationFailed(
        f"{what} does not exist (ResourceNotFoundException)",
        hint="apply the env with terraform first" if not qualifier else "list versions with aws lambda list-versions-by-function",
    )


def get_alias(lam: Any, physical: str, alias: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return lam.get_alias(FunctionName=physical, Name=alias)
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def list_aliases(lam: Any, physical: str) -> dict[str, dict]:
    """Every alias of the function by name, in one ListAliases call (more only past 10,000 aliases).

    A missing function is :class:`OperationFailed` (it has no aliases to list)."""
    from botocore.exceptions import ClientError

    out: dict[str, dict] = {}
    kwargs: dict[str, Any] = {"FunctionName": physical, "MaxItems": 10000}
    while True:
        try:
            page = lam.list_aliases(**kwargs)
        except ClientError as exc:
            if aws.error_code(exc) == "ResourceNotFoundException":
                raise _missing(physical) from None
            raise
        for alias in page.get("Aliases") or []:
            out[alias["Name"]] = alias
        if not page.get("NextMarker"):
            return out
        kwargs["Marker"] = page["NextMarker"]


def get_function(lam: Any, physical: str, qualifier: str | None = None) -> dict:
    from botocore.exceptions import ClientError

    kwargs = {"FunctionName": physical}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    try:
        return lam.get_function_configuration(**kwargs)
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            raise _missing(physical, qualifier) from None
        raise


def revision_guard(conf: dict) -> dict:
    """The RevisionId guard, when the service reports one (AWS always does)."""
    return {"RevisionId": conf["RevisionId"]} if conf.get("RevisionId") else {}
