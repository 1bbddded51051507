"""check, plan, apply, outputs: the Terraform pipeline behind the policy gates.

plan:  env lock -> account guard -> render -> [source gate, in a thread beside: init (only when
       its inputs changed) -> plan -out -> show -json] -> the source gate's verdict (failed: the
       tfplan is removed, no plan JSON, no bundle) -> plan gate -> (expected changes)
       -> bundle (plan, plan JSON, policy, summary, fingerprint)
apply: env lock -> the bundle's claims (each can only refuse) -> account guard -> a private copy
       of the tfplan -> init (only when its inputs changed) -> show -json of that copy -> its
       configuration, variables and shape against the tree -> the plan gate again -> guards on
       the derived summary -> apply that copy -> outputs

``init`` runs only when what it depends on changed since the last successful init in this
work dir (:mod:`deployctl.infra.tfinit`); ``show -json`` runs once per plan and its document is
passed along, never re-read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deployctl import runner
from deployctl.config import EnvConfig, Settings
from deployctl.errors import ConfigError, Interrupted, PolicyFailed, Refused
from deployctl.fsutil import atomic_write
from deployctl.infra import envlock, records
from deployctl.infra import gate as gate_mod
from deployctl.infra import plan as plan_mod
from deployctl.infra import planfile as planfile_mod
from deployctl.infra import render as render_mod
from deployctl.infra.guards import account_guard, is_protected
from deployctl.infra.terraform import Terraform, backend_type, uses_aws
from deployctl.ui import UI

FOUNDATION_TARGETS = ["module.kms", "module.iam_boundary", "module.artifact_bucket", "module.ci_identity"]

__all__ = ["account_guard", "is_protected", "run_apply", "run_check", "run_destroy", "run_outputs", "run_plan"]


# -- check ----------------------------------------------------------------------------------


def source_targets(root: Path, cfg: EnvConfig | None) -> list[Path]:
    if cfg is None:
        return [root / "terraform"]
    modules = root / "terraform" / "modules"
    has_modules = modules.is_dir() and any(modules.rglob("*.tf"))
    return ([modules] if has_modules else []) + [cfg.env_dir]


def run_check(settings: Settings, cfg: EnvConfig | None, ui: UI) -> gate_mod.GateResult:
    """The source policy gate; writes a JUnit report into the work dir. Does not raise on failed checks."""
    return _source_check(settings, cfg, ui)()


def _source_check(settings: Settings, cfg: EnvConfig | None, ui: UI):
    """Print the source gate's step line now; return the scan itself (a callable, which prints
    nothing: ``plan`` runs it in a thread beside terraform)."""
    root = cfg.root if cfg else settings.project_root()
    work = cfg.work_dir if cfg else root / ".deployctl"
    gate = gate_mod.load_gate(root)
    targets = source_targets(root, cfg)
    checkov = settings.checkov(cfg)
    ui.step(f"checkov on {', '.join(gate_mod._rel(str(t), root) for t in targets)} (offline)")

    def scan() -> gate_mod.GateResult:
        result = gate_mod.scan_source(root, targets, checkov=checkov, cache_dir=work / "cache", gate=gate)
        work.mkdir(parents=True, exist_ok=True)
        junit = work / "check.junit.xml"
        junit.write_text(gate_mod.junit_xml([result]), encoding="utf-8")
        result.junit = str(junit)
        return result

    return scan


# -- plan -----------------------------------------------------------------------------------------


@dataclass
class PlanOutcome:
    env: str
    bundle: str
    summary: dict
    gates: dict
    foundation: bool
    targets: list[str]
    fingerprint: str
    account: dict
    findings: list = field(default_factory=list)
    destroy: bool = False
    # sha256 of the tfplan this process planned, summarized and gated: the one digest apply can
    # trust without re-deriving, when the same process applies it (up, destroy)
    plan_sha256: str = ""
    # the plan gate's findings came from the verdict cache, not from checkov in this process:
    # apply then derives the verdict again (a cache entry is no more trusted than the bundle)
    plan_gate_cached: bool = False
    # the plan's planned output values, sensitive ones redacted as read_outputs does (never in as_dict):
    # with no changes they are the env's outputs, so up needs no `terraform output -json`
    outputs: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "env": self.env, "bundle": self.bundle, "summary": self.summary, "gates": self.gates,
            "foundation": self.foundation, "destroy": self.destroy, "targets": self.targets,
            "fingerprint": self.fingerprint, "account_guard": self.account,
        }


def gate_plan(settings: Settings, cfg: EnvConfig, plan_json: Path, doc: dict, *,
              use_cache: bool, driver: gate_mod.CheckovDriver | None = None) -> gate_mod.GateResult:
    """The plan gate: checkov on a plan's JSON (``doc``, already parsed; checkov reads ``plan_json``)
    with the repository's own ``policy/gate.toml``.

    The one place both ``plan`` and ``apply`` judge a plan. ``use_cache``: the verdict may come from
    the env's gate cache (``plan``); apply passes False and always runs checkov (docs/security.md,
    "The gate verdict cache"). ``driver``: checkov started ahead for this scan (stopped on return)."""
    return gate_mod.scan_plan(cfg.root, plan_json, checkov=settings.checkov(cfg), gate=gate_mod.load_gate(cfg.root),
                              source_dir=cfg.env_dir, doc=doc,
                              cache_dir=cfg.work_dir / "cache" if use_cache else None, driver=driver)


def run_plan(settings: Settings, cfg: EnvConfig, ui: UI, *, foundation: bool = False,
             destroy: bool = False, expect: Path | None = None) -> PlanOutcome:
    """Render, gate, plan and save the bundle. ``destroy``: a ``plan -destroy`` of the whole env.

    ``expect``: the ``summary.json`` of a reviewed plan; a plan whose changes (addresses and
    actions) differ from it is refused and leaves no appliable bundle."""
    if foundation and destroy:
        raise ConfigError("--foundation and a destroy plan cannot be combined", hint="destroy plans the whole env")
    expected = planfile_mod.load_expected(expect) if expect is not None else None
    with envlock.hold(cfg.work_dir, "destroy" if destroy else "plan", env=cfg.name, ui=ui):
        # checkov for the plan gate imports itself while terraform plans (most of its time); it
        # gets the scan only if the gate's cache misses, and never outlives this call
        driver = gate_mod.CheckovDriver.start(settings.checkov(cfg), cwd=cfg.root) if _plan_may_differ(cfg) else None
        try:
            return _plan(settings, cfg, ui, foundation=foundation, destroy=destroy, expected=expected, expect=expect,
                         driver=driver)
        finally:
            if driver is not None:
                driver.stop()


def _plan_may_differ(cfg: EnvConfig) -> bool:
    """Whether the plan gate will likely miss its cache: no previous plan, it was applied (the state
    moved), or any of its inputs changed since (a prediction only: it decides whether checkov
    starts early, never a verdict). An unchanged env skips the early start, which would take CPU
    from terraform for nothing. So does a root without the AWS provider (the provider-free roots of
    the tests): it plans nothing this project's checks judge."""
    if not uses_aws(cfg.env_dir):
        return False
    bundle = plan_mod.Bundle.for_env(cfg)
    if bundle.path(plan_mod.APPLIED_JSON).exists():
        return True
    try:
        previous = json.loads(bundle.path(plan_mod.FINGERPRINT_JSON).read_text(encoding="utf-8"))
        version = previous["terraform-version"]
        return plan_mod.fingerprint_inputs(cfg, version) != previous
    except (OSError, ValueError, KeyError, TypeError):
        return True


