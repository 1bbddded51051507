"""deployctl prune: delete the Lambda versions and layer versions nothing refers to.

Every deploy publishes a function version (and a new layer version when the layer changed);
nothing removes them, and Lambda's code storage per region is limited. A version is kept when:

* an alias points at it (``live``, ``staging``, any other), or routes a canary weight to it;
* it is in the ``live`` alias' history (``rollback`` goes back to it: :mod:`deployctl.artifacts.aliases`);
* an unfinished rollout refers to it (:mod:`deployctl.ops.rollouts`);
* it is one of the newest N (``--keep``, else ``[lambda] keep_versions``, else 5).

A layer version is kept when a kept function version (or ``$LATEST``) has it attached, or it is one
of the newest N of its layer. Everything else is deleted, after the plan is shown (and, in prod or an
env with deletion protection, confirmed or ``--yes``). A version Lambda refuses to delete (in use by
something deployctl does not see, e.g. provisioned concurrency) is reported, not an error.
"""

from __future__ import annotations

from typing import Any

from deployctl import aws, naming
from deployctl.artifacts.aliases import needs_confirmation, parse_history
from deployctl.artifacts.packaging import check_functions
from deployctl.config import EnvConfig
from deployctl.errors import UsageError
from deployctl.ops import rollouts
from deployctl.ui import UI

DEFAULT_KEEP = 5


def keep_count(cfg: EnvConfig, keep: int | None) -> int:
    if keep is None:
        return int(cfg.get("lambda.keep_versions", DEFAULT_KEEP))
    if keep < 1:
        raise UsageError(f"--keep must be at least 1, found {keep}", where="--keep")
    return keep


def _pages(call, key: str, **kwargs) -> list[dict]:
    items: list[dict] = []
    while True:
        page = call(**kwargs)
        items += page.get(key) or []
        marker = page.get("NextMarker")
        if not marker:
            return items
        kwargs["Marker"] = marker


def plan_function(lam: Any, cfg: EnvConfig, function: str, keep: int) -> dict:
    """What to keep (with why) and what to delete of one function's versions; reads only."""
    from botocore.exceptions import ClientError

    physical = naming.function_name(cfg, function)
    try:
        versions = _pages(lam.list_versions_by_function, "Versions", FunctionName=physical)
        aliases = _pages(lam.list_aliases, "Aliases", FunctionName=physical)
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise
        return {"function": function, "function_name": physical, "deployed": False, "versions": [], "kept": {},
                "delete": [], "layers_in_use": []}
    numbered = sorted((v for v in versions if str(v.get("Version", "")).isdigit()), key=lambda v: int(v["Version"]))
    reasons: dict[str, list[str]] = {}

    def why(version: str, reason: str) -> None:
        reasons.setdefault(str(version), []).append(reason)

    for alias in aliases:
        why(alias["FunctionVersion"], f"alias {alias['Name']}")
        for v in ((alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}):
            why(v, f"alias {alias['Name']} canary weight")
        for v in parse_history(alias.get("Description")):
            why(v, f"alias {alias['Name']} history (rollback)")
    for v in rollouts.versions_in_use(cfg, function):
        why(v, "unfinished rollout")
    for v in numbered[-keep:]:
        why(v["Version"], f"newest {keep}")
    known = {v["Version"] for v in numbered}
    kept = {v: r for v, r in reasons.items() if v in known}
    delete = [v["Version"] for v in numbered if v["Version"] not in kept]
    layers_in_use = sorted({layer["Arn"] for v in versions
                            if v.get("Version") == "$LATEST" or v.get("Version") in kept
                            for layer in v.get("Layers") or []})
    return {"function": function, "function_name": physical, "deployed": True,
            "versions": [v["Version"] for v in numbered], "kept": kept, "delete": delete,
            "layers_in_use": layers_in_use}


