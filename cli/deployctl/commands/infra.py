"""render, check, plan, apply, outputs, bootstrap: Terraform behind policy gates."""

from __future__ import annotations

from pathlib import Path

import click

from deployctl.commands._common import (
    common_options,
    env_option,
    load_env,
    settings,
    tool_options,
    ui,
    yes_option,
)
from deployctl.errors import PolicyFailed


def _styler(out):
    return lambda text, *styles: out.style(text, *styles)


@click.command(short_help="Render the env's tfvars and backend config from its configuration.")
@click.option("--foundation", is_flag=True,
              help="Allow functions without a published artifact (first deploy, before publish-lambda).")
@env_option
@common_options
def render(foundation):
    """Render terraform/envs/<env>/*.auto.tfvars.json and the backend config."""
    from deployctl.infra import render as core

    cfg = load_env()
    out = ui()
    result = core.render(cfg, allow_missing_artifacts=foundation)
    for name in result.omitted_secrets:
        out.warn(f"parameters.{name}: secure value in the config was NOT rendered; remove it from the file "
                 f"(deployctl secret ensure --env {cfg.name} generates secure values)")
    for name in result.missing_artifacts:
        out.warn(f"function {name} has no published artifact yet (s3_key = \"\")")
    for name in result.missing_layers:
        out.warn(f"layer {name} has no published artifact yet: it is not created until publish-lambda")

    def human() -> str:
        return f"wrote {result.tfvars_path}\nwrote {result.backend_path}"

    out.result(result.as_dict(), human)


@click.command(short_help="Policy gate: checkov on the modules and the env root.")
@env_option
@tool_options
@common_options
def check():
    """Run the checkov policy gate offline; exit 1 on any failed check.

    Without --env it scans the whole terraform/ tree. The gate's hard-fail
    checks and waivers (each with a reason) live in policy/gate.toml; a JUnit
    report is written into the env's work dir (.deployctl/).
    """
    from deployctl.infra import gate, pipeline

    cfg = load_env(required=False)
    out = ui()
    result = pipeline.run_check(settings(), cfg, out)
    human = lambda: "\n".join(gate.summary_lines(result, _styler(out)))  # noqa: E731
    if result.passed:
        out.result(result.as_dict(), human)
    else:
        # every finding goes to stdout (ok = false in the JSON envelope); one line on stderr, exit 1
        err = PolicyFailed(
            f"{len(result.blocking)} blocking finding(s): {', '.join(sorted({f.check_id for f in result.blocking}))}",
            where=result.junit,
            hint="fix them, or waive a check with a reason in policy/gate.toml",
        )
        out.failed(result.as_dict(), err.to_dict(), human)
        out.error(err.one_line())
        raise click.exceptions.Exit(err.exit_code)


@click.command(short_help="Render, check, terraform plan, and save a reviewed plan bundle.")
@click.option("--foundation", is_flag=True,
              help="First deploy: plan only module.kms, module.iam_boundary, module.artifact_bucket and module.ci_identity (-target), before publish-lambda.")
@click.option("--expect-changes", "expect", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path),
              help="The summary.json of a reviewed plan: refuse (and save nothing appliable) unless this plan "
                   "makes exactly its changes (addresses and actions).")
@env_option
@tool_options
@common_options
def plan(foundation, expect):
    """Render, gate, init and plan; save the plan bundle that apply will use."""
    from deployctl.infra import pipeline
    from deployctl.infra import plan as plan_core

    cfg = load_env()
    out = ui()
    outcome = pipeline.run_plan(settings(), cfg, out, foundation=foundation, expect=expect)

    def human() -> str:
        lines = [plan_core.summary_text(outcome.summary, _styler(out))]
        if outcome.foundation:
            lines.append(f"(foundation plan: {', '.join(outcome.targets)})")
        lines.append(f"policy gates passed; plan bundle saved in {outcome.bundle}")
        if outcome.summary["has_changes"]:
            lines.append(f"next: deployctl apply --env {outcome.env}")
        else:
            lines.append(f"nothing to apply: {outcome.env} matches the configuration")
        return "\n".join(lines)

    out.result(outcome.as_dict(), human)


@click.command(short_help="Apply exactly the saved, checked plan bundle.")
@click.option("--allow-destroy", is_flag=True, help="Allow a prod plan that destroys stateful resources.")
@env_option
@yes_option
@tool_options
@common_options
def apply(allow_destroy):
    """Apply the saved plan bundle if it passed the gates and is not stale."""
    from deployctl.infra import pipeline

    cfg = load_env()
    out = ui()
    result = pipeline.run_apply(settings(), cfg, out, allow_destroy=allow_destroy)
    out.result(result, lambda: _outputs_table(result["outputs"]))