INIT_RECORD = "terraform-init.json"


def ensure_init(tf: Terraform, cfg: EnvConfig, ui: UI, backend_config: Path | None) -> bool:
    """``terraform init`` in the env root unless nothing it depends on changed since the last one
    that succeeded here (:mod:`deployctl.infra.tfinit`); its step line either way."""
    tfv = tf.version()
    if tf.init_current(backend_config, cfg.work_dir / INIT_RECORD):
        ui.step(f"{tfv.name} {tfv.version}: init (skipped: nothing it depends on changed)")
        return False
    ui.step(f"{tfv.name} {tfv.version}: init")
    tf.init_and_record(backend_config, cfg.work_dir / INIT_RECORD)
    return True


def _source_failed(source: gate_mod.GateResult) -> PolicyFailed:
    return PolicyFailed(
        f"the policy gate failed on the source: {len(source.blocking)} blocking finding(s) "
        f"({', '.join(sorted({f.check_id for f in source.blocking}))})",
        where=source.junit,
        hint="fix them or add a waiver with a reason to policy/gate.toml, then re-run deployctl plan",
    )


def _plan(settings: Settings, cfg: EnvConfig, ui: UI, *, foundation: bool, destroy: bool,
          expected: list | None, expect: Path | None, driver: gate_mod.CheckovDriver | None = None) -> PlanOutcome:
    tf = Terraform(cfg, settings, ui)
    bundle = plan_mod.Bundle.for_env(cfg)
    bundle.reset()
    tfv = tf.version()
    targets = list(FOUNDATION_TARGETS) if foundation else []

    # the account guard first: credentials of another account are refused (exit 4) before
    # anything is rendered, whatever else is wrong (doctor --env reports the same code)
    account = account_guard(cfg, needed=uses_aws(cfg.env_dir))
    if not account["checked"]:
        ui.info(f"account guard skipped: {account['reason']}")

    ui.step(f"render {render_mod.TFVARS_FILE} and {render_mod.BACKEND_FILE}")
    # a destroy plan needs no artifacts: what it removes is in the state
    rendered = render_mod.render(cfg, allow_missing_artifacts=foundation or destroy)

    # The source gate (checkov, seconds) runs in a thread beside init, plan and show; its step line
    # is printed now and its verdict after them, whichever finishes first. Until that verdict
    # passed nothing is written that could be applied: a failure removes the tfplan and raises
    # exactly as when it ran first. Whatever ends this early (a terraform error, Ctrl-C) stops it.
    planfile = bundle.path(plan_mod.PLAN_FILE)
    source_job = runner.Job(_source_check(settings, cfg, ui), name="deployctl-source-gate")

    def source_verdict(*, wait: bool) -> gate_mod.GateResult | None:
        if not wait and not source_job.done():
            return None
        source = source_job.result()
        if not source.passed:
            planfile.unlink(missing_ok=True)
            bundle.write_json(plan_mod.POLICY_JSON, {"source": source.as_dict()})
            bundle.path(plan_mod.POLICY_JUNIT).write_text(gate_mod.junit_xml([source]), encoding="utf-8")
            ui.info("source gate: failed")
            raise _source_failed(source)
        return source

    try:
        ensure_init(tf, cfg, ui, rendered.backend_path if backend_type(cfg.env_dir) == "s3" else None)
        source_verdict(wait=False)  # already failed: no plan
        ui.step("plan" + (f" (foundation: {', '.join(targets)})" if targets else "") + (" -destroy" if destroy else ""))
        tf.plan(planfile, targets=targets, destroy=destroy)
        source_verdict(wait=False)
        # secret: written owner-only as terraform printed it (no second serialisation), passed along, never printed
        doc_text, doc = tf.show_json_text(planfile)
        source = source_verdict(wait=True)
    except BaseException:
        source_job.stop()  # no checkov outlives this run
        planfile.unlink(missing_ok=True)
        raise
    ui.info(f"source gate: passed{' (cached)' if source.cached else ''}")
    bundle.write_json(plan_mod.POLICY_JSON, {"source": source.as_dict()})
    plan_sha256 = plan_mod.sha256_file(planfile)
    atomic_write(bundle.path(plan_mod.PLAN_JSON), doc_text, mode=0o600)
    del doc_text
    summary = plan_mod.summarize(doc)
    bundle.write_json(plan_mod.SUMMARY_JSON, summary)
    outputs = planned_outputs(doc) if not summary["has_changes"] else {}

    ui.step("checkov on the plan JSON")
    plan_gate = gate_plan(settings, cfg, bundle.path(plan_mod.PLAN_JSON), doc, use_cache=True, driver=driver)
    del doc  # secret: never kept around, never printed
    bundle.write_json(plan_mod.POLICY_JSON, {"source": source.as_dict(), "plan": plan_gate.as_dict()})
    bundle.path(plan_mod.POLICY_JUNIT).write_text(gate_mod.junit_xml([source, plan_gate]), encoding="utf-8")

    if expected is not None:
        diff = planfile_mod.expectation_diff(expected, planfile_mod.changes_of(summary))
        if diff:
            # no bundle.json: nothing here can be applied
            shown = "; ".join(diff[:5]) + (f"; and {len(diff) - 5} more" if len(diff) > 5 else "")
            raise Refused(f"the plan differs from the reviewed one: {shown}", where=str(expect),
                          hint="nothing is applied; plan and review the change again")
        ui.info(f"the plan has exactly the reviewed changes ({len(expected)})")

    inputs = plan_mod.fingerprint_inputs(cfg, f"{tfv.name} {tfv.version}")
    bundle.write_json(plan_mod.FINGERPRINT_JSON, inputs)
    gates = {"source": {"passed": source.passed, "counts": source.counts},
             "plan": {"passed": plan_gate.passed, "counts": plan_gate.counts}}
    bundle.finish({
        "env": cfg.name,
        "foundation": foundation,
        "destroy": destroy,
        "targets": targets,
        "terraform": {"name": tfv.name, "version": tfv.version},
        "fingerprint": plan_mod.digest(inputs),
        "gates": gates,
        "uses_aws": account["checked"],
        "account_guard": account,
        "summary": {"counts": summary["counts"], "dangerous": summary["dangerous"]},
        "missing_artifacts": rendered.missing_artifacts,
        "missing_layers": rendered.missing_layers,
    })
    outcome = PlanOutcome(cfg.name, str(bundle.dir), summary, gates, foundation, targets, bundle.meta["fingerprint"],
                          account, findings=source.findings + plan_gate.findings, destroy=destroy,
                          plan_sha256=plan_sha256, plan_gate_cached=plan_gate.cached, outputs=outputs)
    if not plan_gate.passed and plan_gate.unknown_key:
        message, hint = gate_mod.unknown_key_error(plan_gate, cfg.name, foundation=foundation)
        raise PolicyFailed(message, where=str(bundle.path(plan_mod.POLICY_JUNIT)), hint=hint)
    if not plan_gate.passed:
        raise PolicyFailed(
            f"the policy gate failed on the plan: {len(plan_gate.blocking)} blocking finding(s) "
            f"({', '.join(sorted({f.check_id for f in plan_gate.blocking}))}); this plan cannot be applied",
            where=str(bundle.path(plan_mod.POLICY_JUNIT)),
            hint="fix them or add a waiver with a reason to policy/gate.toml, then re-run deployctl plan",
        )
    return outcome


