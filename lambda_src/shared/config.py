"""Configuration: environment variables, plus SSM parameters under PARAMETER_PREFIX.

Read once per cold start and cached. The cache is keyed by the environment
variables it was built from, so a process hosting several functions (the
`deployctl local` server sets each function's environment per invocation)
never hands one function another's configuration.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from shared import log

ENV_KEYS = ("APP_NAME", "ENVIRONMENT", "LOG_LEVEL", "CORS_ALLOWED_ORIGINS", "PARAMETER_PREFIX",
            "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION")


@dataclass(frozen=True)
class Config:
    app: str
    environment: str
    log_level: str
    cors_origins: tuple[str, ...]
    tables: dict[str, str]  # "items" -> physical table name (from TABLE_ITEMS)
    parameters: dict[str, str] = field(default_factory=dict)  # name under the prefix -> value
    function_name: str = ""
    function_version: str = "$LATEST"
    parameter_prefix: str = ""  # PARAMETER_PREFIX: set = deployed with SSM parameters (required secrets)

    def table(self, name: str) -> str:
        try:
            return self.tables[name]
        except KeyError:
            raise RuntimeError(f"TABLE_{name.upper().replace('-', '_')} is not set") from None

    def param(self, name: str, default: str = "") -> str:
        return self.parameters.get(name, default)


_cache: dict[tuple, Config] = {}


def _env_key() -> tuple:
    env = os.environ
    return tuple(env.get(k, "") for k in ENV_KEYS) + tuple(
        sorted((k, v) for k, v in env.items() if k.startswith("TABLE_"))
    )


def get() -> Config:
    """The configuration of this cold start (built on first use, then cached)."""
    key = _env_key()
    cfg = _cache.get(key)
    if cfg is None:
        cfg, complete = _load()
        if complete:  # a failed SSM read is retried on the next request
            _cache[key] = cfg
        log.configure(cfg.log_level)
    else:
        log.configure(cfg.log_level)
    return cfg


def clear() -> None:
    """Forget the cached configuration (tests)."""
    _cache.clear()


def _load() -> tuple[Config, bool]:
    env = os.environ
    tables = {k[len("TABLE_"):].lower().replace("_", "-"): v for k, v in env.items() if k.startswith("TABLE_") and v}
    prefix = env.get("PARAMETER_PREFIX", "")
    params: dict[str, str] = {}
    complete = True
    if prefix:
        try:
            params = _read_parameters(prefix)
        except Exception as exc:  # noqa: BLE001 - degrade to defaults, log the AWS error code only
            complete = False
            log.error("config.ssm_failed", error=_error_code(exc))
    log_level = (params.get("log-level") or env.get("LOG_LEVEL") or "INFO").upper()
    if log_level not in log.LEVELS:
        log_level = "INFO"
    return (
        Config(
            app=env.get("APP_NAME", ""),
            environment=env.get("ENVIRONMENT", ""),
            log_level=log_level,
            cors_origins=tuple(o.strip() for o in env.get("CORS_ALLOWED_ORIGINS", "").split(",") if o.strip()),
            tables=tables,
            parameters=params,
            function_name=env.get("AWS_LAMBDA_FUNCTION_NAME", ""),
            function_version=env.get("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
            parameter_prefix=prefix,
        ),
        complete,
    )


def _read_parameters(prefix: str) -> dict[str, str]:
    """Every parameter under ``prefix`` (decrypted, names relative to it), through the
    aws-lambda-powertools parameters utility on our client (timeouts, retries, endpoint).

    Imported here, not at module level: it imports boto3, which only the functions that
    read parameters need, on the first request, where the SSM call imports it anyway.
    ``force_fetch``: this module's own cache (per cold start, failed reads retried) decides."""
    from aws_lambda_powertools.utilities.parameters import SSMProvider

    from shared import aws

    provider = SSMProvider(boto3_client=aws.client("ssm"))
    return dict(provider.get_multiple(prefix, recursive=True, decrypt=True, force_fetch=True))


def _error_code(exc: BaseException) -> str:
    # the utility wraps AWS errors in GetParameterError; the ClientError is its context
    cause = exc.__cause__ or exc.__context__
    if cause is not None and getattr(exc, "response", None) is None:
        exc = cause
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", type(exc).__name__))
    return type(exc).__name__
