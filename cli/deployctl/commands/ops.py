"""logs, status, drift, prune: the day after a deploy."""

from __future__ import annotations

import json

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
from deployctl.errors import DriftDetected


@click.command(short_help="Read the functions' and the API's CloudWatch logs; --follow to keep tailing.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@click.option("--api", is_flag=True, help="Only the API Gateway access log.")
@click.option("--since", default="10m", show_default=True, metavar="DURATION|TIME",
              help="Start this long ago (30s, 10m, 2h, 1d) or at this ISO 8601 time.")
@click.option("--follow", "-f", is_flag=True, help="Keep polling for new lines until Ctrl-C (exits 0).")
@click.option("--filter", "pattern", default=None, metavar="PATTERN",
              help="CloudWatch Logs filter pattern, e.g. '\"ERROR\"' or '{ $.level = \"ERROR\" }'.")
@env_option
@common_options
def logs(functions, api, since, follow, pattern):
    """Show the env's logs: every function's and the API's access log (or --function NAME / --api).

    Powertools JSON lines become `time LEVEL function request-id message key=value...`; other
    lines (START/END/REPORT) are shown as they are. With --json: the envelope with every record;
    with --follow --json: one JSON record per line (JSON Lines), no envelope.
    """
    from deployctl.ops import logs as core

    cfg = load_env()
    out = ui()

    def style(text, *styles):
        return out.style(text, *styles, stream=out.out)

    if not follow:
        data = core.read(cfg, functions, api, since, pattern)
        for group in data["missing"]:
            out.warn(f"log group {group} does not exist (yet): the function has not run, or is not deployed")
        events = data["events"]
        if not events and not out.json_mode:
            out.info(f"no log events since {data['since']}")
        out.result({**data, "events": [e.to_dict() for e in events]},
                   lambda: "\n".join(core.format_event(e, style) for e in events))
        return

    client, groups = core.open_groups(cfg, functions, api)
    follower = core.Follower(client, groups, core.parse_since(since), pattern)
    out.info(f"following {', '.join(groups.values())} (Ctrl-C to stop)")

    warned: set[str] = set()

    def emit(ev) -> None:
        line = json.dumps(ev.to_dict(), sort_keys=True) if out.json_mode else core.format_event(ev, style)
        print(line, file=out.out, flush=True)

    def warn_missing() -> None:
        for group in sorted(follower.missing - warned):
            out.warn(f"log group {group} does not exist (yet): following it anyway")
            warned.add(group)

    try:
        follower.run(emit, after_poll=warn_missing)
    except KeyboardInterrupt:
        out.info("stopped")
    except BrokenPipeError:  # `deployctl logs -f | head`: the reader is gone, so are we
        pass


@click.command(short_help="What the env runs: aliases and code vs the manifest, alarms, last apply and drift check.")
@env_option
@common_options
def status():
    """Per function: live and staging (versions, weights, code sha256 vs the manifest) and unfinished
    rollouts; the alarms in ALARM; the last apply (when, commit, who); the last drift check."""
    from deployctl.ops import status as core

    cfg = load_env()
    out = ui()
    data = core.status(cfg)
    out.result(data, lambda: core.status_text(data, lambda text, *s: out.style(text, *s, stream=out.out)))


@click.command(short_help="Resources changed outside Terraform (refresh-only plan); exit 1 on drift.")
@env_option
@tool_options
@common_options
def drift():
    """Run a refresh-only terraform plan and list each resource changed outside Terraform, with the
    attribute paths and before/after values (sensitive ones masked). Exit 0 without drift; with drift
    exit 1 and, with --json, error kind "drift" and the drift in result."""
    from deployctl.infra import drift as core

    cfg = load_env()
    out = ui()
    result = core.run_drift(settings(), cfg, out)
    human = lambda: core.drift_text(result, lambda text, *s: out.style(text, *s, stream=out.out))  # noqa: E731
    if not result["drift"]:
        out.result(result, human)
        return
    addresses = [r["address"] for r in result["resources"]]
    err = DriftDetected(
        f"{len(addresses)} resource(s) changed outside Terraform: {', '.join(addresses[:5])}"
        + (f" and {len(addresses) - 5} more" if len(addresses) > 5 else ""),
        where=str(cfg.env_dir),
        hint=f"re-apply the configuration (deployctl plan --env {cfg.name}, then apply) or change it to match",
    )
    out.failed(result, err.to_dict(), human)
    out.error(err.one_line())
    raise click.exceptions.Exit(err.exit_code)


@click.command(short_help="Delete Lambda and layer versions nothing refers to, keeping the newest N.")
@click.option("--keep", type=int, default=None, metavar="N",
              help="Keep the newest N versions (default: [lambda] keep_versions, else 5).")
@click.option("--dry-run", is_flag=True, help="Only show what would be deleted.")
@env_option
@yes_option
@common_options
def prune(keep, dry_run):
    """Delete function versions and layer versions that no alias, canary weight, rollback history entry
    or unfinished rollout refers to, beyond the newest N. Shows the plan first; prod asks (or --yes).
    Also trims the local build cache (.deployctl/cache) to its newest entries."""
    from deployctl.artifacts import buildcache, zipbuild
    from deployctl.ops import prune as core

    cfg = load_env()
    out = ui()
    data = core.prune(cfg, keep, dry_run=dry_run, ui=out)
    data["cache"] = None if dry_run else buildcache.trim(zipbuild.cache_dir(cfg))

    def human() -> str:
        if dry_run:
            return f"dry run: {data['to_delete']} version(s) would be deleted"
        lines = [f"deleted {len(data['deleted'])} version(s)" + (f": {', '.join(data['deleted'])}" if data["deleted"]
                                                                  else "")]
        lines += [f"not deleted {f['version']}: {f['error']}" for f in data["failed"]]
        cache = data["cache"]
        lines.append(f"build cache: {len(cache['removed'])} old entr{'y' if len(cache['removed']) == 1 else 'ies'} "
                     f"removed ({cache['bytes_freed']} bytes), {cache['kept']} kept")
        return "\n".join(lines)

    out.result(data, human)
