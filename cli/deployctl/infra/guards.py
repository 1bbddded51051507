"""The guards every AWS-touching command shares: the account guard and what "protected" means.

``pipeline`` (plan, apply, destroy), ``secrets`` (ensure, rotate, delete), ``bootstrap`` and
``up`` all import them from here, so none of those modules imports another for them.
"""

from __future__ import annotations

from deployctl.config import EnvConfig
from deployctl.errors import ConfigError


def account_guard(cfg: EnvConfig, *, needed: bool) -> dict:
    """The credentials in use must belong to ``aws.account_id``; checked with STS before terraform runs.

    Skipped (and said so) when the root uses no AWS provider.
    """
    if not needed:
        return {"checked": False, "reason": "the root uses no AWS provider"}
    if not cfg.account_id:
        raise ConfigError(
            "key 'aws.account_id' is not set: the account guard needs it",
            where=cfg.where("aws.account_id"),
            hint="set the 12-digit account id this environment lives in",
        )
    from deployctl import aws

    return aws.check_account(cfg)


def is_protected(cfg: EnvConfig) -> bool:
    """prod (or any env with deletion protection) needs confirmation and --allow-destroy."""
    return cfg.protected  # one rule: EnvConfig.protected
