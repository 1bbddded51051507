"""publish-lambda: content-addressed uploads, the artifact manifest, and ``--deploy``.

Order of a run (nothing is recorded until everything before it succeeded):

1. package the functions and the layers they list (cache hits are free); meanwhile, in a
   background thread, the caller's preflight (``publish-lambda``: the account guard and the
   unfinished-rollout refusal), the env's KMS key and, with ``--deploy``, each function's
   configuration and aliases are read (a refusal of the preflight wins over any later error);
2. make each new artifact's SBOM (``<sha256>.cdx.json``) and provenance (``<sha256>.intoto.json``)
   (see :mod:`deployctl.artifacts.attest`; a protected env refuses a build whose inputs differ
   from the git commit, exit 4, before anything is built);
3. upload concurrently to ``lambda/<fn>/<sha256>.zip`` and ``layers/<layer>/<sha256>.zip`` with
   SSE-KMS, and the documents beside them. A key the manifest already records for these bytes is
   checked first (HEAD) and skipped when it holds them; a new key is written with
   ``If-None-Match: *`` (one request; if the key exists after all, it is checked and replaced
   only when it holds other bytes). Every object must come back with a ``VersionId`` (the
   bucket's versioning, checked on the real response);
4. with ``--deploy``: per function ``UpdateFunctionCode`` to that exact object version, guarded
   by the RevisionId read in step 1, polled only while the response does not already say
   ``Successful``; ``PublishVersion`` guarded by CodeSha256 and RevisionId; only when every
   function has its version, move the ``staging`` aliases (guarded by the RevisionId read in
   step 1; undoing the moves already made if one fails);
5. write the manifest atomically.

A failure anywhere leaves the manifest and the aliases as they were. Objects
uploaded before the failure stay in the bucket (content-addressed, harmless)
and ``$LATEST``/published versions may have new code (Terraform and the aliases
decide what runs).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployctl import aws, naming
from deployctl.artifacts import attest, manifest, packaging
from deployctl.artifacts import source as source_mod
from deployctl.artifacts.lambdas import get_alias, get_function, list_aliases, revision_guard
from deployctl.artifacts.packaging import Artifact
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, DeployctlError, OperationFailed, Refused
from deployctl.ui import UI

MAX_WORKERS = 8
DEFAULT_WAIT_S = 300.0
PRECONDITION_CODES = frozenset({"PreconditionFailed", "ConditionalRequestConflict", "412", "409"})

__all__ = ["get_alias", "get_function", "list_aliases", "publish", "revision_guard"]  # the reads live in lambdas


def wait_timeout() -> float:
    """``DEPLOYCTL_LAMBDA_WAIT_S`` (default 300): how long to wait for a code update, in seconds."""
    raw = os.environ.get("DEPLOYCTL_LAMBDA_WAIT_S", "").strip()
    if not raw:
        return DEFAULT_WAIT_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 1 <= value <= 3600:
        raise ConfigError(f"must be a number of seconds between 1 and 3600, found {raw!r}",
                          where="DEPLOYCTL_LAMBDA_WAIT_S", hint="unset it to wait the default 300 s")
    return value


@dataclass
class Upload:
    function: str
    artifact: Artifact
    bucket: str
    key: str
    version_id: str = ""
    uploaded: bool = False
    bytes_uploaded: int = 0


@dataclass
class Deploy:
    function: str
    physical: str
    version: str = ""
    staging_before: str | None = None
    skipped: bool = False
    reason: str = ""
    aliases: dict[str, dict] = field(default_factory=dict)  # as read before the update (RevisionId guards)


@dataclass
class Progress:
    ui: UI
    total: int
    total_bytes: int
    done: int = 0
    sent: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def advance(self, nbytes: int) -> None:
        with self.lock:
            self.done += 1
            self.sent += nbytes
            if not self.ui.show_progress:
                return
            width = 24
            filled = int(width * self.done / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            end = "\n" if self.done == self.total else ""
            print(f"\r  upload [{bar}] {self.done}/{self.total}  {_human_bytes(self.sent)}", end=end,
                  file=self.ui.err, flush=True)


def _human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def now_iso() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


# -- S3 -------------------------------------------------------------------------------------------


def bucket_missing(bucket: str) -> OperationFailed:
    return OperationFailed(
        f"artifact bucket '{bucket}' does not exist",
        where="artifacts.bucket",
        hint="apply the foundation first (module.kms and module.artifact_bucket), see docs/artifacts.md",
    )


def not_versioned(bucket: str, status: str | None, key: str = "") -> OperationFailed:
    seen = f"S3 returned no VersionId for {key}" if key else f"status: {status or 'never enabled'}"
    return OperationFailed(
        f"artifact bucket '{bucket}' does not have versioning enabled ({seen})",
        hint="the artifact_bucket module enables it; re-apply the foundation",
    )


def check_bucket(s3: Any, bucket: str) -> None:
    """The bucket exists and is versioned (only on a failure path: every upload checks both on its own response)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = aws.error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise bucket_missing(bucket) from None
        raise aws.translate(exc, "check the artifact bucket", bucket) from exc
    except Exception as exc:
        raise aws.translate(exc, "check the artifact bucket", bucket) from exc
    with aws.errors("read the artifact bucket's versioning", bucket):
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise not_versioned(bucket, status)


