"""deployctl doctor."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, settings, tool_options, ui
from deployctl.errors import ProjectNotFound


@click.command(short_help="Check tools, versions, the AWS identity and the env's foundation; say how to fix gaps.")
@env_option
@tool_options
@common_options
def doctor():
    """Report terraform/tofu, checkov, Python, boto3 and the AWS identity in use.

    With --env (or run from terraform/envs/<env>/) it also checks that the
    credentials belong to the env's aws.account_id (not a placeholder), that the
    state bucket exists and that the foundation (KMS key alias, artifact bucket)
    was applied. Works outside a project without --env.

    Exits with the code a deploy command would use for the most serious problem:
    4 wrong account > 3 tool missing or too old > 2 configuration (placeholder
    account id, no credentials) > 1 missing state bucket or foundation.
    """
    from deployctl.infra import doctor as core

    s = settings()
    cfg = load_env(required=False)
    root = cfg.root if cfg else None
    if root is None:
        try:
            root = s.project_root()
        except ProjectNotFound:
            root = None  # doctor without --env works anywhere
    checks = core.run(s, cfg, root)
    if cfg is not None and all(c.ok or c.skipped for c in checks if c.name in ("aws-identity", "state-bucket")):
        checks.append(_rollouts(cfg, core.Check))
    out = ui()

    def human() -> str:
        lines = []
        for c in checks:
            if c.skipped:
                mark = out.style("skip", "dim")
            elif c.ok:
                mark = out.style("ok  ", "green")
            else:
                mark = out.style("FAIL" if c.required else "warn", "red" if c.required else "yellow")
            text = f"{mark} {c.name:<15} {c.version or '-':<22} {c.detail or ''}"
            if not c.ok and not c.skipped and c.fix:
                text += f"\n     {'':<15} fix: {c.fix}"
            lines.append(text.rstrip())
        return "\n".join(lines)

    data = core.as_dict(checks)
    err = core.error(checks)
    if err is None:
        out.result(data, human)
        return
    out.failed(data, err.to_dict(), human)  # every check on stdout (ok = false with --json)
    out.error(err.one_line())
    raise click.exceptions.Exit(err.exit_code)


def _rollouts(cfg, check_cls):
    """A warning (not a failure) per unfinished rollout, in one line each."""
    from deployctl.delivery.rollout import unfinished_rollouts
    from deployctl.errors import DeployctlError

    try:
        found = unfinished_rollouts(cfg)
    except DeployctlError as exc:
        return check_cls("rollouts", False, False, detail=f"skipped: {exc.message}", skipped=True)
    if not found:
        return check_cls("rollouts", False, True, detail="no unfinished rollout")
    return check_cls("rollouts", False, False, detail="unfinished " + "; ".join(r["summary"] for r in found),
                     fix=f"deployctl rollout status|resume|abort --env {cfg.name}")
