"""secret ensure, secret rotate: the env's SecureString parameters (values never shown)."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, settings, yes_option
from deployctl.ui import UI


def _ui(command: str) -> UI:
    """The UI of ``secret COMMAND``; also names the command for an error's JSON envelope."""
    click.get_current_context().meta["deployctl.command"] = f"secret {command}"
    s = settings()
    return UI(json_mode=s.json, assume_yes=s.assume_yes, command=f"secret {command}", env=s.env)


@click.group(short_help="Create or rotate the env's secure parameters (SecureStrings under its CMK).")
def secret() -> None:
    """The env's secure parameters ([parameters.NAME] secure = true).

    deployctl creates them as SSM SecureStrings encrypted with the env's KMS key,
    outside Terraform, so a value never lands in tfvars, plans or state. Values
    are never printed: results list names, versions and statuses only.
    """


@secret.command(short_help="Create every missing secure parameter; keep existing ones.")
@env_option
@common_options
def ensure():
    """Create each declared secure parameter that does not exist yet, with a generated value.

    An existing value is never overwritten (a rerun reports "kept"); a
    placeholder shorter than 16 characters (from earlier versions) is replaced.
    Needs the foundation (the env's KMS key) applied first.
    """
    from deployctl.infra import secrets as core

    out = _ui("ensure")
    cfg = load_env()
    out.step(f"secure parameters under {cfg.name}'s prefix (KMS key alias/{cfg.prefix})")
    result = core.ensure_secrets(cfg, out)

    def human() -> str:
        if not result["secrets"]:
            return "no secure parameters declared"
        lines = [f"{s['name']:<24} {s['status']:<22} {s['parameter']}" for s in result["secrets"]]
        if result["missing"]:
            lines.append(f"missing (generate = \"none\", set them by hand): {', '.join(result['missing'])}")
        return "\n".join(lines)

    out.result(result, human)


@secret.command(short_help="Replace one secure parameter's value with a new generated one.")
@click.argument("name", metavar="NAME")
@env_option
@yes_option
@common_options
def rotate(name):
    """Replace the value of secure parameter NAME (e.g. pagination-key) and say what that invalidates.

    The old value is gone for good. prod (and envs with deletion protection)
    ask for confirmation; --yes in non-interactive use.
    """
    from deployctl.infra import secrets as core

    out = _ui("rotate")
    cfg = load_env()
    result = core.rotate_secret(cfg, name, out)

    def human() -> str:
        return (f"rotated {result['parameter']} (version {result['previous_version']} -> {result['version']})\n"
                f"invalidated: {result['invalidates']}\n"
                f"note: {result['note']}")

    out.result(result, human)