# -- apply ------------------------------------------------------------------------------------------


def apply_guard(cfg: EnvConfig, summary: dict, ui: UI, *, allow_destroy: bool, style=None) -> None:
    """Refused unless a protected env's plan is confirmed (or --yes) and, if it destroys state, --allow-destroy."""
    if not is_protected(cfg):
        return
    if summary.get("dangerous") and not allow_destroy:
        raise Refused(
            f"the plan destroys or replaces stateful resources in {cfg.name}: {', '.join(summary['dangerous'])}",
            hint="if that is really intended, re-run with --allow-destroy",
        )
    ui.info(plan_mod.summary_text(summary, style or (lambda text, *s: ui.style(text, *s, stream=ui.err))))
    ui.confirm(f"Apply this plan to {cfg.name} (account {cfg.account_id})?", what=f"applying to {cfg.name}")


def run_apply(settings: Settings, cfg: EnvConfig, ui: UI, *, allow_destroy: bool = False,
              confirmed: bool = False, planned: PlanOutcome | None = None) -> dict:
    """Apply the saved bundle, under the env lock.

    Nothing the bundle claims is trusted: its records can only make apply refuse. What apply
    enforces (the summary, the destroy guard, the plan gate, staleness) is derived from a
    private copy of the ``tfplan``, and exactly that copy is applied.

    ``planned``: the outcome of ``run_plan`` in this same process (``up``, ``destroy``): its summary
    and gates were derived from the tfplan whose sha256 it holds, so a copy with that digest is
    not derived again, unless its plan verdict came from the gate cache (then it is derived, and
    checkov runs on the copy). ``confirmed``: the caller (destroy) already asked, after showing it.
    """
    with envlock.hold(cfg.work_dir, "apply", env=cfg.name, ui=ui):
        return _apply(settings, cfg, ui, allow_destroy=allow_destroy, confirmed=confirmed, planned=planned)


