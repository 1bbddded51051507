"""Requests through the DEPLOYED API on the emulator, and `deployctl invoke` against the deployed stack.

Called from the e2e tests (test_up.py, test_deploy_path.py) once their stack is applied. The API
is served at moto's URL by tests/e2e/moto_compat.py (8): API Gateway's Lambda proxy integration,
the deployed code (as moto holds it, from S3) run in deployctl's runtime-faithful python3.12
worker. The URL is the emulator's address of the stack's own `health_url` output, the same
mapping `deployctl up`'s smoke test uses (deployctl.infra.up.emulator_url).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from deployctl.infra.up import emulator_url


def api_base(deployctl, outputs: dict) -> str:
    health = outputs["health_url"]
    assert health.endswith("/health"), health
    return emulator_url(health.removesuffix("/health"), deployctl.moto.endpoint).rstrip("/")  # no "//health"


def request(method: str, url: str, body: dict | None = None) -> tuple[int, dict | None, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json", "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw, status, headers = resp.read(), resp.status, dict(resp.headers)
    except urllib.error.HTTPError as exc:
        raw, status, headers = exc.read(), exc.code, dict(exc.headers)
    return status, (json.loads(raw) if raw else None), headers


def check_api(deployctl, outputs: dict) -> dict:
    """Health, an item created and listed, and a users CRUD round, through the deployed API."""
    base = api_base(deployctl, outputs)
    status, health, _ = request("GET", f"{base}/health")
    assert status == 200 and health["status"] in ("healthy", "degraded"), (status, health)
    assert health["environment"] == "dev" and {c["name"] for c in health["checks"]} >= {"config", "table:items"}

    status, item, _ = request("POST", f"{base}/items", {"name": "e2e item"})
    assert status == 201 and item["name"] == "e2e item" and item["id"], (status, item)
    status, listing, _ = request("GET", f"{base}/items?limit=10")
    assert status == 200 and item["id"] in [i["id"] for i in listing["items"]], (status, listing)

    status, user, _ = request("POST", f"{base}/users", {"name": "Ada", "email": "ada@example.com"})
    assert status == 201 and user["name"] == "Ada", (status, user)
    uid = user["UserId"]
    status, got, _ = request("GET", f"{base}/users/{uid}")
    assert status == 200 and got["email"] == "ada@example.com", (status, got)
    status, updated, _ = request("PUT", f"{base}/users/{uid}", {"name": "Ada L."})
    assert status == 200 and updated["name"] == "Ada L." and updated["email"] == "ada@example.com", (status, updated)
    status, users, _ = request("GET", f"{base}/users?limit=50")
    assert status == 200 and uid in [u["UserId"] for u in users["users"]], (status, users)
    status, _, _ = request("DELETE", f"{base}/users/{uid}")
    assert status == 204
    status, gone, _ = request("GET", f"{base}/users/{uid}")
    assert status == 404, (status, gone)
    return {"item": item["id"], "user": uid}


def check_invoke(deployctl) -> dict:
    """`deployctl invoke` of the deployed health-check's live alias, with an event built from a route."""
    res = deployctl("invoke", "--env", "dev", "--route", "GET /health")
    result = res.result
    assert result["status_code"] == 200 and result["qualifier"] == "live" and not result["function_error"], result
    assert result["payload"]["statusCode"] == 200, result["payload"]
    assert json.loads(result["payload"]["body"])["environment"] == "dev"
    assert "REPORT RequestId:" in result["log"], result["log"]
    return result


def check_promoted(deployctl, outputs: dict, function: str, version: str) -> None:
    """One request through the API after `promote`: served by the promoted version (the log stream
    the emulator writes for the invocation names the version, as Lambda's ``YYYY/MM/DD/[N]...`` does)."""
    base = api_base(deployctl, outputs)
    logs = deployctl.client("logs")
    group = f"/aws/lambda/{outputs['function_names'][function]}"

    def streams() -> set[str]:
        try:
            found = logs.describe_log_streams(logGroupName=group)["logStreams"]
        except logs.exceptions.ResourceNotFoundException:
            return set()
        return {s["logStreamName"] for s in found}

    before = streams()
    status, listing, _ = request("GET", f"{base}/users?limit=5")
    assert status == 200 and "users" in listing, (status, listing)
    new = streams() - before
    assert new and all(f"[{version}]" in name for name in new), (version, new)
