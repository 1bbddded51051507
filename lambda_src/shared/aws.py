"""AWS clients, created on first use and reused for the life of the container.

boto3 is imported here, lazily, so importing a handler module stays cheap and
the cost is paid once per cold start. Clients honour AWS_ENDPOINT_URL (moto in
tests and `deployctl local`). ``set_factory`` lets a benchmark swap in a stub.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

_clients: dict[tuple, Any] = {}
_factory: Callable[[str], Any] | None = None


def client(service: str) -> Any:
    if _factory is not None:
        return _factory(service)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    key = (service, region, endpoint)
    found = _clients.get(key)
    if found is None:
        import boto3
        from botocore.config import Config

        found = boto3.client(
            service,
            region_name=region,
            endpoint_url=endpoint,
            config=Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"}),
        )
        _clients[key] = found
    return found


def set_factory(factory: Callable[[str], Any] | None) -> None:
    """Replace client creation (benchmarks); ``None`` restores boto3."""
    global _factory
    _factory = factory
    _clients.clear()


def error_code(exc: BaseException) -> str | None:
    """The AWS error code of a botocore ClientError, else None."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return response.get("Error", {}).get("Code")
    return None
