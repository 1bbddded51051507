"""render, check, plan, apply, outputs, bootstrap: Terraform behind policy gates."""

from __future__ import annotations

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
                 "and set it out of band")
    for name in result.missing_artifacts:
        out.warn(f"function {name} has no published artifact yet (s3_key = \"\")")

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
              help="First deploy: plan only module.kms, module.artifact_bucket and module.ci_identity (-target), before publish-lambda.")
@env_option
@tool_options
@common_options
def plan(foundation):
    """Render, gate, init and plan; save the plan bundle that apply will use."""
    from deployctl.infra import pipeline
    from deployctl.infra import plan as plan_core

    cfg = load_env()
    out = ui()
    outcome = pipeline.run_plan(settings(), cfg, out, foundation=foundation)

    def human() -> str:
        lines = [plan_core.summary_text(outcome.summary, _styler(out))]
        if outcome.foundation:
            lines.append(f"(foundation plan: {', '.join(outcome.targets)})")
        lines.append(f"policy gates passed; plan bundle saved in {outcome.bundle}")
        lines.append(f"next: deployctl apply --env {outcome.env}")
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
