"""deployctl status: what an env runs now, on one screen.

Per function: the ``live`` and ``staging`` aliases (version, canary weights) and the code sha256
of each version they route to (Lambda's ``CodeSha256``), next to the manifest's
(``terraform/envs/<env>/artifacts.json``); unfinished rollouts (:mod:`deployctl.ops.rollouts`).
For the env: the alarms in ALARM now (the monitoring module names them ``<app>-<env>-...``), the last
apply (the state object's last change in the state bucket, and deployctl's local record of the
apply: commit and who) and the last drift check (:mod:`deployctl.infra.records`).

Read-only: it changes nothing, and reads with the credentials' account checked against the env's.
"""

from __future__ import annotations

from typing import Any

from deployctl import aws, naming
from deployctl.artifacts.aliases import AliasState
from deployctl.artifacts.lambdas import get_alias
from deployctl.artifacts.manifest import load_manifest
from deployctl.config import EnvConfig
from deployctl.infra import records
from deployctl.ops import rollouts


def _code_sha(lam: Any, physical: str, version: str, cache: dict[str, str | None]) -> str | None:
    from botocore.exceptions import ClientError

    if version not in cache:
        try:
            conf = lam.get_function_configuration(FunctionName=physical, Qualifier=version)
            cache[version] = conf.get("CodeSha256")
        except ClientError as exc:
            if aws.error_code(exc) != "ResourceNotFoundException":
                raise
            cache[version] = None
    return cache[version]


def _alias(lam: Any, physical: str, name: str, manifest_sha: str | None, cache: dict) -> dict | None:
    alias = get_alias(lam, physical, name)
    if alias is None:
        return None
    state = AliasState.of(alias)
    versions = [state.version] + sorted(state.weights) if state.version else []
    primary_weight = round(1 - sum(state.weights.values()), 4)
    routes = []
    for v in versions:
        sha = _code_sha(lam, physical, v, cache) if v and v.isdigit() or v == "$LATEST" else None
        routes.append({"version": v, "weight": primary_weight if v == state.version else state.weights[v],
                       "code_sha256": sha, "matches_manifest": (sha == manifest_sha) if manifest_sha and sha else None})
    return {"version": state.version, "weights": state.weights, "routes": routes,
            "code_sha256": routes[0]["code_sha256"] if routes else None,
            "matches_manifest": routes[0]["matches_manifest"] if routes else None}


def function_status(lam: Any, cfg: EnvConfig, function: str, manifest: dict) -> dict:
    from botocore.exceptions import ClientError

    physical = naming.function_name(cfg, function)
    entry = (manifest.get("functions") or {}).get(function) or {}
    manifest_sha = entry.get("code_sha256")
    out: dict[str, Any] = {"function": function, "function_name": physical, "manifest_code_sha256": manifest_sha,
                           "manifest_sha256": entry.get("sha256"), "deployed": True,
                           "rollouts": [r for r in rollouts.unfinished(cfg) if r.get("function") == function]}
    cache: dict[str, str | None] = {}
    try:
        lam.get_function_configuration(FunctionName=physical)
    except ClientError as exc:
        if aws.error_code(exc) != "ResourceNotFoundException":
            raise
        out.update({"deployed": False, "live": None, "staging": None})
        return out
    out["live"] = _alias(lam, physical, naming.LIVE_ALIAS, manifest_sha, cache)
    out["staging"] = _alias(lam, physical, naming.STAGING_ALIAS, manifest_sha, cache)
    return out


def alarms_in_alarm(cfg: EnvConfig) -> list[dict]:
    """The env's alarms (metric and composite) whose state is ALARM now."""
    cw = aws.client("cloudwatch", cfg.region)
    prefix = f"{cfg.prefix}-"
    found: dict[str, dict] = {}
    kwargs: dict[str, Any] = {"AlarmNamePrefix": prefix, "StateValue": "ALARM",
                              "AlarmTypes": ["MetricAlarm", "CompositeAlarm"]}
    with aws.errors("list alarms in ALARM (DescribeAlarms)"):
        while True:
            page = cw.describe_alarms(**kwargs)
            for a in page.get("MetricAlarms", []) + page.get("CompositeAlarms", []):
                # filtered here too: an emulator may ignore the request's filters
                if a.get("StateValue") == "ALARM" and a["AlarmName"].startswith(prefix):
                    found[a["AlarmName"]] = {"name": a["AlarmName"], "since": str(a.get("StateUpdatedTimestamp") or ""),
                                             "reason": a.get("StateReason", "")}
            if not page.get("NextToken"):
                break
            kwargs["NextToken"] = page["NextToken"]
    return [found[name] for name in sorted(found)]


