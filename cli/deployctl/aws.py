"""boto3 clients with bounded retries, and AWS errors turned into deployctl errors.

Every AWS call in deployctl goes through :func:`client` (standard credential
chain: profiles, SSO, ``AWS_REGION``, ``AWS_ENDPOINT_URL``) and runs inside
:func:`errors`, which turns botocore exceptions into one-line
:mod:`deployctl.errors` with the AWS error code in the message.

Retries: botocore's ``standard`` mode (exponential backoff with jitter on
throttling, 5xx and connection errors). Bounded by, in order:
``DEPLOYCTL_AWS_MAX_ATTEMPTS`` > ``AWS_MAX_ATTEMPTS`` > 5 attempts; the mode by
``DEPLOYCTL_AWS_RETRY_MODE`` (``standard`` or ``adaptive``).

boto3/botocore are imported inside the functions (never on ``deployctl --help``).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from deployctl.errors import ConfigError, CredentialsMissing, DeployctlError, OperationFailed, Refused

DEFAULT_MAX_ATTEMPTS = 5

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
        "ProvisionedThroughputExceededException",
    }
)
ACCESS_DENIED_CODES = frozenset(
    {"AccessDenied", "AccessDeniedException", "UnauthorizedOperation", "AuthorizationError", "KMS.AccessDeniedException"}
)
CREDENTIAL_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "ExpiredTokenException", "InvalidClientTokenId",
     "UnrecognizedClientException"}
)

CREDENTIAL_CHAIN = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE or ~/.aws config and credentials, SSO, " \
                   "container or instance role"
CREDENTIALS_HINT = "run aws sso login --profile NAME and export AWS_PROFILE=NAME, or export AWS_ACCESS_KEY_ID " \
                   "and AWS_SECRET_ACCESS_KEY; deployctl takes no credential flags"


def max_attempts() -> int:
    for var in ("DEPLOYCTL_AWS_MAX_ATTEMPTS", "AWS_MAX_ATTEMPTS"):
        raw = os.environ.get(var, "").strip()
        if raw:
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"must be a whole number, found {raw!r}", where=var, hint="e.g. 5") from None
            if not 1 <= value <= 20:
                raise ConfigError(f"must be between 1 and 20, found {value}", where=var)
            return value
    return DEFAULT_MAX_ATTEMPTS


def retry_mode() -> str:
    mode = os.environ.get("DEPLOYCTL_AWS_RETRY_MODE", "").strip() or "standard"
    if mode not in ("standard", "adaptive"):
        raise ConfigError(f"DEPLOYCTL_AWS_RETRY_MODE must be 'standard' or 'adaptive', found {mode!r}",
                          where="DEPLOYCTL_AWS_RETRY_MODE")
    return mode


def client(service: str, region: str | None = None, **config: Any) -> Any:
    """A botocore client (what boto3 hands out) for ``service`` with bounded retries and timeouts.

    Clients are thread-safe and may be shared with worker threads; creating
    them is serialised here (sessions are not thread-safe).
    """
    from botocore.config import Config

    settings: dict[str, Any] = {
        "retries": {"mode": retry_mode(), "total_max_attempts": max_attempts()},
        "connect_timeout": 10,
        "read_timeout": 60,
        "user_agent_extra": "deployctl",
        "max_pool_connections": 16,
    }
    settings.update(config)
    with errors(f"create {service} client"), _LOCK:
        session = _session()
        key = (id(session), service, region, repr(sorted(settings.items())))
        if key not in _CLIENTS:  # one client per service and settings in a process: a client is thread-safe,
            _CLIENTS[key] = session.create_client(service, region_name=region,  # and making one parses its
                                                  config=Config(**settings))  # model
        return _CLIENTS[key]


def s3_client(cfg: Any, **config: Any) -> Any:
    """The S3 client for an env: path-style addressing when ``aws.s3_use_path_style`` says so
    (an emulator behind a host name), like the rendered backend and provider."""
    style = {"s3": {"addressing_style": "path"}} if cfg.get("aws.s3_use_path_style") else {}
    return client("s3", cfg.region, **style, **config)


_LOCK = threading.Lock()
_SESSIONS: dict[tuple, Any] = {}
_CLIENTS: dict[tuple, Any] = {}
_IDENTITIES: dict[tuple, dict] = {}
_LOADER: list[Any] = []


def _environ_key() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))


def _session() -> Any:
    """One botocore session per set of AWS_* variables; all share one model loader (parsing
    the service models is the slow part of making a client). The clients are botocore's, as
    boto3 makes them (the same credential chain and configuration), without importing boto3's
    resource layer, which nothing here uses (about 30 ms of every AWS command's start-up)."""
    key = _environ_key()
    if key not in _SESSIONS:
        import botocore.session

        session = botocore.session.get_session()
        if _LOADER:
            session.register_component("data_loader", _LOADER[0])
        loader = session.get_component("data_loader")
        loader.search_paths[:] = list(dict.fromkeys(loader.search_paths))
        _LOADER[:] = [loader]
        _SESSIONS.clear()
        _CLIENTS.clear()
        _SESSIONS[key] = session
    return _SESSIONS[key]


def default_region() -> str | None:
    """The region the standard chain gives (``AWS_REGION``, ``AWS_DEFAULT_REGION``, the profile's), if any."""
    with _LOCK:
        return _session().get_config_variable("region")


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError (``None`` for anything else)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code") or None
    return None


def translate(exc: BaseException, action: str, where: str | None = None) -> DeployctlError:
    """A deployctl error for a botocore/boto3 exception raised while doing ``action``."""
    from botocore import exceptions as bx

    if isinstance(exc, bx.ClientError):
        code = error_code(exc) or "Unknown"
        message = exc.response.get("Error", {}).get("Message") or str(exc)
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in THROTTLING_CODES:
            attempts = exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
            return OperationFailed(
                f"{action}: throttled by AWS ({code}) after {attempts} attempt(s)",
                where=where,
                hint="retry later, or raise DEPLOYCTL_AWS_MAX_ATTEMPTS",
            )
        if code in ACCESS_DENIED_CODES or status == 403 and code not in CREDENTIAL_CODES:
            return OperationFailed(
                f"{action}: access denied ({code}): {message}",
                where=where,
                hint="check the IAM permissions of the credentials in use (aws sts get-caller-identity)",
            )
        if code in CREDENTIAL_CODES:
            return ConfigError(
                f"{action}: AWS rejected the credentials ({code})",
                where=where,
                hint="refresh them (aws sso login) or select another AWS_PROFILE",
            )
        return OperationFailed(f"{action}: {code}: {message}", where=where)
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        # not the env's config: ``where`` (a config file) would blame the wrong place
        what = "incomplete AWS credentials" if isinstance(exc, bx.PartialCredentialsError) else "no AWS credentials"
        return CredentialsMissing(f"{action}: {what} found in the standard chain ({CREDENTIAL_CHAIN})",
                                  hint=CREDENTIALS_HINT)
    if isinstance(exc, bx.NoRegionError):
        return ConfigError(f"{action}: no AWS region", where=where, hint="set aws.region in the env config or AWS_REGION")
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectionClosedError | bx.ConnectTimeoutError
                  | bx.ReadTimeoutError | bx.ConnectionError | bx.HTTPClientError):
        return OperationFailed(
            f"{action}: network error talking to AWS ({type(exc).__name__}) after {max_attempts()} attempt(s)",
            where=where,
            hint="check connectivity/AWS_ENDPOINT_URL and re-run; nothing was recorded",
        )
    if isinstance(exc, bx.BotoCoreError):
        return OperationFailed(f"{action}: {type(exc).__name__}: {exc}", where=where)
    return OperationFailed(f"{action}: {type(exc).__name__}: {exc}", where=where)


