"""deployctl local: the API on localhost against an embedded DynamoDB emulator."""

from __future__ import annotations

import dataclasses
import sys

import click

from deployctl.commands._common import common_options, env_option, settings, ui


@click.command(short_help="Serve the API locally with an embedded DynamoDB emulator.")
@click.option("--port", type=click.IntRange(0, 65535), default=3000, show_default=True,
              help="Port to listen on (0 = any free port; the URL is printed).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback exposes the API (no auth) to your network.")
@click.option("--client-timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a connection may sit idle or stall mid-request before it is closed.")
@click.option("--header-timeout", type=click.FloatRange(0.1, 3600), default=10.0, show_default=True,
              help="Seconds a request line and headers may take in all, from their first byte (then 408).")
@click.option("--max-connections", type=click.IntRange(1, 10000), default=64, show_default=True,
              help="Connections served at once; more are answered 503 and closed.")
@click.option("--artifacts", is_flag=True, default=False,
              help="Run the built zips (deployctl package) as Lambda does: /var/task + /opt/python, "
                   "in warm workers of the env runtime's Python (python3.12), not lambda_src/ in-process.")
@env_option
@common_options
def local(port, host, client_timeout, header_timeout, max_connections, artifacts):
    """Serve the OpenAPI routes on localhost, invoking the real handlers.

    Routes come from api/openapi.json, handlers from lambda_src/ with each
    function's environment, DynamoDB and SSM from an in-process moto server on
    127.0.0.1 with the env's tables and parameters (--env; default: the env folder
    the cwd is in, else dev).
    Nothing touches AWS. Stop with Ctrl-C.

    Before a handler runs, requests are checked as API Gateway checks them
    (unknown route: 403 Missing Authentication Token; the request validators:
    400 Invalid request body). The first line on stdout ends with the URL
    (JSON with --json); each request is logged on stderr as METHOD PATH STATUS
    TIME. Stop with Ctrl-C or SIGTERM (also when started in the background).
    """
    from deployctl.local.server import LocalServer, curl_example

    s = settings()
    cfg = s.load_env(s.resolve_env() or "dev")
    out = ui()
    if host not in ("127.0.0.1", "localhost", "::1"):
        out.warn(f"binding {host}: the local API has no authentication and is reachable from your network")

    def log_request(method: str, path: str, status: int, ms: float, function: str) -> None:
        colour = "green" if status < 400 else "yellow" if status < 500 else "red"
        line = f"{method:<7} {path} {out.style(str(status), colour, stream=out.err)} {ms:.1f}ms"
        out.info(f"{line}  [{function}]" if function else line)

    out.step(f"starting the {cfg.name} API locally (embedded DynamoDB, no AWS)")
    server = LocalServer(cfg, host=host, port=port, on_request=log_request, log=out.info,
                         client_timeout_s=client_timeout, header_timeout_s=header_timeout,
                         max_connections=max_connections, artifacts=artifacts)
    info = server.start()
    human = "\n".join([
        f"deployctl local: serving {cfg.app} ({cfg.name}) on {info.url}",
        *(f"  {r['method']:<7} {info.url}{r['path']}  -> {r['function']}" for r in info.routes),
        "try:",
        *("  " + line for line in curl_example(info.url).splitlines()),
        "Ctrl-C to stop.",
    ])
    out.result(dataclasses.asdict(info) if out.json_mode else info.url, human)
    sys.stdout.flush()
    server.serve_forever()
    out.info("stopped")