@contextmanager
def s3_errors(action: str, bucket: str, key: str) -> Iterator[None]:
    """:func:`aws.errors`, with a missing bucket said as such (the upload is what finds it)."""
    from botocore.exceptions import ClientError

    try:
        with aws.errors(action, f"s3://{bucket}/{key}"):
            yield
    except OperationFailed as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and aws.error_code(cause) == "NoSuchBucket":
            raise bucket_missing(bucket) from None
        raise


def version_of(resp: dict, bucket: str, key: str) -> str:
    """The object's VersionId; none (or ``null``) means the bucket is not versioned: refused."""
    version = resp.get("VersionId") or ""
    if not version or version == "null":
        raise not_versioned(bucket, None, key)
    return version


def put_new(s3: Any, fresh: bool, **params: Any) -> dict | None:
    """``PutObject``; when ``fresh``, only if the key holds nothing yet (``If-None-Match: *``):
    ``None`` when it does (then the caller looks at what is there)."""
    from botocore.exceptions import ClientError

    if not fresh:
        return s3.put_object(**params)
    try:
        return s3.put_object(IfNoneMatch="*", **params)
    except ClientError as exc:
        if aws.error_code(exc) in PRECONDITION_CODES:
            return None
        raise


def kms_key_arn(cfg: EnvConfig) -> str:
    from botocore.exceptions import ClientError

    alias = naming.kms_alias(cfg)
    kms = aws.client("kms", cfg.region)
    try:
        return kms.describe_key(KeyId=alias)["KeyMetadata"]["Arn"]
    except ClientError as exc:
        if aws.error_code(exc) == "NotFoundException":
            raise OperationFailed(
                f"KMS key '{alias}' does not exist",
                hint="apply the foundation first (module.kms creates the alias), see docs/artifacts.md",
            ) from None
        raise aws.translate(exc, "look up the env's KMS key", alias) from exc
    except Exception as exc:
        raise aws.translate(exc, "look up the env's KMS key", alias) from exc


