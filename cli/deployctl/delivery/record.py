"""The rollout record: one JSON object per function in the env's state bucket, written only under guard.

Key: ``deployctl/rollouts/<env>/<function>.json``. It exists exactly while a rollout of that
function is unfinished (created at the start, deleted when it reaches 100 % or is rolled back).
It holds function, from, to, step, started, by and deadline (the owner's lease: a runner renews
it at every poll; past it, ``rollout resume`` may take the rollout over).

Every write is an S3 conditional request, so two runners can never both own one rollout:
the first write is ``PutObject`` with ``If-None-Match: *`` (fails if any record exists), every
later write and the final delete carry ``If-Match: <the ETag of our last write>`` (fails if
anyone else wrote in between). A failed condition is :class:`LostOwnership`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from deployctl import aws
from deployctl.config import EnvConfig
from deployctl.errors import OperationFailed, Refused

PREFIX = "deployctl/rollouts"
PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412"})


class LostOwnership(Refused):
    """Someone else wrote the record since our last write (or created it first)."""


def key(cfg: EnvConfig, function: str) -> str:
    return f"{PREFIX}/{cfg.name}/{function}.json"


@dataclass
class Stored:
    data: dict
    etag: str


class RecordStore:
    """Guarded reads and writes of rollout records in ``cfg.state_bucket()``."""

    def __init__(self, cfg: EnvConfig, s3: Any | None = None):
        self.cfg = cfg
        self.bucket = cfg.state_bucket()
        self.s3 = s3 or aws.s3_client(cfg)
        self.calls = 0  # S3 requests made (the benchmark reports them per poll)

    def _where(self, function: str) -> str:
        return f"s3://{self.bucket}/{key(self.cfg, function)}"

    def get(self, function: str) -> Stored | None:
        from botocore.exceptions import ClientError

        self.calls += 1
        with aws.errors("read the rollout record", self._where(function)):
            try:
                resp = self.s3.get_object(Bucket=self.bucket, Key=key(self.cfg, function))
            except ClientError as exc:
                if aws.error_code(exc) in ("NoSuchKey", "404"):
                    return None
                if aws.error_code(exc) == "NoSuchBucket":
                    raise OperationFailed(f"the state bucket {self.bucket} does not exist",
                                          hint=f"run deployctl bootstrap --env {self.cfg.name}") from None
                raise
            body = resp["Body"].read()
        try:
            data = json.loads(body)
        except ValueError:
            data = {"function": function, "corrupt": True}
        return Stored(data, resp["ETag"])

    def list(self) -> list[Stored]:
        from botocore.exceptions import ClientError

        prefix = f"{PREFIX}/{self.cfg.name}/"
        self.calls += 1
        with aws.errors("list the rollout records", f"s3://{self.bucket}/{prefix}"):
            try:
                resp = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix)
            except ClientError as exc:
                if aws.error_code(exc) == "NoSuchBucket":
                    return []
                raise
        out = []
        for obj in resp.get("Contents", []):
            function = obj["Key"][len(prefix):].removesuffix(".json")
            stored = self.get(function)
            if stored is not None:
                out.append(stored)
        return out

    def _put(self, function: str, data: dict, **condition: str) -> str:
        from botocore.exceptions import ClientError

        self.calls += 1
        body = json.dumps(data, sort_keys=True, indent=1).encode("utf-8")
        with aws.errors("write the rollout record", self._where(function)):
            try:
                resp = self.s3.put_object(Bucket=self.bucket, Key=key(self.cfg, function), Body=body,
                                          ContentType="application/json", **condition)
            except ClientError as exc:
                if aws.error_code(exc) in PRECONDITION_CODES:
                    raise LostOwnership(
                        f"the rollout record of {function} was written by another runner",
                        where=self._where(function),
                        hint=f"see deployctl rollout status --env {self.cfg.name} --function {function}") from None
                if aws.error_code(exc) == "NoSuchBucket":
                    raise OperationFailed(f"the state bucket {self.bucket} does not exist",
                                          hint=f"run deployctl bootstrap --env {self.cfg.name}") from None
                raise
        return resp["ETag"]

    def create(self, function: str, data: dict) -> str:
        """Write the first record; :class:`LostOwnership` if any record of ``function`` exists."""
        return self._put(function, data, IfNoneMatch="*")

    def replace(self, function: str, data: dict, etag: str) -> str:
        """Overwrite our record; :class:`LostOwnership` unless it is still the one we wrote last."""
        return self._put(function, data, IfMatch=etag)

    def delete(self, function: str, etag: str) -> None:
        from botocore.exceptions import ClientError

        self.calls += 1
        with aws.errors("delete the rollout record", self._where(function)):
            try:
                self.s3.delete_object(Bucket=self.bucket, Key=key(self.cfg, function), IfMatch=etag)
            except ClientError as exc:
                if aws.error_code(exc) in PRECONDITION_CODES:
                    raise LostOwnership(f"the rollout record of {function} was written by another runner",
                                        where=self._where(function)) from None
                raise
