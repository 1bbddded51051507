"""The `deployctl` command line: parsing, help, and turning errors into exit codes.

Start-up imports only click and deployctl's light modules; boto3, jinja2 and
checkov are imported (or run) inside the commands that need them.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path

import click

from deployctl import __version__
from deployctl.commands import artifacts, doctor, infra, invoke, local, ops, rollout, secret, supply_chain
from deployctl.commands._common import _merge_flag
from deployctl.config import Settings
from deployctl.errors import (
    EXIT_INTERRUPTED,
    DeployctlError,
    InternalError,
    Interrupted,
    OperationFailed,
    UsageError,
)
from deployctl.ui import envelope, print_json

EPILOG = """\b
Exit codes: 0 ok, 1 operation or policy failed, 2 usage/config error,
3 tool missing or too old, 4 refused for safety, 130 interrupted.
Docs: README.md ("Command reference", "Configuration")."""


class DeployctlGroup(click.Group):
    """Turns DeployctlError into one line on stderr (and JSON with --json) plus its exit code."""

    def list_commands(self, ctx):
        return list(self.commands)  # keep the order below: the life cycle of a deploy

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["deployctl.argv"] = list(args)
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            _usage_error(ctx, exc)
            raise  # not reached: _usage_error exits

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:
            _usage_error(ctx, exc)
        except DeployctlError as exc:
            # a command of a group (e.g. "secret rotate") names itself in ctx.meta (shared by every context)
            report(exc, ctx.ensure_object(Settings), ctx.meta.get("deployctl.command") or ctx.invoked_subcommand)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            report(Interrupted("interrupted"), ctx.ensure_object(Settings), ctx.invoked_subcommand)
            ctx.exit(EXIT_INTERRUPTED)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise  # click's own control flow (a command's chosen exit code, --help, ...)
        except Exception as exc:  # never a bare traceback: one line, exit 1, an envelope with --json
            err = _unexpected(exc)
            report(err, ctx.ensure_object(Settings), ctx.invoked_subcommand)
            ctx.exit(err.exit_code)


def _unexpected(exc: Exception) -> DeployctlError:
    """An exception no command turned into a DeployctlError.

    A file-system error naming a path (permission denied, disk full, a directory where a
    file was expected) is the environment, not a bug: "<path>: <reason>", exit 1. Anything
    else is a bug: "internal error: ...; re-run with --debug and report it", exit 1.
    """
    if isinstance(exc, OSError) and exc.filename:
        err: DeployctlError = OperationFailed(
            exc.strerror or str(exc), where=str(exc.filename),
            hint="check that the path exists, is of the right kind, and is writable/readable by you",
        )
    else:
        err = InternalError(exc)
    err.__cause__ = exc
    return err


def _usage_error(ctx: click.Context, exc: click.UsageError) -> None:
    """A bad flag or value: one line on stderr (JSON too with --json), exit 2, like every other error."""
    if isinstance(exc, click.exceptions.NoArgsIsHelpError):
        raise exc  # plain `deployctl`: click prints the help
    settings = ctx.ensure_object(Settings)
    if "--json" in ctx.meta.get("deployctl.argv", []):
        settings.json = True
    if exc.ctx is not None and exc.ctx is not ctx:
        path = exc.ctx.command_path.split()[1:]  # the program is deployctl whatever argv[0] was
    else:
        path = [ctx.invoked_subcommand] if ctx.invoked_subcommand else []
    command = " ".join(["deployctl", *path])
    report(UsageError(exc.format_message(), hint=f"see '{command} --help'"), settings, path[0] if path else None)
    ctx.exit(UsageError.exit_code)


def report(exc: DeployctlError, settings: Settings, command: str | None = None) -> None:
    if settings.debug:
        traceback.print_exception(exc, file=sys.stderr)  # with the original exception as its cause
    line = exc.one_line()
    if sys.stderr.isatty():
        click.secho(f"error: {line}", fg="red", err=True)
    else:
        click.echo(f"error: {line}", err=True)
    if settings.json:
        print_json(envelope(command, settings.env, ok=False, error=exc.to_dict()), sys.stdout)


@click.group(
    cls=DeployctlGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EPILOG,
)
@click.option("--env", metavar="ENV", default=None, expose_value=False, callback=_merge_flag("env"),
              help="Environment: a folder under terraform/envs (also DEPLOYCTL_ENV).")
@click.option("--json", "json_", is_flag=True, default=False, expose_value=False, callback=_merge_flag("json"),
              help="Machine-readable result on stdout; human text on stderr.")
@click.option("--debug", is_flag=True, default=False, expose_value=False, callback=_merge_flag("debug"),
              help="Show tracebacks on errors.")
@click.option("--terraform-bin", metavar="PATH", default=None, expose_value=False,
              callback=_merge_flag("terraform_bin"), help="terraform or tofu executable (also DEPLOYCTL_TERRAFORM).")
@click.option("--checkov-bin", metavar="PATH", default=None, expose_value=False,
              callback=_merge_flag("checkov_bin"), help="checkov executable (also DEPLOYCTL_CHECKOV).")
@click.option("--root", metavar="DIR", default=None, expose_value=False, type=click.Path(path_type=Path),
              callback=_merge_flag("root"), help="Project root (also DEPLOYCTL_ROOT); default: found from the cwd.")
@click.version_option(__version__, "--version", prog_name="deployctl")
def cli() -> None:
    """deployctl: ship an API Gateway + Lambda + DynamoDB backend safely.

    Package and publish Lambda code reproducibly, render per-environment
    tfvars, run terraform plan/apply behind policy gates, move aliases, and
    serve the API locally.
    """


for command in (
    local.local,
    invoke.event,
    invoke.invoke,
    artifacts.package,
    artifacts.publish_lambda,
    artifacts.promote,
    artifacts.rollback,
    rollout.rollout,
    infra.render,
    infra.check,
    infra.plan,
    infra.apply,
    infra.outputs,
    infra.bootstrap,
    infra.up,
    infra.destroy,
    supply_chain.verify,
    supply_chain.sbom,
    secret.secret,
    ops.logs,
    ops.status,
    ops.drift,
    ops.prune,
    doctor.doctor,
):
    cli.add_command(command)


def main(argv: list[str] | None = None) -> int:
    settings = Settings.from_environ()
    try:
        cli.main(args=argv, prog_name="deployctl", obj=settings, standalone_mode=True)
    except SystemExit as exc:
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else 1)
    return 0
