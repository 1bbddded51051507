"""The one exception hierarchy of deployctl, and its exit codes.

Core modules raise these; the click layer (deployctl.cli) turns them into one
line on stderr (what, where, how to fix) and the exit code below. Nothing in
here imports click.

Exit codes (documented in the README):
    0  ok
    1  the operation failed, or a policy gate failed; also an unexpected internal error
    2  usage or configuration error (bad flag, no project, unknown env, invalid or unreadable
       config file, no AWS credentials in the standard chain)
    3  a required external tool or dependency is missing or too old
    4  refused for safety (stale or unchecked plan, wrong account, no confirmation)
  130  interrupted (Ctrl-C)
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MISSING_TOOL = 3
EXIT_REFUSED = 4
EXIT_INTERRUPTED = 130


class DeployctlError(Exception):
    """Base of every error deployctl reports to a user.

    ``message`` says what went wrong, ``where`` names the file/key/resource
    (optional) and ``hint`` says how to fix it (optional).
    """

    exit_code = EXIT_FAILED
    kind = "failed"

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def one_line(self) -> str:
        text = self.message
        if self.where:
            text = f"{self.where}: {text}"
        if self.hint:
            text = f"{text} ({self.hint})"
        return " ".join(text.split("\n"))

    def to_dict(self) -> dict:
        return {
            "error": self.kind,
            "message": self.message,
            "where": self.where,
            "hint": self.hint,
            "exit_code": self.exit_code,
        }


class OperationFailed(DeployctlError):
    """An operation (AWS call, terraform run, upload) did not succeed."""


class PolicyFailed(DeployctlError):
    """A policy gate (checkov) reported failed checks."""

    kind = "policy_failed"


class VerifyFailed(DeployctlError):
    """``deployctl verify``: something that runs or is stored is not identical to the rebuild."""

    kind = "verify_failed"


class DriftDetected(DeployctlError):
    """``deployctl drift`` found resources changed outside Terraform (exit 1, like a failed gate)."""

    kind = "drift"


class UsageError(DeployctlError):
    exit_code = EXIT_USAGE
    kind = "usage"


class ConfigError(UsageError):
    """A configuration file is missing, unreadable or invalid."""

    kind = "config"


class UnknownEnvironment(ConfigError):
    kind = "unknown_env"


class ProjectNotFound(ConfigError):
    """No deployctl project (``terraform/envs/defaults.toml``) where one was looked for."""

    kind = "no_project"


class CredentialsMissing(ConfigError):
    """boto3's standard chain found no AWS credentials (a setup problem, exit 2 like any config gap)."""

    kind = "no_credentials"


class ToolMissing(DeployctlError):
    """An external tool (terraform, checkov, pip) is missing or too old."""

    exit_code = EXIT_MISSING_TOOL
    kind = "tool_missing"


class Refused(DeployctlError):
    """deployctl refuses to go on because it would be unsafe."""

    exit_code = EXIT_REFUSED
    kind = "refused"


class Interrupted(DeployctlError):
    exit_code = EXIT_INTERRUPTED
    kind = "interrupted"


class InternalError(DeployctlError):
    """An unexpected exception (a bug): still one line and exit 1; ``--debug`` shows the traceback."""

    kind = "internal"

    def __init__(self, exc: BaseException):
        detail = " ".join(str(exc).split()) or "(no message)"
        super().__init__(f"internal error: {type(exc).__name__}: {detail[:500]}",
                         hint="re-run with --debug and report it")

    def one_line(self) -> str:
        return f"{self.message}; {self.hint}"
