"""publish-lambda: content-addressed uploads, the artifact manifest, and ``--deploy``.

Order of a run (nothing is recorded until everything before it succeeded):

1. package the functions and the layers they list (cache hits are free);
2. check the artifact bucket (exists, versioned) and resolve the env's KMS key;
3. upload concurrently to ``lambda/<fn>/<sha256>.zip`` and ``layers/<layer>/<sha256>.zip``
   with SSE-KMS, skipping a key that already holds an object with the same SHA-256; then each
   artifact's SBOM (``<sha256>.cdx.json``) and provenance (``<sha256>.intoto.json``) beside it
   (see :mod:`deployctl.artifacts.attest`; a protected env refuses a build whose inputs differ
   from the git commit, exit 4, before anything is built);
4. with ``--deploy``: per function ``UpdateFunctionCode`` to that exact object
   version, wait for ``Successful``, ``PublishVersion`` guarded by CodeSha256 and
   RevisionId; only when every function has its version, move the ``staging``
   aliases (undoing the moves already made if one fails);
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
from collections.abc import Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from deployctl import aws, naming
from deployctl.artifacts import attest, manifest, packaging
from deployctl.artifacts import source as source_mod
from deployctl.artifacts.packaging import Artifact
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, DeployctlError, OperationFailed, Refused
from deployctl.ui import UI

MAX_WORKERS = 8
DEFAULT_WAIT_S = 300.0


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


def check_bucket(s3: Any, bucket: str) -> None:
    from botocore.exceptions import ClientError

    try:
        s3.head_bucket(Bucket=bucket)
    except ClientError as exc:
        code = aws.error_code(exc)
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise OperationFailed(
                f"artifact bucket '{bucket}' does not exist",
                where="artifacts.bucket",
                hint="apply the foundation first (module.kms and module.artifact_bucket), see docs/artifacts.md",
            ) from None
        raise aws.translate(exc, "check the artifact bucket", bucket) from exc
    except Exception as exc:
        raise aws.translate(exc, "check the artifact bucket", bucket) from exc
    with aws.errors("read the artifact bucket's versioning", bucket):
        status = s3.get_bucket_versioning(Bucket=bucket).get("Status")
    if status != "Enabled":
        raise OperationFailed(
            f"artifact bucket '{bucket}' does not have versioning enabled (status: {status or 'never enabled'})",
            hint="the artifact_bucket module enables it; re-apply the foundation",
        )


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


def upload_one(s3: Any, bucket: str, kms_arn: str, art: Artifact) -> Upload:
    key = (naming.layer_key if art.kind == "layer" else naming.artifact_key)(art.function, art.sha256)
    up = Upload(function=art.function, artifact=art, bucket=bucket, key=key)
    with aws.errors(f"upload {'layer ' if art.kind == 'layer' else ''}{art.function}", f"s3://{bucket}/{key}"):
        head = _existing(s3, bucket, key)
        if head is not None and _same_object(head, art):
            up.version_id = head.get("VersionId") or ""
        else:
            body = art.path.read_bytes()
            if len(body) != art.size:
                raise OperationFailed(f"{art.path} changed while publishing", hint="re-run")
            resp = s3.put_object(
                Bucket=bucket,
                Key=key,
                Body=body,
                ChecksumSHA256=art.code_sha256,
                ContentType="application/zip",
                Metadata={"sha256": art.sha256},
                ServerSideEncryption="aws:kms",
                SSEKMSKeyId=kms_arn,
            )
            up.version_id = resp.get("VersionId") or ""
            up.uploaded = True
            up.bytes_uploaded = len(body)
    if not up.version_id or up.version_id == "null":
        raise OperationFailed(f"S3 returned no VersionId for {key}", where=bucket,
                              hint="the artifact bucket must have versioning enabled")
    return up


def upload_document(s3: Any, bucket: str, kms_arn: str, key: str, body: bytes, content_type: str) -> dict:
    """Upload one SBOM or provenance document (SSE-KMS), unless ``key`` already holds these bytes.

    Returns the manifest record ``{key, version_id, sha256}`` plus ``bytes_uploaded``."""
    import base64
    import hashlib

    digest = hashlib.sha256(body)
    b64 = base64.b64encode(digest.digest()).decode()
    record = {"key": key, "version_id": "", "sha256": digest.hexdigest(), "bytes_uploaded": 0}
    with aws.errors("upload a supply-chain document", f"s3://{bucket}/{key}"):
        head = _existing(s3, bucket, key)
        if head is not None and head.get("ContentLength") in (None, len(body)) and (
                head.get("ChecksumSHA256") == b64 or (head.get("Metadata") or {}).get("sha256") == record["sha256"]):
            record["version_id"] = head.get("VersionId") or ""
        else:
            resp = s3.put_object(Bucket=bucket, Key=key, Body=body, ChecksumSHA256=b64, ContentType=content_type,
                                 Metadata={"sha256": record["sha256"]}, ServerSideEncryption="aws:kms",
                                 SSEKMSKeyId=kms_arn)
            record["version_id"] = resp.get("VersionId") or ""
            record["bytes_uploaded"] = len(body)
    if not record["version_id"] or record["version_id"] == "null":
        raise OperationFailed(f"S3 returned no VersionId for {key}", where=bucket,
                              hint="the artifact bucket must have versioning enabled")
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


def upload_all(s3: Any, bucket: str, kms_arn: str, artifacts: Sequence[Artifact], ui: UI) -> list[Upload]:
    """Upload concurrently; on the first failure cancel what has not started and raise it."""
    progress = Progress(ui, total=len(artifacts), total_bytes=sum(a.size for a in artifacts))
    results: dict[tuple[str, str], Upload] = {}

    def job(art: Artifact) -> Upload:
        up = upload_one(s3, bucket, kms_arn, art)
        progress.advance(up.bytes_uploaded)
        return up

    workers = max(1, min(MAX_WORKERS, len(artifacts)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="upload") as pool:
        futures = {pool.submit(job, art): art for art in artifacts}
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        for f in pending:
            f.cancel()
        wait(pending)
    errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
    if errors:
        if ui.show_progress:
            print(file=ui.err)
        first = errors[0]
        raise first if isinstance(first, DeployctlError) else OperationFailed(f"upload failed: {first}") from first
    for f, art in futures.items():
        results[(art.kind, art.function)] = f.result()
    return [results[(a.kind, a.function)] for a in artifacts]


# -- Lambda ---------------------------------------------------------------------------------------


def get_alias(lam: Any, physical: str, alias: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return lam.get_alias(FunctionName=physical, Name=alias)
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            return None
        raise


def get_function(lam: Any, physical: str, qualifier: str | None = None) -> dict:
    from botocore.exceptions import ClientError

    kwargs = {"FunctionName": physical}
    if qualifier:
        kwargs["Qualifier"] = qualifier
    try:
        return lam.get_function_configuration(**kwargs)
    except ClientError as exc:
        if aws.error_code(exc) == "ResourceNotFoundException":
            what = f"version {qualifier} of function '{physical}'" if qualifier else f"function '{physical}'"
            raise OperationFailed(
                f"{what} does not exist (ResourceNotFoundException)",
                hint="apply the env with terraform first" if not qualifier else "list versions with aws lambda list-versions-by-function",
            ) from None
        raise


def wait_updated(lam: Any, physical: str, timeout: float | None = None) -> dict:
    """Poll until the last update is Successful; raise if it Failed or takes too long."""
    timeout = wait_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    delay = 0.25
    while True:
        conf = get_function(lam, physical)
        status = conf.get("LastUpdateStatus") or "Successful"
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


def _mismatch(physical: str, found: str, art: Artifact) -> OperationFailed:
    return OperationFailed(
        f"CodeSha256 mismatch on '{physical}': the function has {found}, the artifact is {art.code_sha256}",
        hint="someone else changed the function meanwhile; re-run publish-lambda --deploy",
    )


def revision_guard(conf: dict) -> dict:
    """The RevisionId guard, when the service reports one (AWS always does)."""
    return {"RevisionId": conf["RevisionId"]} if conf.get("RevisionId") else {}


def prepare_version(lam: Any, cfg: EnvConfig, up: Upload) -> Deploy:
    """Update the code and publish a version (no alias is touched here)."""
    art = up.artifact
    physical = naming.function_name(cfg, up.function)
    dep = Deploy(function=up.function, physical=physical)
    with aws.errors(f"deploy {up.function}", physical):
        conf = get_function(lam, physical)
        staging = get_alias(lam, physical, naming.STAGING_ALIAS)
        if staging is not None:
            dep.staging_before = staging["FunctionVersion"]
            if staging["FunctionVersion"] != "$LATEST":
                staged = get_function(lam, physical, staging["FunctionVersion"])
                if staged.get("CodeSha256") == art.code_sha256:
                    dep.version, dep.skipped, dep.reason = staging["FunctionVersion"], True, "staging already runs this code"
                    return dep
        if conf.get("CodeSha256") != art.code_sha256:
            lam.update_function_code(
                FunctionName=physical,
                S3Bucket=up.bucket,
                S3Key=up.key,
                S3ObjectVersion=up.version_id,
                Publish=False,
                **revision_guard(conf),
            )
            conf = wait_updated(lam, physical)
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

    Returns what was moved (for :func:`undo_staging` if a later step fails)."""
    moved: list[tuple[Deploy, dict | None]] = []
    try:
        for dep in deploys:
            if dep.skipped:
                continue
            with aws.errors(f"move the staging alias of {dep.function}", dep.physical):
                current = get_alias(lam, dep.physical, naming.STAGING_ALIAS)
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