def _private_copy(src: Path, work_dir: Path) -> tuple[Path, str]:
    """Copy the tfplan into a new owner-only directory (apply then never reads the bundle's file again)."""
    private = Path(tempfile.mkdtemp(prefix=".apply-", dir=work_dir))
    dest = private / plan_mod.PLAN_FILE
    try:
        fd = os.open(src, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        shutil.rmtree(private, ignore_errors=True)
        raise Refused("the saved plan file is missing or not a regular file", where=str(src),
                      hint="run deployctl plan again") from None
    with os.fdopen(fd, "rb") as fh:
        atomic_write(dest, fh.read(), mode=0o600)
    return dest, plan_mod.sha256_file(dest)


def derive(settings: Settings, cfg: EnvConfig, ui: UI, tf: Terraform, planfile: Path,
           snapshot: planfile_mod.Snapshot, tfvars: dict, *, destroy: bool, foundation: bool) -> dict:
    """The summary and the gate verdict of a plan file, from the file itself; Refused unless it was made
    from the current tree's configuration and variables, in the shape this bundle claims, and passes the gate."""
    hint = f"run deployctl plan --env {cfg.name}"
    where = str(plan_mod.Bundle.for_env(cfg).dir)
    ui.step("derive the summary and the policy verdict from the plan file itself")
    doc = tf.show_json(planfile)
    drift = planfile_mod.config_drift(snapshot, cfg.env_dir, cfg.root) + planfile_mod.variable_drift(doc, tfvars)
    if drift:
        shown = "; ".join(drift[:5]) + (f"; and {len(drift) - 5} more" if len(drift) > 5 else "")
        raise Refused(f"the saved plan file was not made from the current tree: {shown}", where=where, hint=hint)
    shape = planfile_mod.shape_problems(doc, destroy=destroy, foundation=foundation)
    if shape:
        raise Refused(f"the saved plan file is not the plan deployctl made for this bundle: {'; '.join(shape)}",
                      where=where, hint=hint)
    summary = plan_mod.summarize(doc)
    plan_json = planfile.parent / plan_mod.PLAN_JSON
    atomic_write(plan_json, json.dumps(doc), mode=0o600)  # secret, in the private dir, removed after apply
    verdict = gate_plan(settings, cfg, plan_json, doc, use_cache=False)  # never the cache: see gate_plan
    del doc
    if not verdict.passed:
        raise Refused(
            f"the saved plan fails the plan policy gate: {len(verdict.blocking)} blocking finding(s) "
            f"({', '.join(sorted({f.check_id for f in verdict.blocking}))})",
            where=where, hint=f"fix them or add a waiver with a reason to policy/gate.toml, then {hint}",
        )
    return {"summary": summary, "gate": {"passed": verdict.passed, "counts": verdict.counts}}


def _apply(settings: Settings, cfg: EnvConfig, ui: UI, *, allow_destroy: bool, confirmed: bool,
           planned: PlanOutcome | None) -> dict:
    tf = Terraform(cfg, settings, ui)
    bundle = plan_mod.Bundle.for_env(cfg).load()
    tfv = tf.version()
    # the bundle's claims: each can only refuse (a false one never lets anything through)
    is_destroy = bool(bundle.meta.get("destroy"))
    foundation = bool(bundle.meta.get("foundation"))
    # Re-render from the tree (a CI checkout has no generated files); the plan file's own
    # variables must then equal what the tree renders.
    rendered = render_mod.render(cfg, allow_missing_artifacts=foundation or is_destroy)
    current = plan_mod.fingerprint_inputs(cfg, f"{tfv.name} {tfv.version}")
    plan_mod.verify(bundle, cfg, current)
    # the account first: never ask someone to confirm an apply that would be refused anyway
    account = account_guard(cfg, needed=bool(bundle.meta.get("uses_aws")) or uses_aws(cfg.env_dir))
    if is_destroy and not confirmed:
        destroy_guard(cfg, ui, allow_destroy=allow_destroy)

    for stale in cfg.work_dir.glob(".apply-*"):  # left by a run that was killed (we hold the lock)
        shutil.rmtree(stale, ignore_errors=True)
    planfile, sha = _private_copy(bundle.path(plan_mod.PLAN_FILE), cfg.work_dir)
    try:
        if planned is not None and sha != planned.plan_sha256:
            raise Refused("the saved plan file changed since this run planned it", where=str(bundle.dir),
                          hint=f"run deployctl plan --env {cfg.name}")
        snapshot = planfile_mod.read_snapshot(planfile)
        if snapshot.lock is not None:  # the provider lock the plan was made with, from the plan itself
            atomic_write(cfg.env_dir / ".terraform.lock.hcl", snapshot.lock)
        ensure_init(tf, cfg, ui, rendered.backend_path if backend_type(cfg.env_dir) == "s3" else None)
        if planned is not None and not planned.plan_gate_cached:
            summary = planned.summary  # planned and judged by checkov in this process
        else:
            summary = derive(settings, cfg, ui, tf, planfile, snapshot, rendered.tfvars,
                             destroy=is_destroy, foundation=foundation)["summary"]
        if is_destroy:
            if not confirmed:
                confirm_destroy(cfg, summary, ui)
        elif not confirmed:
            apply_guard(cfg, summary, ui, allow_destroy=allow_destroy)

        ui.step(f"apply the saved plan ({plan_mod.summary_text(summary).splitlines()[0]})")
        status = "failed"
        try:
            res = tf.apply(planfile)
            status = "applied"
        except Interrupted:
            status = "interrupted"
            raise Interrupted(
                "apply interrupted: terraform got the signal, finished its current step and released the state lock",
                where=str(cfg.env_dir),
                hint=f"only changes from the reviewed plan were made; run deployctl plan --env {cfg.name} to see what is left",
            ) from None
        finally:
            # A saved plan is consumed by any apply attempt: never apply it twice.
            bundle.write_json(plan_mod.APPLIED_JSON, {"status": status,
                                                      "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                                      "fingerprint": bundle.meta.get("fingerprint"),
                                                      "plan_sha256": sha})
        del res  # terraform's output was streamed to stderr as it ran
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(planfile.parent)
    records.record_apply(cfg, status=status, bundle_meta=bundle.meta, account=account)  # for deployctl status
    outputs = read_outputs(tf)
    return {"env": cfg.name, "applied": True, "destroy": is_destroy, "summary": summary["counts"],
            "account_guard": account, "outputs": outputs, "bundle": str(bundle.dir)}


# -- destroy ------------------------------------------------------------------------------------------


def destroy_guard(cfg: EnvConfig, ui: UI, *, allow_destroy: bool) -> None:
    """Before anything runs: a protected env (prod, deletion protection) is never destroyed without --allow-destroy."""
    if is_protected(cfg) and not allow_destroy:
        raise Refused(
            f"environment {cfg.name} has deletion protection: destroying it deletes its tables, keys and buckets",
            where=cfg.where("protection.deletion_protection"),
            hint=f"if that is really intended, re-run with --allow-destroy (and type '{cfg.name}' to confirm)",
        )


def confirm_destroy(cfg: EnvConfig, summary: dict, ui: UI, style=None) -> None:
    """Show what goes, then: protected envs need the env name typed (or --yes), others a yes (or --yes)."""
    ui.info(plan_mod.summary_text(summary, style or (lambda text, *s: ui.style(text, *s, stream=ui.err))))
    what = f"destroying {cfg.name}"
    prompt = f"Destroy every resource of {cfg.name} (account {cfg.account_id}) listed above?"
    if is_protected(cfg):
        ui.confirm_typed(f"{prompt} Type the environment name to confirm:", cfg.name, what=what)
    else:
        ui.confirm(prompt, what=what)


def state_bucket_note(cfg: EnvConfig) -> dict:
    return {
        "bucket": cfg.state_bucket(),
        "key": cfg.state_key(),
        "kept": True,
        "why": "made by deployctl bootstrap outside Terraform; it keeps the (now empty) state and its history",
        "remove_with": f"aws s3 rb s3://{cfg.state_bucket()} --force (after deleting every object version)",
    }


def run_destroy(settings: Settings, cfg: EnvConfig, ui: UI, *, allow_destroy: bool = False,
                plan_only: bool = False) -> dict:
    """Plan -destroy into a bundle (through both gates), show it, confirm, then apply exactly that bundle."""
    destroy_guard(cfg, ui, allow_destroy=allow_destroy)
    with envlock.hold(cfg.work_dir, "destroy", env=cfg.name, ui=ui):
        return _destroy(settings, cfg, ui, allow_destroy=allow_destroy, plan_only=plan_only)


def _destroy(settings: Settings, cfg: EnvConfig, ui: UI, *, allow_destroy: bool, plan_only: bool) -> dict:
    outcome = run_plan(settings, cfg, ui, destroy=True)
    result: dict = {"env": cfg.name, "plan": outcome.as_dict(), "destroyed": False,
                    "state_bucket": state_bucket_note(cfg)}
    if plan_only or not outcome.summary["has_changes"]:
        if not outcome.summary["has_changes"]:
            ui.info(f"nothing to destroy in {cfg.name}: the state holds no resources")
            # consume the empty bundle: it must never be applied later as "the plan"
            bundle = plan_mod.Bundle.for_env(cfg).load()
            bundle.write_json(plan_mod.APPLIED_JSON, {"status": "empty destroy plan, nothing applied",
                                                      "at": datetime.now(UTC).isoformat(timespec="seconds"),
                                                      "fingerprint": bundle.meta.get("fingerprint")})
        return result
    confirm_destroy(cfg, outcome.summary, ui)
    applied = run_apply(settings, cfg, ui, allow_destroy=allow_destroy, confirmed=True, planned=outcome)
    result.update({"destroyed": True, "summary": applied["summary"], "account_guard": applied["account_guard"]})
    result["secrets"] = _delete_secrets(cfg, ui, allow_destroy=allow_destroy)
    return result


def _delete_secrets(cfg: EnvConfig, ui: UI, *, allow_destroy: bool) -> dict:
    """The secure parameters live outside Terraform (deployctl made them): they go with the stack."""
    if not uses_aws(cfg.env_dir) or not any((p or {}).get("secure") for p in (cfg.data.get("parameters") or {}).values()):
        return {"deleted": [], "absent": []}
    from deployctl.infra import secrets

    ui.step("delete the secure parameters (made by deployctl, not Terraform)")
    return secrets.delete_secrets(cfg, ui, allow_protected=allow_destroy)


# -- outputs ------------------------------------------------------------------------------------------

REDACTED = "(sensitive)"


def read_outputs(tf: Terraform) -> dict:
    """terraform output -json with sensitive values redacted."""
    return _redacted(tf.output_json())


def planned_outputs(doc: dict) -> dict:
    """The outputs of a plan document (``planned_values.outputs``), redacted exactly as
    :func:`read_outputs`; of a plan with no changes, they are what ``terraform output -json`` says."""
    return _redacted((doc.get("planned_values") or {}).get("outputs") or {})


def _redacted(raw: dict) -> dict:
    out = {}
    for name, item in sorted(raw.items()):
        sensitive = bool(item.get("sensitive"))
        out[name] = {"value": REDACTED if sensitive else item.get("value"), "sensitive": sensitive,
                     "type": item.get("type")}
    return out


def run_outputs(settings: Settings, cfg: EnvConfig, ui: UI) -> dict:
    tf = Terraform(cfg, settings, ui)
    if not (cfg.env_dir / ".terraform").is_dir():
        tf.init(render_mod.write_backend(cfg) if backend_type(cfg.env_dir) == "s3" else None)
    return read_outputs(tf)