def _outputs_table(outputs: dict) -> str:
    import json

    from deployctl.ui import table

    if not outputs:
        return "(no outputs)"
    rows = []
    for name, item in outputs.items():
        value = item["value"]
        text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
        rows.append([name, text if len(text) <= 100 else text[:97] + "..."])
    return table(rows, ["output", "value"])


@click.command(short_help="Show the env's terraform outputs.")
@env_option
@tool_options
@common_options
def outputs():
    """Print the terraform outputs of an environment as a table or JSON (sensitive values redacted)."""
    from deployctl.infra import pipeline

    cfg = load_env()
    out = ui()
    result = pipeline.run_outputs(settings(), cfg, out)
    out.result({name: item["value"] for name, item in result.items()}, lambda: _outputs_table(result))


@click.command(short_help="Create the state bucket and print the first-deploy order.")
@env_option
@common_options
def bootstrap():
    """Create what must exist before the first plan (the state bucket), idempotently."""
    from deployctl.infra import bootstrap as core

    cfg = load_env()
    out = ui()
    out.step(f"state bucket for {cfg.name} in account {cfg.account_id or '?'} ({cfg.region})")
    result = core.ensure_state_bucket(cfg)

    def human() -> str:
        lines = [f"state bucket s3://{result['bucket']} (key {result['key']})"]
        lines += [f"  {name:<20} {status}" for name, status in result["steps"].items()]
        lines.append("")
        lines.append("First deploy, in this order:")
        lines += [f"  {i}. {s['command']:<48} # {s['what']}" for i, s in enumerate(result["first_deploy"], 1)]
        return "\n".join(lines)

    out.result(result, human)


@click.command(short_help="Destroy an env's stack through a reviewed destroy plan.")
@click.option("--allow-destroy", is_flag=True,
              help="Needed for an env with deletion protection (prod); you then type the env name (or --yes).")
@click.option("--plan-only", is_flag=True,
              help="Save and show the destroy plan bundle only; `deployctl apply` applies it later.")
@env_option
@yes_option
@tool_options
@common_options
def destroy(allow_destroy, plan_only):
    """Plan -destroy into a bundle (through the policy gates), show its summary, confirm, apply exactly it.

    An env with deletion protection (prod) refuses unless --allow-destroy is given and the env
    name is typed (or --yes --allow-destroy when not interactive). The state bucket, made by
    bootstrap outside Terraform, stays.
    """
    from deployctl.infra import pipeline
    from deployctl.infra import plan as plan_core

    cfg = load_env()
    out = ui()
    result = pipeline.run_destroy(settings(), cfg, out, allow_destroy=allow_destroy, plan_only=plan_only)

    def human() -> str:
        note = result["state_bucket"]
        summary = plan_core.summary_text(result["plan"]["summary"], _styler(out))
        # the full list was shown before the confirmation; the result repeats only its head line
        lines = [summary.splitlines()[0] if result["destroyed"] else summary]
        if result["destroyed"]:
            lines.append(f"destroyed the {cfg.name} stack")
        elif plan_only and result["plan"]["summary"]["has_changes"]:
            lines.append(f"destroy plan saved in {result['plan']['bundle']}")
            lines.append(f"next: deployctl apply --env {cfg.name}" + (" --allow-destroy" if allow_destroy else ""))
        lines.append(f"the state bucket s3://{note['bucket']} stays ({note['why']}); remove it by hand with "
                     f"{note['remove_with']}")
        return "\n".join(lines)

    out.result(result, human)


@click.command(short_help="First deploy (and every later one) in one command: bootstrap to outputs.")
@env_option
@yes_option
@tool_options
@common_options
def up(**_):
    """State bucket, foundation plan/apply, secrets, publish, full plan/apply, outputs and a smoke test.

    Every step is idempotent: a re-run after an interruption picks up where it stopped, and on a
    deployed env with nothing changed it uploads nothing and applies nothing. Each plan goes through
    the same gates and bundles as plan/apply; its summary is shown and, in prod, confirmed (or --yes).
    """
    from deployctl.delivery.rollout import refuse_if_unfinished
    from deployctl.infra import up as core

    cfg = load_env()
    out = ui()
    refuse_if_unfinished(cfg, action="up")
    result = core.run_up(settings(), cfg, out)

    def human() -> str:
        rows = [[s["step"], s["status"], s["detail"]] for s in result["steps"]]
        from deployctl.ui import table

        lines = [table(rows, ["step", "status", "detail"])]
        if result["outputs"]:
            lines.append("")
            lines.append(_outputs_table({k: {"value": v} for k, v in result["outputs"].items()}))
        lines.append("")
        lines.append(f"{cfg.name} is up" + ("" if result["changed"] else " (nothing changed)"))
        return "\n".join(lines)

    out.result(result, human)
