"""deployctl local: the API on localhost against an embedded DynamoDB emulator."""

from __future__ import annotations

import click

from deployctl.commands._common import common_options, env_option
from deployctl.errors import NotImplementedYet


@click.command(short_help="Serve the API locally with an embedded DynamoDB emulator.")
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True)
@click.option("--host", default="127.0.0.1", show_default=True)
@env_option
@common_options
def local(port, host):
    """Serve the OpenAPI routes on localhost, invoking the real handlers."""
    raise NotImplementedYet("local")
