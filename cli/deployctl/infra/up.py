"""deployctl up: from an empty account to a working API in one reviewable, resumable command.

The first-deploy order, each step idempotent, so a re-run after an interruption
picks up where the last one stopped and a re-run on a deployed env changes nothing:

1. account guard            the credentials belong to ``aws.account_id``
2. state bucket             ``bootstrap`` (created or checked)
3. foundation               KMS key + artifact bucket, planned and applied on their own
                            (skipped when both exist): the full plan's policy gate can
                            only judge encryption once the key's ARN is known
4. secrets                  every ``secure = true`` parameter gets a generated value once
5. publish                  content-addressed uploads (nothing when nothing changed); beside
                            it, the stack root's ``terraform init`` when it is needed
6. full plan and apply      the same gates and bundles as ``plan``/``apply``; nothing is
                            applied when the plan has no changes
7. outputs and smoke test   the plan's outputs when nothing was applied (no `terraform output`
                            of its own), else those apply read; GET the health URL when reachable

Every plan's summary is shown; in a protected env (prod) each apply is confirmed
(or ``--yes``), exactly as ``deployctl apply`` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from deployctl import runner
from deployctl.config import EnvConfig, Settings
from deployctl.errors import DeployctlError
from deployctl.infra import bootstrap as bootstrap_mod
from deployctl.infra import doctor, envlock, guards, pipeline
from deployctl.infra import plan as plan_mod
from deployctl.infra import render as render_mod
from deployctl.infra.terraform import Terraform, backend_type
from deployctl.ui import UI

SMOKE_TIMEOUT_S = 10.0


@dataclass
class Step:
    name: str
    status: str  # done | ok (nothing to do) | skipped
    detail: str = ""
    data: dict = field(default_factory=dict)
    # a plan step's outputs (redacted as pipeline.read_outputs does): planned when nothing was applied,
    # else `terraform output -json` after the apply; not part of the step's record
    outputs: dict | None = field(default=None, repr=False)

    def as_dict(self) -> dict:
        return {"step": self.name, "status": self.status, "detail": self.detail, **self.data}


def foundation_present(cfg: EnvConfig) -> bool:
    """Whether the KMS key (its alias) and the artifact bucket exist: doctor's own probes.

    A probe that cannot tell (an AWS error other than "not found") surfaces as that error."""
    checks = doctor.foundation_checks(cfg)
    for check in checks:
        if not check.ok and check.cause is not None:
            raise check.cause
    return all(check.ok for check in checks)


def _plan_and_apply(settings: Settings, cfg: EnvConfig, ui: UI, *, foundation: bool) -> Step:
    name = "foundation" if foundation else "stack"
    outcome = pipeline.run_plan(settings, cfg, ui, foundation=foundation)
    ui.info(plan_mod.summary_text(outcome.summary, lambda text, *s: ui.style(text, *s, stream=ui.err)))
    if not outcome.summary["has_changes"]:
        # consume the bundle: nothing to apply, and it must never be applied later as "the plan"
        bundle = plan_mod.Bundle.for_env(cfg).load()
        bundle.write_json(plan_mod.APPLIED_JSON, {"status": "no changes, nothing applied",
                                                  "fingerprint": bundle.meta.get("fingerprint")})
        # a plan with no changes (outputs included) plans exactly the outputs the state holds
        return Step(name, "ok", "no changes", {"summary": outcome.summary["counts"], "applied": False},
                    outputs=outcome.outputs)
    applied = pipeline.run_apply(settings, cfg, ui, planned=outcome)
    return Step(name, "done", plan_mod.summary_text(outcome.summary).splitlines()[0],
                {"summary": applied["summary"], "applied": True}, outputs=applied["outputs"])


def emulator_url(url: str, endpoint: str) -> str:
    """The emulator's address of an execute-api URL: LocalStack's form
    ``{endpoint}/restapis/{api}/{stage}/_user_request_/{path}`` (moto serves it through the
    e2e's compat layer). A URL that is not an execute-api URL is returned unchanged."""
    m = re.match(r"^https://([a-z0-9]+)\.execute-api\.[a-z0-9-]+\.amazonaws\.com(?:\.cn)?/([^/?#]+)(/[^?#]*)?(\?.*)?$",
                 url)
    if not m:
        return url
    api, stage, path, query = m.group(1), m.group(2), m.group(3) or "/", m.group(4) or ""
    return f"{endpoint.rstrip('/')}/restapis/{api}/{stage}/_user_request_{path}{query}"


def smoke_test(url: str | None) -> dict:
    """GET the health URL; with ``AWS_ENDPOINT_URL`` (an emulator holds the stack) at the emulator's
    address of that URL (:func:`emulator_url`)."""
    if not url:
        return {"status": "skipped", "reason": "the stack has no health_url output"}
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        url = emulator_url(url, endpoint)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/json"}),
                                    timeout=SMOKE_TIMEOUT_S) as resp:
            body = resp.read(64 * 1024)
            code = resp.status
    except urllib.error.HTTPError as exc:
        body, code = exc.read(64 * 1024), exc.code
    except (urllib.error.URLError, OSError) as exc:
        return {"status": "unreachable", "url": url, "reason": str(getattr(exc, "reason", exc))}
    try:
        status = json.loads(body).get("status")
    except (ValueError, AttributeError):
        status = None
    healthy = code == 200
    return {"status": "passed" if healthy else "failed", "url": url, "http_status": code, "health": status,
            "ms": round((time.monotonic() - started) * 1000)}


