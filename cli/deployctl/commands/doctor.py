"""deployctl doctor."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, settings, tool_options, ui
from deployctl.errors import EXIT_FAILED


@click.command(short_help="Check tools, versions and the AWS identity; say how to fix gaps.")
@env_option
@tool_options
@common_options
def doctor():
    """Report terraform/tofu, checkov, Python, boto3 and the AWS identity in use.

    Exits 1 if something required is missing.
    """
    from deployctl.infra import doctor as core

    cfg = load_env(required=False)
    checks = core.run(settings(), cfg)
    out = ui()

    def human() -> str:
        lines = []
        for c in checks:
            mark = out.style("ok  ", "green") if c.ok else out.style("MISS" if c.required else "warn", "red" if c.required else "yellow")
            text = f"{mark} {c.name:<13} {c.version or '-':<22} {c.detail or ''}"
            if not c.ok and c.fix:
                text += f"\n     {'':<13} fix: {c.fix}"
            lines.append(text.rstrip())
        return "\n".join(lines)

    out.result(core.as_dict(checks), human)
    if not all(c.ok for c in checks if c.required):
        raise click.exceptions.Exit(EXIT_FAILED)
