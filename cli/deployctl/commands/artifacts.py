"""package, publish-lambda, promote, rollback: Lambda artifacts and aliases."""

from __future__ import annotations

from pathlib import Path

import click

from deployctl.commands._common import common_options, env_option, load_env, settings, ui, yes_option


@click.command(short_help="Build reproducible Lambda zips (functions and their layers) from lambda_src/.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@click.option("--output-dir", type=click.Path(), default=None, help="Where to write the zips.")
@env_option
@common_options
def package(functions, output_dir):
    """Build one reproducible zip per function from lambda_src/, and one per layer they list."""
    from deployctl.artifacts import packaging
    from deployctl.config import load_defaults
    from deployctl.ui import table

    cfg = load_env(required=False) or load_defaults(settings().project_root())
    out = ui()
    build = packaging.build(cfg, functions, Path(output_dir) if output_dir else None)
    data = {"functions": {a.function: a.to_dict() for a in build.functions},
            "layers": {a.function: a.to_dict() for a in build.layers}}

    def human() -> str:
        rows = [[("layer " if a.kind == "layer" else "") + a.function, str(a.path), a.sha256[:16], str(a.size),
                 str(a.files), "cached" if a.cached else "built"]
                for a in [*build.layers, *build.functions]]
        return table(rows, ["artifact", "zip", "sha256", "bytes", "files", "build"])

    out.result(data, human)


@click.command("publish-lambda", short_help="Upload Lambda zips to the versioned artifact bucket.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@click.option("--deploy", is_flag=True, help="Also update the functions and point 'staging' at the new versions.")
@click.option("--promote", "promote_", is_flag=True,
              help="Then point 'live' at them, in the same run: what 'promote --function F' does for each "
                   "(implies --deploy; with --strategy, a watched rollout as 'promote --strategy').")
@click.option("--strategy", "strategy", default=None, metavar="S",
              help="With --promote: roll out with this strategy ('config' = the env's [rollout] strategy).")
@env_option
@yes_option
@common_options
def publish_lambda(functions, deploy, promote_, strategy):
    """Package, upload to the env's artifact bucket and record the artifact manifest.

    With --promote, each deployed function's 'live' alias then moves as `deployctl promote` moves
    it (the same confirmation for a protected env, the same history; with --strategy the same
    watched rollout, pre-traffic check and record), without a second process reading everything again.
    """
    from deployctl.errors import UsageError

    cfg = load_env()
    if strategy is not None and not promote_:
        raise UsageError("--strategy belongs to --promote", where="--strategy", hint="add --promote")
    deploy = deploy or promote_
    out = ui()
    from deployctl.artifacts import publish

    preflight = None
    if deploy:
        from deployctl.delivery.rollout import refuse_if_unfinished

        def preflight() -> None:
            refuse_if_unfinished(cfg, list(functions), action="publish-lambda --deploy")

    after = None
    if promote_:
        def after(deploys, lam):
            return _promote_deployed(cfg, deploys, lam, strategy, out)

    data = publish.publish(cfg, functions, deploy=deploy, ui=out, preflight=preflight, after=after)
    promoted = data.pop("after", None)
    if promote_:
        data["promoted"] = promoted

    def human() -> str:
        rows = []
        for fn, item in data["functions"].items():
            dep = data["deployed"].get(fn)
            staging = "-"
            if dep:
                before = dep["staging_before"]
                before = f"v{before}" if before and before.isdigit() else (before or "(none)")
                staging = f"v{dep['version']} (unchanged)" if dep["skipped"] else f"{before} -> v{dep['version']}"
            rows.append([fn, item["sha256"][:16], "uploaded" if item["uploaded"] else "exists", str(item["version_id"]),
                         staging])
        for name, item in data.get("layers", {}).items():
            rows.append([f"layer {name}", item["sha256"][:16], "uploaded" if item["uploaded"] else "exists",
                         str(item["version_id"]), "-"])
        text = table(rows, ["artifact", "sha256", "s3", "version_id", "staging"])
        text = f"{text}\n{data['bytes_uploaded']} bytes uploaded; manifest: {data['manifest']}"
        if promote_ and strategy is None:
            text += "".join(f"\n{_before_after(r)}" for r in promoted)
        elif promote_:
            from deployctl.commands.rollout import steps_table

            text += f"\n{steps_table(promoted)}"
        return text

    from deployctl.ui import table

    if promote_ and strategy is not None:
        from deployctl.delivery.rollout import outcome_error

        err = outcome_error(promoted)
        if err is not None:
            out.failed(data, err.to_dict(), human)
            out.error(err.one_line())
            raise click.exceptions.Exit(err.exit_code)
    out.result(data, human)


def _promote_deployed(cfg, deploys, lam, strategy: str | None, out) -> list[dict]:
    """``promote`` of each function publish-lambda --deploy just deployed, the way the promote command does it."""
    if strategy is None:
        from deployctl.artifacts import aliases

        return [aliases.promote(cfg, d.function, version=d.version, ui=out, lam=lam, aliases_now=d.aliases,
                                published=not d.skipped) for d in deploys]
    from deployctl.delivery import rollout as core

    functions = [d.function for d in deploys]
    version = deploys[0].version if len(deploys) == 1 else None  # several: each one's staging (just moved)
    return core.start(cfg, functions, strategy=None if strategy == "config" else strategy, version=version, ui=out)


@click.command(short_help="Point 'live' at the 'staging' version: at once, weighted, or as a watched rollout.")
@click.option("--function", "function", default=None, metavar="NAME", help="The function (or --all).")
@click.option("--all", "all_", is_flag=True, default=False,
              help="A rollout of every function whose staging is ahead of live (what publish-lambda --deploy moved).")
@click.option("--version", "version", default=None, metavar="N", help="Version to promote (default: staging's).")
@click.option("--weight", type=click.IntRange(1, 99), default=None, metavar="PCT", help="Canary: send PCT % to it.")
@click.option("--strategy", "strategy", default=None, metavar="S",
              help="A watched rollout: a SAM name (Canary10Percent5Minutes, Linear10PercentEvery1Minute, "
                   "AllAtOnce, ...) or a [rollout.strategies] name; 'config' = the env's [rollout] strategy.")
@click.option("--ignore-alarm", "ignore_alarms", multiple=True, metavar="NAME",
              help="Start the rollout although this covering alarm is in ALARM (repeatable; needs --reason).")
@click.option("--reason", "reason", default=None, metavar="WHY", help="Why the --ignore-alarm alarms are ignored.")
@env_option
@yes_option
@common_options
def promote(function, all_, version, weight, strategy, ignore_alarms, reason):
    """Point the 'live' alias at the version 'staging' has, or a canary share of it.

    With --strategy (or --all) it is a rollout: a pre-traffic smoke invocation of the new
    version, then traffic shifted in the strategy's steps while the covering alarms and the
    new version's error rate are watched; any breach, Ctrl-C or SIGTERM puts live back
    (docs/rollouts.md).
    """
    from deployctl.errors import UsageError

    load_env()  # the project and env first: their errors come before a missing flag's
    if all_ and function:
        raise UsageError("give either --function NAME or --all", where="--all")
    if not all_ and not function:
        raise click.UsageError("Missing option '--function'.", click.get_current_context())
    if strategy is not None or all_:
        from deployctl.commands.rollout import parse_ignored, run_promote

        if weight is not None:
            raise UsageError("--weight is a one-off move; a rollout's weights come from --strategy", where="--weight")
        run_promote([] if all_ else [function], None if strategy in (None, "config") else strategy, version,
                    parse_ignored(ignore_alarms, reason))
        return
    if ignore_alarms or reason:
        raise UsageError("--ignore-alarm and --reason belong to a rollout", where="--ignore-alarm",
                         hint="add --strategy S (or --strategy config)")
    from deployctl.artifacts import aliases
    from deployctl.delivery.rollout import refuse_if_unfinished

    cfg = load_env()
    out = ui()
    refuse_if_unfinished(cfg, [function], action="promote")
    data = aliases.promote(cfg, function, version=version, weight=weight, ui=out)
    out.result(data, lambda: _before_after(data))


@click.command(short_help="Point 'live' back at the version before the last promote.")
@click.option("--function", "function", required=True, metavar="NAME")
@env_option
@yes_option
@common_options
def rollback(function):
    """Point the 'live' alias back to where it was before the last promote."""
    from deployctl.artifacts import aliases
    from deployctl.delivery.rollout import refuse_if_unfinished

    cfg = load_env()
    out = ui()
    refuse_if_unfinished(cfg, [function], action="rollback")
    data = aliases.rollback(cfg, function, ui=out)
    out.result(data, lambda: _before_after(data))


def _before_after(data: dict) -> str:
    def fmt(state: dict) -> str:
        if state["version"] is None:
            return "(none)"
        extra = "".join(f" +{round(w * 100, 2):g}% v{v}" for v, w in sorted(state["weights"].items()))
        return f"v{state['version']}{extra}"

    verb = "unchanged" if not data["changed"] else "moved"
    return (f"{data['function_name']} live {verb}\n  before: {fmt(data['before'])}\n  after:  {fmt(data['after'])}")
