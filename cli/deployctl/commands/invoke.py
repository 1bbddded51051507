"""event, invoke: API Gateway events for a route, and one invocation of a function (deployed or --local)."""

from __future__ import annotations

import json
import sys

import click

from deployctl.commands._common import common_options, env_option, settings, ui

_route = click.option("--route", metavar='"METHOD /path"', default=None,
                      help='A route of api/openapi.json, e.g. "POST /items" or "GET /users/{userId}".')
_body = click.option("--body", metavar="JSON", default=None, help="The request body (JSON).")
_query = click.option("--query", "query", multiple=True, metavar="KEY=VALUE", help="A query string parameter (repeatable).")
_path = click.option("--path", "path", multiple=True, metavar="NAME=VALUE",
                     help="A path parameter of the route, e.g. userId=u1 (repeatable).")


def _env_cfg():
    s = settings()
    cfg = s.load_env(s.resolve_env() or "dev")
    s.env = cfg.name
    return cfg


@click.command(short_help="Print the API Gateway proxy event a route's request becomes.")
@_route
@_body
@_query
@_path
@env_option
@common_options
def event(route, body, query, path):
    """Print the API Gateway REST proxy event (v1) for a request to ROUTE.

    Checked as API Gateway checks it first: a route api/openapi.json does not
    have, a missing required parameter or a body the route's schema rejects is
    one line with API Gateway's answer (exit 2). Feed the event to
    `deployctl invoke --event -`.
    """
    from deployctl.errors import UsageError
    from deployctl.local.events import route_event

    cfg = _env_cfg()
    if not route:
        raise UsageError("--route is required", where="--route", hint='e.g. deployctl event --route "GET /items"')
    function, doc = route_event(cfg, route, body=body, query=query, path=path)
    out = ui()
    out.info(f"{route.strip()} -> function {function}")
    out.result({"function": function, "event": doc}, json.dumps(doc, indent=2, sort_keys=True))


@click.command(short_help="Invoke a function (deployed, or its built zips with --local); print status, body, log.")
@click.option("--function", "function", metavar="NAME", default=None,
              help="The function (a key of [functions]); with --route, defaults to the route's function.")
@click.option("--alias", "alias", metavar="live|staging|VERSION", default=None,
              help="Qualifier of the deployed function (default: live).")
@click.option("--event", "event_file", metavar="FILE|-", default=None, help="The event: a JSON file, or - for stdin.")
@_route
@_body
@_query
@_path
@click.option("--local", "local", is_flag=True, default=False,
              help="Run the built zips in a worker of the env runtime's Python (python3.12), "
                   "against the embedded emulator; nothing touches AWS.")
@env_option
@common_options
def invoke(function, alias, event_file, route, body, query, path, local):
    """Invoke FUNCTION once and print the status code, the body and the log tail.

    Deployed (default): Lambda Invoke of the `live` alias (or --alias) with
    LogType=Tail. --local: the zips `deployctl package` builds, laid out as
    Lambda lays them out (/var/task, /opt/python) and run by the runtime's own
    interpreter with the SDK the Lambda runtime bundles. A function error
    (errorType/errorMessage) exits 1 with the result.
    """
    from deployctl.errors import OperationFailed, UsageError
    from deployctl.local.events import read_event, route_event
    from deployctl.ops import invoke as core

    s = settings()
    if event_file and route:
        raise UsageError("give either --event or --route, not both", where="--event")
    if (body is not None or query or path) and not route:
        raise UsageError("--body, --query and --path describe a request to a --route", where="--route",
                         hint='add --route "METHOD /path"')
    if local and alias:
        raise UsageError("--alias names a deployed version; --local runs the built zips", where="--alias")
    cfg = _env_cfg() if local else s.load_env()
    if route:
        routed, doc = route_event(cfg, route, body=body, query=query, path=path)
        if function and function != routed:
            raise UsageError(f"{route.strip()} is served by function {routed!r}, not {function!r}",
                             where="--function", hint="drop --function or pick the route's function")
        function, event_json = routed, json.dumps(doc)
    elif event_file:
        text = sys.stdin.read() if event_file == "-" else _read(event_file)
        event_json = read_event(text, "--event" if event_file == "-" else event_file)
    else:
        event_json = "{}"
    if not function:
        raise UsageError("--function is required", where="--function", hint="or give a --route")
    out = ui()
    if local:
        out.step(f"invoking the built {function} zip locally ({cfg.get('lambda.runtime', 'python3.12')})")
        data = core.invoke_local(cfg, function, event_json)
    else:
        data = core.invoke_deployed(cfg, function, event_json, alias)

    def human() -> str:
        error = f" (function error: {data['function_error']})" if data["function_error"] else ""
        payload = data["payload"]
        shown = json.dumps(payload, indent=2) if not isinstance(payload, str) else payload
        return "\n".join([f"{data['physical_name']}:{data['qualifier']}  status {data['status_code']}{error}",
                          shown, "--- log tail ---", (data["log"] or "").rstrip()])

    if data["function_error"]:
        payload = data["payload"] if isinstance(data["payload"], dict) else {}
        err = OperationFailed(
            f"the function returned an error: {payload.get('errorType', data['function_error'])}: "
            f"{payload.get('errorMessage', '')}".rstrip(": "),
            where=f"{data['physical_name']}:{data['qualifier']}", hint="its log tail is printed above")
        out.failed(data, err.to_dict(), human)
        out.error(err.one_line())
        raise click.exceptions.Exit(err.exit_code)
    out.result(data, human)


def _read(path: str) -> str:
    from deployctl.errors import UsageError

    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot read the event: {getattr(exc, 'strerror', None) or exc}", where=path) from None
