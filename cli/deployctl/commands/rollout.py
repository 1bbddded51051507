"""promote --strategy (a watched rollout) and rollout status|resume|abort."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, settings
from deployctl.ui import UI


def _ui(command: str) -> UI:
    click.get_current_context().meta["deployctl.command"] = command
    s = settings()
    return UI(json_mode=s.json, assume_yes=s.assume_yes, command=command, env=s.env)


def parse_ignored(names: tuple[str, ...], reason: str | None) -> dict[str, str]:
    from deployctl.errors import UsageError

    if names and not (reason or "").strip():
        raise UsageError("--ignore-alarm needs --reason WHY (it is recorded in the rollout record and alias history)",
                         where="--reason", hint='e.g. --reason "hotfix for INC-123: this version fixes the errors"')
    if reason and not names:
        raise UsageError("--reason explains an --ignore-alarm", where="--reason", hint="add --ignore-alarm NAME")
    return {name: " ".join(reason.split()) for name in names} if names else {}


def steps_table(results: list[dict]) -> str:
    from deployctl.ui import table

    rows = []
    for r in results:
        for s in r.get("steps", []):
            last = s["readings"][-1] if s.get("readings") else {}
            rows.append([r["function"], str(s["step"]), f"{s['weight']}%", f"{s['bake_s']}s",
                         str(len(s.get("readings", []))),
                         f"{last.get('errors', 0):g}/{last.get('invocations', 0):g}" if last else "-",
                         s.get("outcome") or "-"])
    lines = [table(rows, ["function", "step", "weight", "bake", "polls", "errors/invocations", "outcome"])] if rows else []
    for r in results:
        extra = f" ({r['breach']['signal']}: value {r['breach']['value']}, threshold {r['breach']['threshold']})" \
            if r.get("breach") else (f" ({r['error']})" if r.get("error") else "")
        lines.append(f"{r.get('function_name', r['function'])}: v{r.get('from')} -> v{r.get('to')} "
                     f"{r['outcome']}{extra}")
    return "\n".join(lines)


def finish(out: UI, results: list[dict]) -> None:
    """The envelope (every step), then the exit code of the worst outcome."""
    from deployctl.delivery.rollout import outcome_error

    data = {"rollouts": results}
    err = outcome_error(results)
    if err is None:
        out.result(data, lambda: steps_table(results))
        return
    out.failed(data, err.to_dict(), lambda: steps_table(results))
    out.error(err.one_line())
    raise click.exceptions.Exit(err.exit_code)


def run_promote(functions: list[str], strategy: str | None, version: str | None, ignored: dict[str, str]) -> None:
    from deployctl.delivery import rollout as core

    cfg = load_env()
    out = _ui("promote")
    if not functions:  # --all: every function publish-lambda --deploy moved (staging ahead of live)
        functions = core.moved_functions(cfg)
        if not functions:
            out.result({"rollouts": []}, "nothing to promote: staging and live point at the same versions")
            return
    results = core.start(cfg, functions, strategy=strategy, version=version, ignore=ignored, ui=out)
    finish(out, results)


@click.group(short_help="Show, resume or abort an unfinished rollout (after a killed runner).")
def rollout() -> None:
    """Unfinished rollouts of `deployctl promote --strategy` (their records in the env's state bucket).

    A rollout whose runner died (kill -9, a cancelled CI job) leaves its record and
    `live` where it was. `status` shows it, `resume` takes it over once its runner's
    lease (deadline) has run out and finishes it, `abort` undoes it at once.
    """


_function = click.option("--function", "function", metavar="NAME", default=None, help="Only this function.")


@rollout.command("status", short_help="Show unfinished rollouts and where live points.")
@_function
@env_option
@common_options
def status(function):
    """Each unfinished rollout: function, from, to, step, started, by, deadline, and live now."""
    from deployctl.delivery import rollout as core

    out = _ui("rollout status")
    cfg = load_env()
    records = core.status(cfg, function)

    def human() -> str:
        if not records:
            return "no unfinished rollout"
        from deployctl.artifacts.aliases import AliasState

        return "\n".join(f"{r['summary']}; live now at "
                         f"{AliasState(r['live']['version'], r['live']['weights']).describe()}" for r in records)

    out.result({"rollouts": records}, human)


@rollout.command("resume", short_help="Take over an unfinished rollout whose runner is gone and finish it.")
@_function
@env_option
@common_options
def resume(function):
    """Finish each unfinished rollout (or FUNCTION's) from the step it reached, watching as before."""
    from deployctl.delivery import rollout as core

    out = _ui("rollout resume")
    cfg = load_env()
    results = core.resume(cfg, function, ui=out)
    if not results:
        out.result({"rollouts": []}, "no unfinished rollout")
        return
    finish(out, results)


@rollout.command("abort", short_help="Undo an unfinished rollout: live back to the old version.")
@_function
@env_option
@common_options
def abort(function):
    """Point live back at each unfinished rollout's old version (no routing weights) and close it.

    Safe to run when there is none (exit 0): the deploy workflow runs it when a job fails or is cancelled.
    """
    from deployctl.delivery import rollout as core

    out = _ui("rollout abort")
    cfg = load_env()
    results = core.abort(cfg, function, ui=out)
    out.result({"rollouts": results},
               "\n".join(f"{r['function_name']}: aborted, live at v{r['live']['version']}" for r in results)
               or "no unfinished rollout")