def state_object(cfg: EnvConfig) -> dict | None:
    """The Terraform state object's last change in the state bucket (None if there is none yet)."""
    from botocore.exceptions import ClientError

    s3 = aws.s3_client(cfg)
    bucket, key = cfg.state_bucket(), cfg.state_key()
    with aws.errors("read the state object (HeadObject)", f"s3://{bucket}/{key}"):
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if aws.error_code(exc) in {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}:
                return None
            raise
    return {"bucket": bucket, "key": key, "last_modified": head["LastModified"].isoformat(),
            "version_id": head.get("VersionId")}


def status(cfg: EnvConfig) -> dict:
    account = aws.check_account(cfg)
    manifest = load_manifest(cfg)
    lam = aws.client("lambda", cfg.region)
    with aws.errors("read the functions' aliases"):
        functions = {fn: function_status(lam, cfg, fn, manifest) for fn in cfg.functions}
    return {
        "env": cfg.name,
        "functions": functions,
        "alarms": alarms_in_alarm(cfg),
        "rollouts": rollouts.unfinished(cfg),
        "last_apply": {"state": state_object(cfg), "record": records.last_apply(cfg)},
        "last_drift": records.last_drift(cfg),
        "account_guard": account,
    }


# -- one screen ----------------------------------------------------------------------------------------


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "-"


def _side(alias: dict | None, style) -> str:
    if alias is None:
        return "(no alias)"
    parts = []
    for r in alias["routes"]:
        mark = "" if r["matches_manifest"] is None else (" =" if r["matches_manifest"] else style(" !=", "yellow"))
        weight = f" {round(r['weight'] * 100, 2):g}%" if alias["weights"] else ""
        parts.append(f"v{r['version']}{weight} {_short(r['code_sha256'])}{mark}")
    return ", ".join(parts)


def status_text(data: dict, style=lambda text, *s: text) -> str:
    from deployctl.ui import table

    rows = []
    for fn, st in data["functions"].items():
        if not st["deployed"]:
            rows.append([fn, "(not deployed)", "", _short(st["manifest_code_sha256"]), ""])
            continue
        rollout = ", ".join(r.get("state", "unfinished") for r in st["rollouts"]) or "-"
        rows.append([fn, _side(st["live"], style), _side(st["staging"], style), _short(st["manifest_code_sha256"]),
                     rollout])
    lines = [f"{data['env']}: functions (code sha256, base64, first 12; '=' matches the manifest, '!=' does not)",
             table(rows, ["function", "live", "staging", "manifest", "rollout"]), ""]
    if data["alarms"]:
        lines.append(style(f"alarms in ALARM ({len(data['alarms'])}):", "red", "bold"))
        lines += [f"  {a['name']}  since {a['since']}" for a in data["alarms"]]
    else:
        lines.append("alarms in ALARM: none")
    state, rec = data["last_apply"]["state"], data["last_apply"]["record"]
    if rec:
        commit = (rec.get("commit") or "?")[:12] + (" (uncommitted changes)" if rec.get("dirty") else "")
        who = rec.get("actor") or "?"
        if rec.get("principal"):
            who += f" as {rec['principal']}"
        lines.append(f"last apply: {rec.get('at')} ({rec.get('status')}), commit {commit}, by {who}")
    else:
        lines.append("last apply: no record on this machine (deployctl apply records one)")
    if state:
        lines.append(f"state: s3://{state['bucket']}/{state['key']} last changed {state['last_modified']}")
    else:
        lines.append("state: no state object yet")
    drift = data["last_drift"]
    if drift is None:
        lines.append("last drift check: never (deployctl drift)")
    elif drift.get("drift"):
        lines.append(style(f"last drift check: {drift['at']}: DRIFT in {drift['resources']} resource(s): "
                           + ", ".join(drift.get("addresses", [])[:5]), "yellow", "bold"))
    else:
        lines.append(f"last drift check: {drift['at']}: no drift")
    return "\n".join(lines)
