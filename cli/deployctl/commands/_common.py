"""Options shared by every command, and the glue between click and the core."""

from __future__ import annotations

from collections.abc import Callable

import click

from deployctl.config import EnvConfig, Settings
from deployctl.errors import ProjectNotFound
from deployctl.ui import UI


def _merge_flag(name: str):
    def callback(ctx: click.Context, _param: click.Parameter, value):
        settings: Settings = ctx.ensure_object(Settings)
        if value not in (None, False):
            setattr(settings, name, value)
        return value

    return callback


def common_options(fn: Callable) -> Callable:
    """--json and --debug, accepted before or after the command name."""
    fn = click.option("--debug", is_flag=True, default=False, expose_value=False, callback=_merge_flag("debug"),
                      help="Show tracebacks and tool output on errors.")(fn)
    fn = click.option("--json", "json_", is_flag=True, default=False, expose_value=False, callback=_merge_flag("json"),
                      help="Print the result as JSON on stdout (human text goes to stderr).")(fn)
    return fn


def env_option(fn: Callable) -> Callable:
    """--env ENV (also DEPLOYCTL_ENV)."""
    return click.option("--env", "env", metavar="ENV", default=None, expose_value=False,
                        callback=_merge_flag("env"),
                        help="Environment: a folder under terraform/envs (also DEPLOYCTL_ENV).")(fn)


def tool_options(fn: Callable) -> Callable:
    """--terraform-bin / --checkov-bin, for commands that run those tools."""
    fn = click.option("--checkov-bin", metavar="PATH", default=None, expose_value=False,
                      callback=_merge_flag("checkov_bin"),
                      help="checkov executable (also DEPLOYCTL_CHECKOV).")(fn)
    fn = click.option("--terraform-bin", metavar="PATH", default=None, expose_value=False,
                      callback=_merge_flag("terraform_bin"),
                      help="terraform or tofu executable (also DEPLOYCTL_TERRAFORM).")(fn)
    return fn


def yes_option(fn: Callable) -> Callable:
    return click.option("--yes", "-y", is_flag=True, default=False, expose_value=False,
                        callback=_merge_flag("assume_yes"),
                        help="Do not ask for confirmation (needed for prod in non-interactive use).")(fn)


def settings() -> Settings:
    return click.get_current_context().ensure_object(Settings)


def ui() -> UI:
    s = settings()
    return UI(json_mode=s.json, assume_yes=s.assume_yes, command=click.get_current_context().command.name, env=s.env)


def load_env(required: bool = True) -> EnvConfig | None:
    """The env config: ``--env`` > ``DEPLOYCTL_ENV`` > the ``terraform/envs/<env>/`` folder the cwd is in.

    ``required=False``: ``None`` when no env is named that way (and, without ``--root``/
    ``DEPLOYCTL_ROOT``, when the cwd is in no project at all: doctor works anywhere).
    """
    s = settings()
    if not required and not s.env:
        try:
            root = s.project_root()
        except ProjectNotFound:
            if s.root:
                raise
            return None
        if not s.resolve_env(root):
            return None
    root = s.project_root()
    name = s.resolve_env(root)
    loaded = click.get_current_context().meta.setdefault("deployctl.envs", {})  # read once per command
    if (root, name) not in loaded:
        loaded[(root, name)] = s.load_env(name)
    return loaded[(root, name)]