@contextmanager
def errors(action: str, where: str | None = None) -> Iterator[None]:
    """Run AWS calls; re-raise botocore exceptions as deployctl errors."""
    try:
        yield
    except DeployctlError:
        raise
    except Exception as exc:
        module = type(exc).__module__ or ""
        if module.startswith(("botocore", "boto3", "urllib3")):
            raise translate(exc, action, where) from exc
        raise


def caller_identity(region: str | None = None, where: str | None = None, **config: Any) -> dict:
    """STS GetCallerIdentity through the shared client: ``{"Account", "Arn", "UserId"}``."""
    sts = client("sts", region, **config)
    with errors("check the AWS account (sts get-caller-identity)", where):
        return sts.get_caller_identity()


def account_mismatch(cfg: Any, ident: dict) -> Refused | None:
    """The refusal for credentials of another account than ``aws.account_id`` (``None`` if they match)."""
    account = ident.get("Account", "")
    if not cfg.account_id or account == cfg.account_id:
        return None
    return Refused(
        f"the AWS credentials are for account {account} ({ident.get('Arn', '?')}), "
        f"but environment '{cfg.name}' lives in account {cfg.account_id} (aws.account_id)",
        where=cfg.where("aws.account_id"),
        hint=f"use credentials for account {cfg.account_id}; nothing was changed",
    )


def check_account(cfg: Any) -> dict:
    """The account guard for commands that change AWS (publish-lambda, promote, rollback).

    The credentials in use must belong to ``aws.account_id`` (STS GetCallerIdentity);
    otherwise :class:`Refused` (exit 4) before anything is read or written. Function
    and alias names are the same in every account, so without this a prod promote
    with dev credentials would move dev's ``live`` alias. Skipped when the env sets
    no ``aws.account_id`` (only allowed for unprotected envs). ``deployctl doctor``
    reports the same refusal with the same exit code. The identity is asked once per process and
    set of ``AWS_*`` variables (credentials from a profile file are the same between two checks of
    one run; a change of variables asks again).
    """
    if not cfg.account_id:
        return {"checked": False, "reason": "aws.account_id is not set"}
    key = (_environ_key(), cfg.region)  # the same credentials ask STS once per process
    ident = _IDENTITIES.get(key)
    if ident is None:
        ident = caller_identity(cfg.region, cfg.where("aws.account_id"))
        _IDENTITIES[key] = ident
    refused = account_mismatch(cfg, ident)
    if refused is not None:
        raise refused
    return {"checked": True, "account": ident.get("Account", ""), "arn": ident.get("Arn", "")}
