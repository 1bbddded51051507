"""package, publish-lambda, promote, rollback: Lambda artifacts and aliases."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option, load_env, yes_option
from deployctl.errors import NotImplementedYet


@click.command(short_help="Build reproducible Lambda zips from lambda_src/.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@click.option("--output-dir", type=click.Path(), default=None, help="Where to write the zips.")
@env_option
@common_options
def package(functions, output_dir):
    """Build one reproducible zip per function from lambda_src/."""
    raise NotImplementedYet("package")


@click.command("publish-lambda", short_help="Upload Lambda zips to the versioned artifact bucket.")
@click.option("--function", "functions", multiple=True, metavar="NAME", help="Only this function (repeatable).")
@click.option("--deploy", is_flag=True, help="Also update the functions and point 'staging' at the new versions.")
@env_option
@common_options
def publish_lambda(functions, deploy):
    """Package, upload to the env's artifact bucket and record the artifact manifest."""
    load_env()
    raise NotImplementedYet("publish-lambda")


@click.command(short_help="Point the 'live' alias at the 'staging' version (optionally weighted).")
@click.option("--function", "function", required=True, metavar="NAME")
@click.option("--version", "version", default=None, metavar="N", help="Version to promote (default: staging's).")
@click.option("--weight", type=click.IntRange(1, 99), default=None, metavar="PCT", help="Canary: send PCT % to it.")
@env_option
@yes_option
@common_options
def promote(function, version, weight):
    """Point the 'live' alias at the version 'staging' has, or a canary share of it."""
    load_env()
    raise NotImplementedYet("promote")


@click.command(short_help="Point 'live' back at the version before the last promote.")
@click.option("--function", "function", required=True, metavar="NAME")
@env_option
@yes_option
@common_options
def rollback(function):
    """Point the 'live' alias back to where it was before the last promote."""
    load_env()
    raise NotImplementedYet("rollback")
