"""A watched canary rollout on the deployed stack (issue 17), called from test_deploy_path.py.

Through the real CLI on the applied env: a short custom strategy from the env's config (seconds,
not minutes: config, no test-only path), the pre-traffic smoke request through the deployed
version (moto_compat's Lambda executor), the covering alarms read under the names
terraform/modules/monitoring gave them (none MISSING), the rollout record in the real state
bucket while it runs and gone after, and live at the new version at the end.
"""

from __future__ import annotations

STRATEGY = "E2ECanary"
CONFIG = f"""
[rollout]
poll_s = 1

[rollout.strategies.{STRATEGY}]
steps = [{{ weight = 50, bake_s = 2 }}, {{ weight = 100, bake_s = 0 }}]
"""


def check_canary_rollout(deployctl, function: str, old: str, new: str) -> dict:
    """Roll ``function`` out from ``old`` to ``new`` (its staging version) with a 50 % canary; back to ``old`` after."""
    lam = deployctl.client("lambda")
    physical = f"deployctl-demo-dev-{function}"
    assert lam.get_alias(FunctionName=physical, Name="live")["FunctionVersion"] == old
    env_toml = deployctl.root / "terraform/envs/dev/env.toml"
    original = env_toml.read_text(encoding="utf-8")
    env_toml.write_text(original + CONFIG, encoding="utf-8")
    try:
        res = deployctl("promote", "--env", "dev", "--function", function, "--strategy", STRATEGY, "--yes")
    finally:
        env_toml.write_text(original, encoding="utf-8")
    (result,) = res.result["rollouts"]
    assert result["outcome"] == "promoted" and (result["from"], result["to"]) == (old, new), result
    assert result["pre_traffic"]["ok"] and result["pre_traffic"]["status_code"] == 200, result["pre_traffic"]
    assert [(s["weight"], s["outcome"]) for s in result["steps"]] == [(50, "passed"), (100, "passed")]
    alarms = result["steps"][0]["readings"][0]["alarms"]
    assert set(alarms) == {f"deployctl-demo-dev-{n}" for n in (
        f"lambda-{function}-errors", f"lambda-{function}-throttles", f"lambda-{function}-dlq-depth", "api-5xx",
        "api-p99-latency")}, alarms
    assert "MISSING" not in alarms.values() and "ALARM" not in alarms.values(), alarms
    live = lam.get_alias(FunctionName=physical, Name="live")
    assert live["FunctionVersion"] == new and not (live.get("RoutingConfig") or {}).get("AdditionalVersionWeights")
    assert deployctl("rollout", "status", "--env", "dev").result["rollouts"] == []
    deployctl("rollback", "--env", "dev", "--function", function, "--yes")
    assert lam.get_alias(FunctionName=physical, Name="live")["FunctionVersion"] == old
    return result