def plan_layer(lam: Any, cfg: EnvConfig, layer: str, keep: int, in_use: set[str]) -> dict:
    name = naming.layer_name(cfg, layer)
    versions = _pages(lam.list_layer_versions, "LayerVersions", LayerName=name)
    numbered = sorted(versions, key=lambda v: int(v["Version"]))
    kept: dict[str, list[str]] = {}
    for v in numbered:
        if v["LayerVersionArn"] in in_use:
            kept.setdefault(str(v["Version"]), []).append("attached to a kept function version")
    for v in numbered[-keep:]:
        kept.setdefault(str(v["Version"]), []).append(f"newest {keep}")
    delete = [str(v["Version"]) for v in numbered if str(v["Version"]) not in kept]
    return {"layer": layer, "layer_name": name, "versions": [str(v["Version"]) for v in numbered], "kept": kept,
            "delete": delete}


def plan(cfg: EnvConfig, keep: int) -> dict:
    lam = aws.client("lambda", cfg.region)
    with aws.errors("list function and layer versions"):
        functions = {fn: plan_function(lam, cfg, fn, keep) for fn in check_functions(cfg, None)}
        in_use = {arn for f in functions.values() for arn in f["layers_in_use"]}
        layers = {name: plan_layer(lam, cfg, name, keep, in_use) for name in cfg.layers}
    return {"env": cfg.name, "keep": keep, "functions": functions, "layers": layers}


def plan_text(data: dict) -> str:
    lines = []
    for fn, f in data["functions"].items():
        if not f["deployed"]:
            lines.append(f"  function {fn}: not deployed")
            continue
        lines.append(f"  function {f['function_name']}: {len(f['versions'])} version(s), delete "
                     f"{', '.join('v' + v for v in f['delete']) or 'none'}")
        for v, why in sorted(f["kept"].items(), key=lambda kv: int(kv[0])):
            lines.append(f"      keep v{v}: {'; '.join(why)}")
    for layer in data["layers"].values():
        lines.append(f"  layer {layer['layer_name']}: {len(layer['versions'])} version(s), delete "
                     f"{', '.join('v' + v for v in layer['delete']) or 'none'}")
    return "\n".join(lines)


def prune(cfg: EnvConfig, keep: int | None = None, *, dry_run: bool = False, ui: UI | None = None) -> dict:
    ui = ui or UI()
    keep = keep_count(cfg, keep)
    account = aws.check_account(cfg)
    data = plan(cfg, keep)
    data["account_guard"] = account
    data["dry_run"] = dry_run
    count = sum(len(f["delete"]) for f in data["functions"].values()) + sum(
        len(layer["delete"]) for layer in data["layers"].values())
    data["to_delete"] = count
    ui.info(f"prune {cfg.name}, keeping the newest {keep} and every version in use:\n{plan_text(data)}")
    data["deleted"], data["failed"] = [], []
    if dry_run or count == 0:
        return data
    if needs_confirmation(cfg):
        ui.confirm(f"Delete these {count} version(s) in {cfg.name}?", what=f"pruning versions in {cfg.name}")
    _delete(cfg, data)
    return data


def _delete(cfg: EnvConfig, data: dict) -> None:
    from botocore.exceptions import ClientError

    lam = aws.client("lambda", cfg.region)
    with aws.errors("delete unused versions"):
        for f in data["functions"].values():
            for v in f["delete"]:
                what = f"{f['function_name']}:{v}"
                try:
                    lam.delete_function(FunctionName=f["function_name"], Qualifier=v)
                    data["deleted"].append(what)
                except ClientError as exc:  # in use by something we do not see: leave it
                    data["failed"].append({"version": what, "error": aws.error_code(exc) or "ClientError"})
        for layer in data["layers"].values():
            for v in layer["delete"]:
                what = f"{layer['layer_name']}:{v}"
                try:
                    lam.delete_layer_version(LayerName=layer["layer_name"], VersionNumber=int(v))
                    data["deleted"].append(what)
                except ClientError as exc:
                    data["failed"].append({"version": what, "error": aws.error_code(exc) or "ClientError"})