def run_up(settings: Settings, cfg: EnvConfig, ui: UI) -> dict:
    """Every step under the env lock: no plan, apply or destroy of this env runs beside it."""
    with envlock.hold(cfg.work_dir, "up", env=cfg.name, ui=ui):
        return _up(settings, cfg, ui)


def _up(settings: Settings, cfg: EnvConfig, ui: UI) -> dict:
    from deployctl.artifacts import publish as publish_mod

    steps: list[Step] = []
    ui.step(f"deployctl up: {cfg.name} in account {cfg.account_id} ({cfg.region})")
    account = guards.account_guard(cfg, needed=True)

    ui.step("state bucket")
    bucket = bootstrap_mod.ensure_state_bucket(cfg)
    changed = [k for k, v in bucket["steps"].items() if v != "ok"]
    steps.append(Step("state bucket", "done" if changed else "ok",
                      f"s3://{bucket['bucket']}" + (f" ({', '.join(changed)})" if changed else ""),
                      {"bucket": bucket["bucket"]}))

    ui.step("foundation (KMS key, artifact bucket)")
    if foundation_present(cfg):
        steps.append(Step("foundation", "ok", "KMS key and artifact bucket exist", {"applied": False}))
    else:
        steps.append(_plan_and_apply(settings, cfg, ui, foundation=True))

    ui.step("secrets (secure parameters)")
    steps.append(_secrets_step(cfg, ui))

    ui.step("publish the Lambda code")
    # the stack's init does not depend on the code: when it is needed (a fresh checkout of a deployed
    # env), it runs beside publish; the plan then finds it current
    init_job = _stack_init_beside(settings, cfg)
    try:
        published = publish_mod.publish(cfg, ui=ui)
        with contextlib.suppress(DeployctlError):  # recorded nothing: the plan's init runs it again and reports
            if init_job.result():
                ui.info("terraform init of the stack's root ran beside publish")
    finally:
        init_job.stop()  # a no-op when it finished; else (publish failed, Ctrl-C) no terraform outlives up
    uploaded = [fn for fn, item in published["functions"].items() if item["uploaded"]]
    steps.append(Step("publish", "done" if uploaded else "ok",
                      f"{published['bytes_uploaded']} bytes uploaded" + (f" ({', '.join(uploaded)})" if uploaded else ""),
                      {"bytes_uploaded": published["bytes_uploaded"], "uploaded": uploaded}))

    ui.step("the whole stack: plan and apply")
    stack = _plan_and_apply(settings, cfg, ui, foundation=False)
    steps.append(stack)

    # no `terraform output -json` of its own: the stack step's outputs are the plan's (no changes)
    # or those apply read after applying
    outputs = stack.outputs if stack.outputs is not None else pipeline.run_outputs(settings, cfg, ui)
    values = {name: item["value"] for name, item in outputs.items()}
    smoke = smoke_test(values.get("health_url"))
    steps.append(Step("smoke test", "done" if smoke["status"] == "passed" else "skipped"
                      if smoke["status"] != "failed" else "failed", smoke.get("reason", smoke["status"]), smoke))
    changed_anything = any(s.status == "done" for s in steps if s.name != "smoke test")
    return {"env": cfg.name, "account_guard": account, "steps": [s.as_dict() for s in steps],
            "changed": changed_anything, "bytes_uploaded": published["bytes_uploaded"],
            "applied": any(s.data.get("applied") for s in steps), "outputs": values, "smoke_test": smoke}


def _stack_init_beside(settings: Settings, cfg: EnvConfig) -> runner.Job:
    """A thread that runs ``terraform init`` of the env root unless it is current; its result says
    whether it ran. Quiet (no UI, its output is captured): if it fails it records nothing, and the
    plan's own init runs it again and reports the error in its place."""
    tf = Terraform(cfg, settings)
    backend = render_mod.write_backend(cfg) if backend_type(cfg.env_dir) == "s3" else None
    record = cfg.work_dir / pipeline.INIT_RECORD

    def init() -> bool:
        if tf.init_current(backend, record):
            return False
        tf.init_and_record(backend, record)
        return True

    return runner.Job(init, name="deployctl-stack-init")


def _secrets_step(cfg: EnvConfig, ui: UI) -> Step:
    """Every ``secure = true`` parameter gets a generated value once; existing values are kept."""
    from deployctl.infra import secrets

    result = secrets.ensure_secrets(cfg, ui)
    made = result["created"] + result["replaced_placeholder"]
    detail = f"created {', '.join(made)}" if made else "every secure parameter has a value"
    if result["missing"]:
        detail += f"; not set yet (generate = \"none\"): {', '.join(result['missing'])}"
    return Step("secrets", "done" if made else "ok", detail,
                {"parameters": [{k: s.get(k) for k in ("name", "parameter", "status", "version")}
                                for s in result["secrets"]]})
