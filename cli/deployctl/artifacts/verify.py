"""``deployctl verify``: rebuild from the recorded commit and compare with what AWS runs.

For every function (and every layer those functions run):

1. **Rebuild.** The manifest entry's ``source.commit`` is exported with ``git archive`` (the
   commit as committed, never the working tree) into a fresh directory and built there with the
   recorded ``SOURCE_DATE_EPOCH``, with an empty cache (no zip, dependency tree or import cache
   of this checkout is reused; pip's own download cache is). The SBOM and provenance are
   regenerated from the rebuild. The zips' bytecode is compiled by the rebuilding machine's
   Python of the runtime (:mod:`deployctl.pythons`): when the stored provenance records another
   compiler (``internalParameters.bytecode``: version and magic, or none), the rebuild cannot
   reproduce the bytes, so it is not made and the checks that rest on it are ``unverifiable``
   ("needs python 3.12.x"), never ``differs``.
2. **What runs.** The ``CodeSha256`` of the versions the ``live`` alias routes to (its version
   and a canary's), of ``staging``'s version and of ``$LATEST`` (anyone allowed to invoke the
   unqualified function runs it, and it is what the next ``PublishVersion`` freezes), and of
   every layer version those attach. Code that is not the manifest's (e.g. ``live`` still on the
   previous release after an apply) is followed through its content address: the provenance
   stored beside ``lambda/<fn>/<sha256>.zip`` names its commit, which is rebuilt the same way.
3. **What is stored.** The manifest's zip, SBOM and provenance objects (the recorded S3 versions,
   and the current version of each content-addressed key, which nobody may overwrite with other
   bytes).

Each check is ``identical``, ``differs`` (with the first differing file when both zips can be
read) or ``unverifiable`` (why). Everything identical is the only success.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from deployctl import aws, naming
from deployctl.artifacts import attest, bytecode, manifest, packaging
from deployctl.artifacts import provenance as provenance_mod
from deployctl.artifacts import source as source_mod
from deployctl.artifacts.packaging import Artifact
from deployctl.config import EnvConfig, load_env
from deployctl.errors import DeployctlError

IDENTICAL, DIFFERS, UNVERIFIABLE = "identical", "differs", "unverifiable"
LATEST = "$LATEST"


@dataclass
class Check:
    kind: str  # "function" or "layer"
    name: str
    target: str  # "live v3", "staging v3", "$LATEST", "layer version ...", "s3 zip", "s3 sbom", ...
    status: str
    detail: str = ""
    first_difference: str = ""
    expected: str = ""  # sha256 hex of the rebuild
    found: str = ""  # sha256 hex of what runs / is stored

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Rebuild:
    commit: str
    artifacts: dict[tuple[str, str], Artifact]
    documents: dict[tuple[str, str], attest.Documents]
    error: str = ""


@contextlib.contextmanager
def _epoch(value: int) -> Iterator[None]:
    saved = os.environ.get("SOURCE_DATE_EPOCH")
    os.environ["SOURCE_DATE_EPOCH"] = str(value)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("SOURCE_DATE_EPOCH", None)
        else:
            os.environ["SOURCE_DATE_EPOCH"] = saved


def first_difference(a: bytes, b: bytes) -> str:
    """The first entry name (sorted) whose presence, bytes or mode differ between two zips."""
    try:
        za, zb = zipfile.ZipFile(io.BytesIO(a)), zipfile.ZipFile(io.BytesIO(b))
    except zipfile.BadZipFile:
        return "(not a zip)"
    with za, zb:
        ia = {i.filename: i for i in za.infolist()}
        ib = {i.filename: i for i in zb.infolist()}
        for name in sorted(set(ia) | set(ib)):
            if name not in ia:
                return f"{name} (only in what runs)"
            if name not in ib:
                return f"{name} (missing from what runs)"
            if za.read(name) != zb.read(name):
                return name
            if ia[name].external_attr != ib[name].external_attr:
                return f"{name} (mode)"
            if ia[name].date_time != ib[name].date_time:
                return f"{name} (timestamp)"
    return "(same files; the zip's own layout differs)"


def get_object(s3: Any, bucket: str, key: str, version_id: str | None = None) -> bytes | None:
    """An object's bytes (that version, else the current one), or None when there is none."""
    from botocore.exceptions import ClientError

    kwargs = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    try:
        return s3.get_object(**kwargs)["Body"].read()
    except ClientError as exc:
        if aws.error_code(exc) in ("404", "NoSuchKey", "NoSuchVersion", "NotFound", "InvalidArgument"):
            return None
        raise


