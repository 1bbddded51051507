"""render, check, plan, apply, outputs, bootstrap: Terraform behind policy gates."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, tool_options, yes_option
from deployctl.errors import NotImplementedYet


@click.command(short_help="Render the env's tfvars and backend config from its configuration.")
@env_option
@common_options
def render():
    """Render terraform/envs/<env>/*.auto.tfvars.json and the backend config."""
    load_env()
    raise NotImplementedYet("render")


@click.command(short_help="Policy gate: checkov on the modules and the env root.")
@env_option
@tool_options
@common_options
def check():
    """Run the checkov policy gate offline; exit 1 on any failed check."""
    load_env(required=False)
    raise NotImplementedYet("check")


@click.command(short_help="Render, check, terraform plan, and save a reviewed plan bundle.")
@env_option
@tool_options
@common_options
def plan():
    """Render, gate, init and plan; save the plan bundle that apply will use."""
    load_env()
    raise NotImplementedYet("plan")


@click.command(short_help="Apply exactly the saved, checked plan bundle.")
@click.option("--allow-destroy", is_flag=True, help="Allow a prod plan that destroys stateful resources.")
@env_option
@yes_option
@tool_options
@common_options
def apply(allow_destroy):
    """Apply the saved plan bundle if it passed the gates and is not stale."""
    load_env()
    raise NotImplementedYet("apply")


@click.command(short_help="Show the env's terraform outputs.")
@env_option
@tool_options
@common_options
def outputs():
    """Print the terraform outputs of an environment as a table or JSON."""
    load_env()
    raise NotImplementedYet("outputs")


@click.command(short_help="Create the state bucket and print the first-deploy order.")
@env_option
@common_options
def bootstrap():
    """Create what must exist before the first plan (the state bucket), idempotently."""
    load_env()
    raise NotImplementedYet("bootstrap")