def _documents(cfg: EnvConfig, build: packaging.Build, src: source_mod.Source, epoch: int, current: dict,
               s3: Any, bucket: str, kms_arn: str) -> dict[tuple[str, str], dict]:
    """Make and upload each artifact's SBOM and provenance; returns per artifact its manifest fields.

    An artifact whose bytes the manifest already records with both documents, from a clean tree (or
    now from a dirty one too), keeps them: the commit that first produced these bytes still does,
    and an unchanged publish uploads nothing.
    """
    out: dict[tuple[str, str], dict] = {}
    digests = {layer.function: layer.sha256 for layer in build.layers}
    for art in [*build.layers, *build.functions]:
        section = "layers" if art.kind == "layer" else "functions"
        old = (current.get(section) or {}).get(art.function) or {}
        old_src = old.get("source") if isinstance(old.get("source"), dict) else {}
        if (old.get("sha256") == art.sha256 and isinstance(old.get("sbom"), dict)
                and isinstance(old.get("provenance"), dict) and old_src.get("commit")
                and (not old_src.get("dirty") or src.dirty)):
            out[(art.kind, art.function)] = {"bytes": 0, "record": {
                "sbom": old["sbom"], "provenance": old["provenance"], "source": old_src}}
            continue
        docs = attest.for_artifact(cfg, art, src, epoch, digests, build.compiler)
        sbom_rec = upload_document(s3, bucket, kms_arn, docs.sbom_key, docs.sbom, "application/vnd.cyclonedx+json")
        prov_rec = upload_document(s3, bucket, kms_arn, docs.provenance_key, docs.provenance,
                                   "application/vnd.in-toto+json")
        sent = sbom_rec.pop("bytes_uploaded") + prov_rec.pop("bytes_uploaded")
        out[(art.kind, art.function)] = {"bytes": sent, "record": {
            "sbom": sbom_rec, "provenance": prov_rec, "source": src.record(epoch)}}
    return out