class Verifier:
    def __init__(self, cfg: EnvConfig, workdir: Path):
        self.cfg = cfg
        self.workdir = workdir
        self.rebuilds: dict[tuple[str, str, int], Rebuild] = {}
        self.s3 = aws.s3_client(cfg)
        self.lam = aws.client("lambda", cfg.region)
        self.bucket = cfg.artifact_bucket()
        self.checks: list[Check] = []
        self.layer_entries_checked: set[str] = set()

    # -- rebuilding ------------------------------------------------------------------------------

    def rebuild(self, src: dict, functions: Sequence[str]) -> Rebuild:
        commit, path = str(src.get("commit") or ""), str(src.get("path") or "")
        try:
            epoch = int(src.get("source_date_epoch") or packaging.DEFAULT_EPOCH)
        except (TypeError, ValueError):
            return Rebuild(commit=commit, artifacts={}, documents={},
                           error=f"source_date_epoch {src.get('source_date_epoch')!r} is not a Unix timestamp")
        recorded = src.get("bytecode")  # the compiler the stored provenance names (None: not recorded)
        key = (commit, path, epoch, recorded)
        if key in self.rebuilds:
            return self.rebuilds[key]
        rb = Rebuild(commit=commit, artifacts={}, documents={})
        self.rebuilds[key] = rb
        try:
            root = source_mod.export(self.cfg, commit, path, self.workdir / f"src-{commit[:12]}-{epoch}")
            cfg2 = load_env(self.cfg.name, root)
            rb.error = compiler_mismatch(recorded, bytecode.find(cfg2))
            if rb.error:
                return rb
            names = [n for n in cfg2.functions if n in functions] or list(cfg2.functions)
            with _epoch(epoch):
                build = packaging.build(cfg2, names, self.workdir / f"out-{commit[:12]}-{epoch}")
            clean = source_mod.Source(repository=str(src.get("repository") or ""), commit=commit, path=path,
                                      dirty=False)
            for docs in attest.for_build(cfg2, build, clean, epoch):
                rb.documents[(docs.kind, docs.name)] = docs
            for art in [*build.layers, *build.functions]:
                rb.artifacts[(art.kind, art.function)] = art
        except DeployctlError as exc:
            rb.error = exc.one_line()
        return rb

    def recorded_source(self, entry: dict) -> dict:
        """A manifest entry's source, with the bytecode compiler its stored provenance records."""
        src = dict(entry.get("source") if isinstance(entry.get("source"), dict) else {})
        rec = entry.get("provenance")
        if isinstance(rec, dict) and rec.get("key"):
            with aws.errors(f"read s3://{self.bucket}/{rec['key']}", self.bucket):
                body = self._get(str(rec["key"]), str(rec.get("version_id") or "") or None)
            try:
                src["bytecode"] = provenance_mod.summary(body)["bytecode"] if body is not None else None
            except (ValueError, KeyError, TypeError, AttributeError):  # a stored document is not trusted input
                src["bytecode"] = None
        return src

    # -- S3 ----------------------------------------------------------------------------------------

    def _get(self, key: str, version_id: str | None = None) -> bytes | None:
        return get_object(self.s3, self.bucket, key, version_id)

    def _stored(self, kind: str, name: str, what: str, key: str, version_id: str, expected: bytes,
                is_zip: bool, dirty_note: str = "") -> None:
        """Compare the recorded S3 version and the key's current version with ``expected``."""
        want = hashlib.sha256(expected).hexdigest()
        for label, vid in ((f"s3 {what}", version_id), (f"s3 {what} (current version)", None)):
            if vid is None and not version_id:
                continue
            with aws.errors(f"read s3://{self.bucket}/{key}", self.bucket):
                body = self._get(key, vid)
            if body is None:
                self.add(kind, name, label, UNVERIFIABLE, f"s3://{self.bucket}/{key} is missing", expected=want)
                continue
            found = hashlib.sha256(body).hexdigest()
            if body == expected:
                self.add(kind, name, label, IDENTICAL, key, expected=want, found=found)
            else:
                diff = first_difference(expected, body) if is_zip else ""
                detail = f"s3://{self.bucket}/{key} holds other bytes than the rebuild"
                if dirty_note:
                    detail += f" ({dirty_note})"
                self.add(kind, name, label, DIFFERS, detail, first_difference=diff, expected=want, found=found)

    # -- what runs ---------------------------------------------------------------------------------

    def resolve(self, kind: str, name: str, code_sha256: str, baseline: Rebuild | None,
                functions: Sequence[str]) -> tuple[str, str, str, str]:
        """(status, detail, first difference, expected hex) for code with this CodeSha256."""
        found = attest.hex_of(code_sha256)
        base_art = baseline.artifacts.get((kind, name)) if baseline else None
        if base_art is not None and base_art.code_sha256 == code_sha256:
            return IDENTICAL, f"the rebuild of {baseline.commit[:12]}", "", base_art.sha256
        # not the manifest's: follow the content address to the provenance stored beside it
        zip_key = attest.zip_key(kind, name, found) if found else ""
        prov = self._get(attest.sidecar_key(zip_key, attest.PROVENANCE_SUFFIX)) if zip_key else None
        if prov is not None:
            try:
                facts = provenance_mod.summary(prov)
            except (ValueError, KeyError, TypeError, AttributeError):  # a stored document is not trusted input
                facts = {}
            if facts.get("sha256") == found and facts.get("commit"):
                other = self.rebuild(facts, functions)
                art = other.artifacts.get((kind, name))
                if other.error:
                    return UNVERIFIABLE, f"published from {facts['commit'][:12]}: {other.error}", "", ""
                if art is not None and art.code_sha256 == code_sha256:
                    return IDENTICAL, f"an earlier publish: the rebuild of {facts['commit'][:12]}", "", art.sha256
                stored = self._get(zip_key)
                diff = first_difference(art.path.read_bytes(), stored) if art is not None and stored else ""
                return (DIFFERS, f"the provenance beside it names {facts['commit'][:12]}, whose rebuild is other code",
                        diff, art.sha256 if art else "")
        expected = base_art.sha256 if base_art else ""
        if baseline is not None and baseline.error:
            return UNVERIFIABLE, f"runs other code than the manifest's, whose rebuild failed: {baseline.error}", "", ""
        diff = ""
        running = self._download(kind, name, code_sha256)
        if running is not None and base_art is not None:
            diff = first_difference(base_art.path.read_bytes(), running)
        return (DIFFERS, "runs code that no deployctl publish recorded (no provenance beside its content address)"
                + ("" if running is not None else "; its zip could not be downloaded to name the first differing file"),
                diff, expected)

    def _download(self, kind: str, name: str, code_sha256: str) -> bytes | None:
        """The running zip, when AWS serves it (``Code.Location``); never against an emulator endpoint."""
        if kind != "function" or os.environ.get("AWS_ENDPOINT_URL") or os.environ.get("AWS_ENDPOINT_URL_LAMBDA"):
            return None
        import urllib.request

        try:
            info = self.lam.get_function(FunctionName=naming.function_name(self.cfg, name))
            url = (info.get("Code") or {}).get("Location") or ""
            if not url.startswith("https://"):
                return None
            with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - https only, AWS's presigned URL
                data = resp.read(300 * 1024 * 1024)
        except Exception:  # noqa: BLE001 - the first differing file is a courtesy
            return None
        return data if attest.hex_of(code_sha256) == hashlib.sha256(data).hexdigest() else None

    def add(self, kind: str, name: str, target: str, status: str, detail: str = "", **extra: str) -> None:
        self.checks.append(Check(kind=kind, name=name, target=target, status=status, detail=detail, **extra))

    def targets(self, physical: str) -> list[tuple[str, str]]:
        """(label, qualifier) of every version that runs: live (+ canary), staging, $LATEST."""
        from deployctl.artifacts.lambdas import get_alias

        out: list[tuple[str, str]] = []
        for alias in (naming.LIVE_ALIAS, naming.STAGING_ALIAS):
            with aws.errors(f"read the {alias} alias", physical):
                found = get_alias(self.lam, physical, alias)
            if found is None:
                out.append((f"{alias} (missing)", ""))
                continue
            out.append((f"{alias} v{found['FunctionVersion']}", found["FunctionVersion"]))
            weights = ((found.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {})
            for version, weight in sorted(weights.items()):
                out.append((f"{alias} canary v{version} ({round(weight * 100, 2):g}%)", version))
        out.append((LATEST, LATEST))
        return out


def compiler_mismatch(recorded: object, choice: bytecode.Choice) -> str:
    """Why this machine cannot rebuild bytes compiled by ``recorded`` (a provenance's
    ``internalParameters.bytecode``), or "" when it can (or the provenance records no compiler)."""
    if not isinstance(recorded, str) or recorded == choice.key:
        return ""
    here = (f"Python {choice.interpreter.version}" if choice.interpreter is not None
            else "no bytecode (DEPLOYCTL_LAMBDA_PYTHON=none)" if choice.disabled else f"no Python {choice.wanted}")
    if recorded == "none":
        return (f"needs a rebuild without bytecode: the recorded build shipped no .pyc, this machine's would be "
                f"compiled by {here} (set DEPLOYCTL_LAMBDA_PYTHON=none)")
    version = provenance_mod.compiler_key_version(recorded) or recorded
    return (f"needs python {version}: the recorded build's bytecode was compiled by CPython {recorded}, this "
            f"machine has {here} (point DEPLOYCTL_LAMBDA_PYTHON at a python {version})")


def verify(cfg: EnvConfig, functions: Sequence[str] | None = None) -> dict:
    """Every check of every requested function and the layers it runs; see the module docstring."""
    from botocore.exceptions import ClientError

    names = packaging.check_functions(cfg, functions)
    data = manifest.load_manifest(cfg)
    aws.check_account(cfg)
    with tempfile.TemporaryDirectory(prefix="deployctl-verify-") as tmp:
        v = Verifier(cfg, Path(tmp))
        layers_seen: set[str] = set()
        for name in names:
            entry = data["functions"].get(name)
            if entry is None:
                v.add("function", name, "manifest", UNVERIFIABLE, "not in artifacts.json (publish it first)")
                continue
            src = v.recorded_source(entry)
            baseline: Rebuild | None = None
            if not src.get("commit"):
                v.add("function", name, "rebuild", UNVERIFIABLE,
                      "artifacts.json records no source commit (published outside a git checkout, or before "
                      "deployctl recorded one): re-publish from a commit")
            else:
                baseline = v.rebuild(src, names)
                _check_rebuild(v, "function", name, entry, baseline, "has no such function")
            physical = naming.function_name(cfg, name)
            for label, qualifier in v.targets(physical):
                if not qualifier:
                    v.add("function", name, label, UNVERIFIABLE, "the alias does not exist")
                    continue
                try:
                    conf = v.lam.get_function_configuration(FunctionName=physical, Qualifier=qualifier)
                except ClientError as exc:
                    v.add("function", name, label, UNVERIFIABLE, f"cannot read it: {aws.error_code(exc)}")
                    continue
                status, detail, diff, expected = v.resolve("function", name, conf.get("CodeSha256", ""), baseline, names)
                v.add("function", name, label, status, detail, first_difference=diff, expected=expected,
                      found=attest.hex_of(conf.get("CodeSha256", "")))
                for layer in conf.get("Layers") or []:
                    _check_layer_version(v, layer.get("Arn", ""), label, data, names, layers_seen)
        result = {
            "env": cfg.name,
            "identical": bool(v.checks) and all(c.status == IDENTICAL for c in v.checks),
            "commits": sorted({rb.commit for rb in v.rebuilds.values() if rb.commit}),
            "checks": [c.to_dict() for c in v.checks],
        }
    counts: dict[str, int] = {}
    for c in result["checks"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    result["counts"] = counts
    result["not_identical"] = sorted({f"{c['kind']} {c['name']}" for c in result["checks"] if c["status"] != IDENTICAL})
    return result


def _check_rebuild(v: Verifier, kind: str, name: str, entry: dict, rb: Rebuild, missing: str) -> None:
    """The rebuild's checks of one manifest entry, or why there are none (unverifiable)."""
    art = rb.artifacts.get((kind, name))
    if rb.error:
        v.add(kind, name, "rebuild", UNVERIFIABLE, rb.error)
    elif art is None:
        v.add(kind, name, "rebuild", UNVERIFIABLE, f"commit {rb.commit[:12]} {missing}")
    else:
        _check_entry(v, kind, name, entry, rb, art)


def _check_entry(v: Verifier, kind: str, name: str, entry: dict, rb: Rebuild, art: Artifact) -> None:
    """The rebuild against the manifest's record and the stored zip, SBOM and provenance."""
    if art.sha256 == entry.get("sha256"):
        v.add(kind, name, "rebuild", IDENTICAL, f"commit {rb.commit[:12]} rebuilds the recorded sha256",
              expected=art.sha256, found=entry.get("sha256", ""))
    else:
        v.add(kind, name, "rebuild", DIFFERS, f"commit {rb.commit[:12]} rebuilds other bytes than artifacts.json records",
              expected=art.sha256, found=str(entry.get("sha256", "")))
    v._stored(kind, name, "zip", str(entry["key"]), str(entry.get("version_id") or ""), art.path.read_bytes(),
              is_zip=True)
    docs = rb.documents.get((kind, name))
    src = entry.get("source") or {}
    note = "it was published from a tree that differed from the commit" if src.get("dirty") else ""
    for what in ("sbom", "provenance"):
        rec = entry.get(what)
        if not isinstance(rec, dict) or docs is None:
            v.add(kind, name, f"s3 {what}", UNVERIFIABLE, f"artifacts.json records no {what}")
            continue
        v._stored(kind, name, what, str(rec.get("key", "")), str(rec.get("version_id") or ""),
                  docs.sbom if what == "sbom" else docs.provenance, is_zip=False, dirty_note=note)


def _check_layer_version(v: Verifier, arn: str, label: str, data: dict, names: Sequence[str],
                         seen: set[str]) -> None:
    from botocore.exceptions import ClientError

    layer = next((n for n in v.cfg.layers if arn.split(":")[6:7] == [naming.layer_name(v.cfg, n)]), None)
    if layer is None:
        v.add("layer", arn, f"attached to {label}", UNVERIFIABLE, "not a layer of this env's [layers]")
        return
    if arn in seen:
        return
    seen.add(arn)
    entry = (data.get("layers") or {}).get(layer)
    baseline = None
    src = v.recorded_source(entry) if entry is not None else {}
    if entry is not None and src.get("commit"):
        baseline = v.rebuild(src, names)
        if layer not in v.layer_entries_checked:
            v.layer_entries_checked.add(layer)
            _check_rebuild(v, "layer", layer, entry, baseline, "does not build it")
    try:
        info = layer_version(v.lam, arn)
    except (ClientError, ValueError) as exc:
        v.add("layer", layer, f"version {arn.rsplit(':', 1)[-1]}", UNVERIFIABLE, f"cannot read it: {aws.error_code(exc) if isinstance(exc, ClientError) else exc}")
        return
    code = (info.get("Content") or {}).get("CodeSha256", "")
    status, detail, diff, expected = v.resolve("layer", layer, code, baseline, names)
    v.add("layer", layer, f"version {arn.rsplit(':', 1)[-1]}", status, detail, first_difference=diff,
          expected=expected, found=attest.hex_of(code))


def layer_version(lam: Any, arn: str) -> dict:
    """GetLayerVersion of ``arn:...:layer:NAME:VERSION`` (by name and number: emulators serve that call)."""
    parts = arn.split(":")
    if len(parts) != 8 or parts[5] != "layer" or not parts[7].isdigit():
        raise ValueError(f"not a layer version ARN: {arn!r}")
    return lam.get_layer_version(LayerName=parts[6], VersionNumber=int(parts[7]))


def deployed_sbom(cfg: EnvConfig, functions: Sequence[str] | None = None) -> dict[str, Any]:
    """The SBOM of what ``live`` runs now: its CodeSha256 -> content address -> the stored SBOM."""
    import json

    names = packaging.check_functions(cfg, functions)
    data = manifest.load_manifest(cfg)
    s3 = aws.s3_client(cfg)
    lam = aws.client("lambda", cfg.region)
    bucket = cfg.artifact_bucket()
    from deployctl.artifacts.lambdas import get_alias

    out: dict[str, Any] = {}
    for name in names:
        physical = naming.function_name(cfg, name)
        with aws.errors("read the live alias", physical):
            live = get_alias(lam, physical, naming.LIVE_ALIAS)
            version = live["FunctionVersion"] if live else LATEST
            conf = lam.get_function_configuration(FunctionName=physical, Qualifier=version)
        code_hex = attest.hex_of(conf.get("CodeSha256", ""))
        entry = data["functions"].get(name) or {}
        item: dict[str, Any] = {"function_name": physical, "version": version, "sha256": code_hex,
                                "in_manifest": entry.get("sha256") == code_hex}
        key = (entry.get("sbom") or {}).get("key") if item["in_manifest"] else None
        vid = (entry.get("sbom") or {}).get("version_id") if item["in_manifest"] else None
        key = key or attest.sidecar_key(attest.zip_key("function", name, code_hex), attest.SBOM_SUFFIX)
        body = None
        if code_hex:
            with aws.errors(f"read s3://{bucket}/{key}", bucket):
                body = get_object(s3, bucket, key, vid or None)
        if body is None:
            item["sbom"] = None
            item["reason"] = "no SBOM is stored for this code (not published by deployctl, or before SBOMs)"
        else:
            item["key"] = key
            item["sbom"] = json.loads(body)
            layers = []
            for layer in conf.get("Layers") or []:
                layers.append(_layer_sbom(cfg, lam, s3, bucket, layer.get("Arn", "")))
            item["layers"] = layers
        out[name] = item
    return {"env": cfg.name, "functions": out}


def _layer_sbom(cfg: EnvConfig, lam: Any, s3: Any, bucket: str, arn: str) -> dict:
    import json

    layer = next((n for n in cfg.layers if arn.split(":")[6:7] == [naming.layer_name(cfg, n)]), None)
    item: dict[str, Any] = {"arn": arn, "layer": layer, "sbom": None}
    if layer is None:
        return item
    with aws.errors("read the layer version", arn):
        code = (layer_version(lam, arn).get("Content") or {}).get("CodeSha256", "")
    code_hex = attest.hex_of(code)
    key = attest.sidecar_key(attest.zip_key("layer", layer, code_hex), attest.SBOM_SUFFIX)
    with aws.errors(f"read s3://{bucket}/{key}", bucket):
        body = get_object(s3, bucket, key)
    item.update({"sha256": code_hex, "key": key, "sbom": json.loads(body) if body else None})
    return item