def _existing(s3: Any, bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
    except ClientError as exc:
        if aws.error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def upload_one(s3: Any, bucket: str, kms_arn: str, art: Artifact, fresh: bool = False) -> Upload:
    """Upload ``art`` unless its key already holds these bytes.

    ``fresh``: the manifest records no object for these bytes, so the key is most likely empty: write
    it conditionally at once (one request) instead of looking first."""
    key = (naming.layer_key if art.kind == "layer" else naming.artifact_key)(art.function, art.sha256)
    up = Upload(function=art.function, artifact=art, bucket=bucket, key=key)
    with s3_errors(f"upload {'layer ' if art.kind == 'layer' else ''}{art.function}", bucket, key):
        head = None if fresh else _existing(s3, bucket, key)
        if head is not None and _same_object(head, art):
            up.version_id = version_of(head, bucket, key)
            return up
        body = art.path.read_bytes()
        if len(body) != art.size:
            raise OperationFailed(f"{art.path} changed while publishing", hint="re-run")
        params = {"Bucket": bucket, "Key": key, "Body": body, "ChecksumSHA256": art.code_sha256,
                  "ContentType": "application/zip", "Metadata": {"sha256": art.sha256},
                  "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_arn}
        resp = put_new(s3, fresh, **params)
        if resp is None:  # the key exists after all: keep it if it holds these bytes
            head = _existing(s3, bucket, key)
            if head is not None and _same_object(head, art):
                up.version_id = version_of(head, bucket, key)
                return up
            resp = s3.put_object(**params)
        up.version_id = version_of(resp, bucket, key)
        up.uploaded = True
        up.bytes_uploaded = len(body)
    return up


def upload_document(s3: Any, bucket: str, kms_arn: str, key: str, body: bytes, content_type: str,
                    fresh: bool = False) -> dict:
    """Upload one SBOM or provenance document (SSE-KMS), unless ``key`` already holds these bytes
    (``fresh``: as for :func:`upload_one`).

    Returns the manifest record ``{key, version_id, sha256}`` plus ``bytes_uploaded``."""
    import base64
    import hashlib

    digest = hashlib.sha256(body)
    b64 = base64.b64encode(digest.digest()).decode()
    record = {"key": key, "version_id": "", "sha256": digest.hexdigest(), "bytes_uploaded": 0}

    def same(head: dict | None) -> bool:
        return head is not None and head.get("ContentLength") in (None, len(body)) and (
            head.get("ChecksumSHA256") == b64 or (head.get("Metadata") or {}).get("sha256") == record["sha256"])

    with s3_errors("upload a supply-chain document", bucket, key):
        head = None if fresh else _existing(s3, bucket, key)
        if same(head):
            record["version_id"] = version_of(head, bucket, key)
            return record
        params = {"Bucket": bucket, "Key": key, "Body": body, "ChecksumSHA256": b64, "ContentType": content_type,
                  "Metadata": {"sha256": record["sha256"]}, "ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_arn}
        resp = put_new(s3, fresh, **params)
        if resp is None:
            head = _existing(s3, bucket, key)
            if same(head):
                record["version_id"] = version_of(head, bucket, key)
                return record
            resp = s3.put_object(**params)
        record["version_id"] = version_of(resp, bucket, key)
        record["bytes_uploaded"] = len(body)
    return record


def check_source(cfg: EnvConfig) -> source_mod.Source:
    """The commit the build inputs come from; a protected env (prod) refuses inputs that differ from it."""
    src = source_mod.describe(cfg)
    if cfg.protected and (not src.commit or src.dirty):
        what = ("the project is not a git checkout with a commit" if not src.commit else
                f"the build inputs differ from commit {src.commit[:12]} ({', '.join(src.dirty_paths[:5])}"
                f"{', ...' if len(src.dirty_paths) > 5 else ''})")
        raise Refused(f"publish to '{cfg.name}' refused: {what}", where=str(cfg.root),
                      hint="commit (or stash) the changes: the provenance must name the commit the code came from")
    return src


def _same_object(head: dict, art: Artifact) -> bool:
    if head.get("ContentLength") not in (None, art.size):
        return False
    if head.get("ChecksumSHA256"):
        return head["ChecksumSHA256"] == art.code_sha256
    return (head.get("Metadata") or {}).get("sha256") == art.sha256


def run_all(jobs: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run ``jobs`` concurrently; on the first failure cancel what has not started, then raise the
    failure of the earliest job (so the error does not depend on thread timing)."""
    if not jobs:
        return []
    workers = max(1, min(MAX_WORKERS, len(jobs)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        futures = [pool.submit(job) for job in jobs]
        _done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(pending)
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            first = f.exception()
            raise first if isinstance(first, DeployctlError) else OperationFailed(f"upload failed: {first}") from first
    return [f.result() for f in futures]


def upload_all(s3: Any, bucket: str, kms_arn: str, artifacts: Sequence[Artifact], ui: UI,
               fresh: frozenset[str] = frozenset(),
               documents: Sequence[Callable[[], Any]] = ()) -> tuple[list[Upload], list[Any]]:
    """Upload the zips (``fresh``: the sha256s the manifest does not record) and run the ``documents``
    uploads beside them; returns both results. A failure cancels what has not started and is raised
    (a zip's first)."""
    progress = Progress(ui, total=len(artifacts), total_bytes=sum(a.size for a in artifacts))

    def job(art: Artifact) -> Callable[[], Upload]:
        def run() -> Upload:
            up = upload_one(s3, bucket, kms_arn, art, art.sha256 in fresh)
            progress.advance(up.bytes_uploaded)
            return up
        return run

    try:
        results = run_all([*(job(a) for a in artifacts), *documents])
    except BaseException:
        if ui.show_progress:
            print(file=ui.err)
        raise
    return results[:len(artifacts)], results[len(artifacts):]


# -- Lambda ---------------------------------------------------------------------------------------


def wait_updated(lam: Any, physical: str, timeout: float | None = None, conf: dict | None = None) -> dict:
    """Poll until the last update is Successful; raise if it Failed or takes too long.

    ``conf``: the configuration the update answered with; when it already says Successful (or
    Failed) no request is made."""
    timeout = wait_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        if conf is None:
            conf = get_function(lam, physical)
            status = conf.get("LastUpdateStatus") or "Successful"
        else:  # the update's own answer: only an explicit status counts
            status = conf.get("LastUpdateStatus") or "InProgress"
        if status == "Successful":
            return conf
        if status == "Failed":
            reason = conf.get("LastUpdateStatusReason") or "no reason given"
            code = conf.get("LastUpdateStatusReasonCode") or "Failed"
            raise OperationFailed(
                f"code update of '{physical}' ended Failed ({code}): {reason}",
                hint="the aliases were not moved; fix the cause and re-run publish-lambda --deploy",
            )
        if time.monotonic() > deadline:
            raise OperationFailed(f"code update of '{physical}' still {status} after {timeout:.0f}s",
                                  hint="check the function in the console and re-run")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
        conf = None


def _mismatch(physical: str, found: str, art: Artifact) -> OperationFailed:
    return OperationFailed(
        f"CodeSha256 mismatch on '{physical}': the function has {found}, the artifact is {art.code_sha256}",
        hint="someone else changed the function meanwhile; re-run publish-lambda --deploy",
    )


def read_target(lam: Any, cfg: EnvConfig, function: str) -> tuple[dict, dict[str, dict]]:
    """What a deploy of ``function`` needs to know first: ``$LATEST``'s configuration (its CodeSha256
    and RevisionId) and the function's aliases (one ListAliases)."""
    physical = naming.function_name(cfg, function)
    with aws.errors(f"deploy {function}", physical):
        return get_function(lam, physical), list_aliases(lam, physical)


def prepare_version(lam: Any, cfg: EnvConfig, up: Upload, target: tuple[dict, dict[str, dict]] | None = None) -> Deploy:
    """Update the code and publish a version (no alias is touched here).

    ``target``: :func:`read_target`'s answer when the caller read it already."""
    art = up.artifact
    physical = naming.function_name(cfg, up.function)
    dep = Deploy(function=up.function, physical=physical)
    conf, dep.aliases = target or read_target(lam, cfg, up.function)
    with aws.errors(f"deploy {up.function}", physical):
        staging = dep.aliases.get(naming.STAGING_ALIAS)
        if staging is not None:
            dep.staging_before = staging["FunctionVersion"]
            # skipped only while $LATEST holds this code too (else a new version is published from it, and
            # staging moves to it: the same code under a new number, where reading the old one costs a request)
            if staging["FunctionVersion"] != "$LATEST" and conf.get("CodeSha256") == art.code_sha256:
                staged = get_function(lam, physical, staging["FunctionVersion"])
                if staged.get("CodeSha256") == art.code_sha256:
                    dep.version, dep.skipped, dep.reason = staging["FunctionVersion"], True, "staging already runs this code"
                    return dep
        if conf.get("CodeSha256") != art.code_sha256:
            answer = lam.update_function_code(
                FunctionName=physical,
                S3Bucket=up.bucket,
                S3Key=up.key,
                S3ObjectVersion=up.version_id,
                Publish=False,
                **revision_guard(conf),
            )
            conf = wait_updated(lam, physical, conf=answer)
        if conf.get("CodeSha256") != art.code_sha256:
            raise _mismatch(physical, conf.get("CodeSha256", "?"), art)
        version = lam.publish_version(
            FunctionName=physical,
            CodeSha256=art.code_sha256,
            **revision_guard(conf),
            Description=f"deployctl {art.sha256[:16]}",
        )
        if version.get("CodeSha256") != art.code_sha256:
            raise _mismatch(physical, version.get("CodeSha256", "?"), art)
        dep.version = version["Version"]
    return dep


def move_staging(lam: Any, deploys: Sequence[Deploy]) -> list[tuple[Deploy, dict | None]]:
    """Point each function's staging alias at its new version; undo all moves if one fails.

    Each move is guarded by the RevisionId of the alias as :func:`prepare_version` read it: an alias
    someone else moved meanwhile makes the update fail (and everything is undone).
    Returns what was moved (for :func:`undo_staging` if a later step fails)."""
    moved: list[tuple[Deploy, dict | None]] = []
    try:
        for dep in deploys:
            if dep.skipped:
                continue
            with aws.errors(f"move the staging alias of {dep.function}", dep.physical):
                current = dep.aliases.get(naming.STAGING_ALIAS)
                if current is None:
                    lam.create_alias(FunctionName=dep.physical, Name=naming.STAGING_ALIAS, FunctionVersion=dep.version)
                else:
                    lam.update_alias(FunctionName=dep.physical, Name=naming.STAGING_ALIAS, FunctionVersion=dep.version,
                                     **revision_guard(current))
                moved.append((dep, current))
    except BaseException as exc:
        undo_staging(lam, moved, exc)
        raise
    return moved


def undo_staging(lam: Any, moved: list[tuple[Deploy, dict | None]], exc: BaseException) -> None:
    """Put the staging aliases back; say in ``exc``'s hint whether that worked."""
    failed = _undo(lam, moved)
    if not isinstance(exc, DeployctlError):
        return
    if failed:
        exc.hint = f"could NOT restore staging of {', '.join(failed)}: check them; {exc.hint or 're-run'}"
    elif moved:
        exc.hint = f"staging aliases restored; {exc.hint or 're-run publish-lambda --deploy'}"


def _undo(lam: Any, moved: list[tuple[Deploy, dict | None]]) -> list[str]:
    failed = []
    for dep, previous in reversed(moved):
        try:
            if previous is None:
                lam.delete_alias(FunctionName=dep.physical, Name=naming.STAGING_ALIAS)
            else:
                routing = {"RoutingConfig": previous["RoutingConfig"]} if previous.get("RoutingConfig") else {}
                lam.update_alias(FunctionName=dep.physical, Name=naming.STAGING_ALIAS,
                                 FunctionVersion=previous["FunctionVersion"], **routing)
        except Exception:  # noqa: BLE001 - report the original error, name what is left
            failed.append(dep.physical)
    return failed


# -- SBOM and provenance --------------------------------------------------------------------------


def _documents(cfg: EnvConfig, build: packaging.Build, src: source_mod.Source, epoch: int,
               current: dict) -> tuple[dict[tuple[str, str], dict], list[tuple[tuple[str, str], attest.Documents]]]:
    """Each artifact's SBOM and provenance: the records kept from the manifest, and the documents to upload.

    An artifact whose bytes the manifest already records with both documents, from a clean tree (or
    now from a dirty one too), keeps them: the commit that first produced these bytes still does,
    and an unchanged publish uploads nothing.
    """
    kept: dict[tuple[str, str], dict] = {}
    made: list[tuple[tuple[str, str], attest.Documents]] = []
    digests = {layer.function: layer.sha256 for layer in build.layers}
    for art in [*build.layers, *build.functions]:
        section = "layers" if art.kind == "layer" else "functions"
        old = (current.get(section) or {}).get(art.function) or {}
        old_src = old.get("source") if isinstance(old.get("source"), dict) else {}
        if (old.get("sha256") == art.sha256 and isinstance(old.get("sbom"), dict)
                and isinstance(old.get("provenance"), dict) and old_src.get("commit")
                and (not old_src.get("dirty") or src.dirty)):
            kept[(art.kind, art.function)] = {"bytes": 0, "record": {
                "sbom": old["sbom"], "provenance": old["provenance"], "source": old_src}}
            continue
        made.append(((art.kind, art.function), attest.for_artifact(cfg, art, src, epoch, digests, build.compiler)))
    return kept, made


def _recorded(current: dict, art: Artifact) -> bool:
    """Whether the manifest records an object for these bytes (else its key is most likely new)."""
    section = "layers" if art.kind == "layer" else "functions"
    return ((current.get(section) or {}).get(art.function) or {}).get("sha256") == art.sha256


# -- the command ----------------------------------------------------------------------------------


@dataclass
class Prep:
    """What the background thread of a run read while the build ran."""

    s3: Any = None
    lam: Any = None
    kms_arn: str = ""
    kms_error: DeployctlError | None = None
    targets: dict[str, tuple[dict, dict[str, dict]]] = field(default_factory=dict)


class Background:
    """``preflight`` then ``reads`` in a thread. A preflight failure (a refusal) wins over any error the
    caller meets meanwhile: it came first in the order of a run; the reads' errors come after the build's."""

    def __init__(self, preflight: Callable[[], None] | None, reads: Callable[[], Prep]):
        self._preflight_error: BaseException | None = None
        self._error: BaseException | None = None
        self._result: Prep | None = None
        self._preflight_done = threading.Event()

        def run() -> None:
            try:
                if preflight is not None:
                    preflight()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._preflight_error = exc
                return
            finally:
                self._preflight_done.set()
            try:
                self._result = reads()
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True, name="publish-reads")
        self._thread.start()

    def preflight_error(self) -> BaseException | None:
        self._preflight_done.wait()
        return self._preflight_error

    def result(self) -> Prep:
        self._thread.join()
        if self._preflight_error is not None:
            raise self._preflight_error
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result


def publish(cfg: EnvConfig, functions: Sequence[str] | None = None, *, deploy: bool = False,
            ui: UI | None = None, preflight: Callable[[], None] | None = None,
            after: Callable[[list[Deploy], Any], Any] | None = None) -> dict:
    """Package, upload, optionally deploy to staging, then record the manifest.

    ``preflight``: the caller's refusals (``publish-lambda``: the unfinished-rollout check), run
    before any AWS call of this run. ``after(deploys, lambda_client)``: what runs once the manifest is
    written and the publish lock released, in the same process and with the aliases as the deploy read
    them (``publish-lambda --promote``); its return value is ``result["after"]``."""
    ui = ui or UI()
    names = packaging.check_functions(cfg, functions)
    if deploy:
        wait_timeout()  # a bad DEPLOYCTL_LAMBDA_WAIT_S fails before anything is uploaded
    with manifest.locked(cfg):
        result, deploys, lam = _publish(cfg, names, deploy, ui, preflight)
    if after is not None:  # outside the publish lock: a rollout's bakes must not hold it
        result["after"] = after(deploys, lam)
    return result


class _Thread:
    """``fn`` in a daemon thread; :meth:`result` joins it and returns its value or raises its error."""

    def __init__(self, fn: Callable[[], Any], name: str):
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:  # noqa: BLE001 - re-raised by result()
                self._error = exc

        self._thread = threading.Thread(target=run, daemon=True, name=name)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def _build(cfg: EnvConfig, names: list[str], ui: UI) -> packaging.Build:
    """The build; meanwhile the SBOM and provenance libraries are imported (the build mostly waits on
    the runtime's Python compiling the bytecode)."""
    from deployctl.artifacts import provenance, sbom

    def preload() -> None:
        sbom.preload()
        provenance.preload()

    imports = _Thread(preload, "publish-imports")
    ui.step(f"packaging {len(names)} function(s)")
    build = packaging.build(cfg, names)
    try:
        imports.result()
    except ImportError:  # said where the documents are made
        pass
    return build


def _reads(cfg: EnvConfig, names: list[str], deploy: bool) -> Prep:
    aws.check_account(cfg)
    prep = Prep(s3=aws.s3_client(cfg))
    try:
        prep.kms_arn = kms_key_arn(cfg)
    except DeployctlError as exc:  # said after the bucket's own errors (see _publish)
        prep.kms_error = exc
    if deploy:
        prep.lam = aws.client("lambda", cfg.region)
        for name in names:
            prep.targets[name] = read_target(prep.lam, cfg, name)
    return prep


def _publish(cfg: EnvConfig, names: list[str], deploy: bool, ui: UI,
             preflight: Callable[[], None] | None) -> tuple[dict, list[Deploy], Any]:
    current = manifest.load_manifest(cfg)  # fail early on a broken manifest
    background = Background(preflight, lambda: _reads(cfg, names, deploy))
    try:
        if cfg.protected:  # its refusal comes before anything is built
            src = check_source(cfg)
            build = _build(cfg, names, ui)
        else:  # git's answers and the build (each mostly waiting on a subprocess) side by side
            source = _Thread(lambda: check_source(cfg), "publish-source")
            build = _build(cfg, names, ui)
            src = source.result()
        epoch = packaging.source_date_epoch()
        kept, made = _documents(cfg, build, src, epoch, current)
    except BaseException:
        refused = background.preflight_error()
        if refused is not None:
            raise refused from None
        raise
    artifacts = [*build.layers, *build.functions]
    bucket = cfg.artifact_bucket()
    prep = background.result()
    s3 = prep.s3
    if prep.kms_error is not None:
        check_bucket(s3, bucket)  # a missing or unversioned bucket is said first, as the foundation makes it first
        raise prep.kms_error
    kms_arn = prep.kms_arn
    fresh = frozenset(a.sha256 for a in artifacts if not _recorded(current, a))

    def document_job(which: tuple[str, str], docs: attest.Documents) -> Callable[[], tuple]:
        def run() -> tuple:
            new_sha = docs.sha256 in fresh
            sbom_rec = upload_document(s3, bucket, kms_arn, docs.sbom_key, docs.sbom,
                                       "application/vnd.cyclonedx+json", new_sha)
            prov_rec = upload_document(s3, bucket, kms_arn, docs.provenance_key, docs.provenance,
                                       "application/vnd.in-toto+json", new_sha)
            sent = sbom_rec.pop("bytes_uploaded") + prov_rec.pop("bytes_uploaded")
            return which, {"bytes": sent, "record": {"sbom": sbom_rec, "provenance": prov_rec,
                                                     "source": src.record(epoch)}}
        return run

    ui.step(f"uploading to s3://{bucket}")
    documents = [document_job(which, docs) for which, docs in made]
    every_upload, documented = upload_all(s3, bucket, kms_arn, artifacts, ui, fresh, documents)
    evidence = dict(kept)
    evidence.update(documented)
    uploads = [u for u in every_upload if u.artifact.kind == "function"]
    layer_uploads = [u for u in every_upload if u.artifact.kind == "layer"]

    new = {"schema": manifest.SCHEMA_VERSION, "env": cfg.name, "functions": dict(current["functions"]),
           "layers": dict(current.get("layers") or {})}
    stamp = now_iso()
    for up in every_upload:
        entry = {
            "bucket": up.bucket,
            "key": up.key,
            "version_id": up.version_id,
            "sha256": up.artifact.sha256,
            "code_sha256": up.artifact.code_sha256,
            "size": up.artifact.size,
            "published_at": stamp,
        }
        section = "layers" if up.artifact.kind == "layer" else "functions"
        old = (current.get(section) or {}).get(up.function)
        if old and all(old.get(k) == entry[k] for k in ("bucket", "key", "version_id", "sha256")):
            entry["published_at"] = old.get("published_at", stamp)
        entry.update(evidence[(up.artifact.kind, up.function)]["record"])
        new[section][up.function] = entry

    deploys: list[Deploy] = []
    path = manifest.manifest_path(cfg)
    lam = prep.lam
    if deploy:
        ui.step("deploying: update code, publish versions")
        deploys = [prepare_version(lam, cfg, up, prep.targets.get(up.function)) for up in uploads]
        tmp = manifest.prepare(path, new)
        try:
            ui.step("moving the staging aliases")
            moved = move_staging(lam, deploys)
            try:
                manifest.commit(tmp, path)
            except BaseException as exc:
                undo_staging(lam, moved, exc)
                raise
        except BaseException:
            manifest.discard(tmp)
            raise
    else:
        manifest.write_manifest(cfg, new)

    return _result(cfg, bucket, path, src, every_upload, uploads, layer_uploads, evidence, deploys), deploys, lam


def _result(cfg: EnvConfig, bucket: str, path: Any, src: source_mod.Source, every_upload: list[Upload],
            uploads: list[Upload], layer_uploads: list[Upload], evidence: dict, deploys: list[Deploy]) -> dict:
    return {
        "env": cfg.name,
        "bucket": bucket,
        "manifest": str(path),
        "bytes_uploaded": sum(u.bytes_uploaded for u in every_upload) + sum(e["bytes"] for e in evidence.values()),
        "documents_bytes_uploaded": sum(e["bytes"] for e in evidence.values()),  # SBOMs and provenance
        "source": src.to_dict(),
        "functions": {
            up.function: {
                "key": up.key,
                "version_id": up.version_id,
                "sha256": up.artifact.sha256,
                "code_sha256": up.artifact.code_sha256,
                "size": up.artifact.size,
                "uploaded": up.uploaded,
                "bytes_uploaded": up.bytes_uploaded,
                "built": not up.artifact.cached,
                "sbom": evidence[("function", up.function)]["record"]["sbom"]["key"],
                "provenance": evidence[("function", up.function)]["record"]["provenance"]["key"],
            }
            for up in uploads
        },
        "layers": {
            up.function: {
                "key": up.key,
                "version_id": up.version_id,
                "sha256": up.artifact.sha256,
                "size": up.artifact.size,
                "uploaded": up.uploaded,
                "bytes_uploaded": up.bytes_uploaded,
                "built": not up.artifact.cached,
                "sbom": evidence[("layer", up.function)]["record"]["sbom"]["key"],
                "provenance": evidence[("layer", up.function)]["record"]["provenance"]["key"],
            }
            for up in layer_uploads
        },
        "deployed": {
            d.function: {"function_name": d.physical, "version": d.version, "staging_before": d.staging_before,
                         "skipped": d.skipped, "reason": d.reason}
            for d in deploys
        },
    }