# -- the command ----------------------------------------------------------------------------------


def publish(cfg: EnvConfig, functions: Sequence[str] | None = None, *, deploy: bool = False,
            ui: UI | None = None) -> dict:
    """Package, upload, optionally deploy to staging, then record the manifest."""
    ui = ui or UI()
    names = packaging.check_functions(cfg, functions)
    if deploy:
        wait_timeout()  # a bad DEPLOYCTL_LAMBDA_WAIT_S fails before anything is uploaded
    with manifest.locked(cfg):
        return _publish(cfg, names, deploy, ui)


def _publish(cfg: EnvConfig, names: list[str], deploy: bool, ui: UI) -> dict:
    current = manifest.load_manifest(cfg)  # fail early on a broken manifest
    src = check_source(cfg)
    ui.step(f"packaging {len(names)} function(s)")
    build = packaging.build(cfg, names)
    epoch = packaging.source_date_epoch()
    artifacts = [*build.layers, *build.functions]
    bucket = cfg.artifact_bucket()
    aws.check_account(cfg)
    s3 = aws.s3_client(cfg)
    check_bucket(s3, bucket)
    kms_arn = kms_key_arn(cfg)
    ui.step(f"uploading to s3://{bucket}")
    every_upload = upload_all(s3, bucket, kms_arn, artifacts, ui)
    uploads = [u for u in every_upload if u.artifact.kind == "function"]
    layer_uploads = [u for u in every_upload if u.artifact.kind == "layer"]
    evidence = _documents(cfg, build, src, epoch, current, s3, bucket, kms_arn)

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
    if deploy:
        lam = aws.client("lambda", cfg.region)
        ui.step("deploying: update code, publish versions")
        deploys = [prepare_version(lam, cfg, up) for up in uploads]
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
