"""``deployctl invoke``: one invocation of a function, deployed or local.

* deployed: Lambda ``Invoke`` of the function's alias or version (``Qualifier``), with
  ``LogType=Tail``; the answer is the status code, the function's payload (or error) and
  the decoded log tail (the last 4 KB of the invocation's log: START, output, END, REPORT);
* ``--local``: the same invocation of the BUILT zips (``deployctl package``) in the
  runtime-faithful worker (:mod:`deployctl.local.runtime`), against the embedded DynamoDB/SSM
  emulator of ``deployctl local`` (its tables created, its parameters seeded). Nothing
  touches AWS.

Nothing here imports click.
"""

from __future__ import annotations

import json
from typing import Any

from deployctl import aws, naming
from deployctl.config import EnvConfig
from deployctl.errors import UsageError

DEFAULT_QUALIFIER = naming.LIVE_ALIAS


def check_function(cfg: EnvConfig, function: str) -> None:
    if function not in cfg.functions:
        raise UsageError(f"unknown function {function!r}", where="--function",
                         hint=f"known functions: {', '.join(cfg.functions)} (from [functions] in the env config)")


def _payload(text: str) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return text


def invoke_deployed(cfg: EnvConfig, function: str, event_json: str, qualifier: str | None = None) -> dict:
    """Invoke the deployed ``function`` at ``qualifier`` (default ``live``) with ``LogType=Tail``."""
    from deployctl.local.runtime import decode_log_tail

    check_function(cfg, function)
    qualifier = qualifier or DEFAULT_QUALIFIER
    physical = naming.function_name(cfg, function)
    account = aws.check_account(cfg)
    lam = aws.client("lambda", cfg.region)
    with aws.errors(f"invoke {physical}:{qualifier}", where=f"{physical}:{qualifier}"):
        resp = lam.invoke(FunctionName=physical, Qualifier=qualifier, InvocationType="RequestResponse",
                          LogType="Tail", Payload=event_json.encode("utf-8"))
        text = resp["Payload"].read().decode("utf-8", "replace")
    return {"function": function, "physical_name": physical, "qualifier": qualifier, "local": False,
            "status_code": resp.get("StatusCode"), "executed_version": resp.get("ExecutedVersion"),
            "function_error": resp.get("FunctionError"), "payload": _payload(text),
            "log": decode_log_tail(resp.get("LogResult")), "account_guard": account}


def invoke_local(cfg: EnvConfig, function: str, event_json: str, *, interpreter: str | None = None) -> dict:
    """Invoke the built zips of ``function`` in a worker of the env runtime's Python."""
    from deployctl.local import runtime
    from deployctl.local.server import FAKE_AWS, Backend, _point_aws_at

    check_function(cfg, function)
    rt_name = str(cfg.get("lambda.runtime", "python3.12"))
    interpreter = runtime.find_interpreter(rt_name, interpreter, cfg)  # missing: exit 3 before anything starts
    code = runtime.built_code(cfg, [function])[function]
    backend = Backend(cfg)
    try:
        endpoint = backend.start()
        _point_aws_at(endpoint, cfg.region)  # this process's own calls (tables, parameters) go there too
        backend.provision()
        if cfg.functions[function].get("reads_parameters"):
            backend.ensure_parameters()
        spec = runtime.spec_for(cfg, function, code, {**FAKE_AWS, "AWS_ENDPOINT_URL": endpoint})
        with runtime.Runtime(rt_name, runtime.cache_for(cfg), interpreter) as rt:
            inv = rt.invoke(spec, event_json)
    finally:
        backend.stop()
    data = inv.to_dict()
    return {"function": function, "physical_name": spec.name, "qualifier": "$LATEST", "local": True,
            "status_code": data["status_code"], "executed_version": "$LATEST",
            "function_error": data["function_error"], "payload": data["payload"], "log": data["log"],
            "duration_ms": data["duration_ms"], "init_duration_ms": data["init_duration_ms"],
            "interpreter": interpreter}
