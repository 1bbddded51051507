"""Provenance per artifact: an in-toto Statement v1 with a SLSA provenance v1 predicate.

Built and checked with ``in-toto-attestation`` (the in-toto project's Python bindings: the
predicate is parsed into its SLSA ``Provenance`` message, so a misspelt field is an error, and
the statement goes through ``Statement.validate()``). Imported lazily.

* ``subject``: the artifact's content-addressed S3 key and its SHA-256.
* ``buildDefinition.externalParameters``: the env, the artifact, the source (repository,
  commit, the project's folder in it, whether the build inputs differed from the commit).
* ``buildDefinition.internalParameters``: Lambda runtime, architecture, Python version, pip
  platform tags, ``SOURCE_DATE_EPOCH``, zlib (the deflate implementation is part of the bytes),
  ``bytecode``: the interpreter that compiled the zip's ``.pyc`` (``cpython-312/3.12.1/<magic>``)
  or ``none``; a rebuild reproduces the bytes only with that interpreter.
* ``buildDefinition.resolvedDependencies``: the git commit, the requirements file (SHA-256 of
  its bytes), every package with its version and pinned wheel SHA-256, a function's layers, and the
  bytecode compiler (``cpython@<version>``, its magic number and cache tag) when there is one.
* ``runDetails.builder``: deployctl and its version. No start/finish time: the statement
  depends on its inputs only (same inputs, same bytes). Numbers are written as strings (the
  protobuf ``Struct`` would turn them into floats).

The statement is **unsigned**: it says what deployctl claims about the build, and is as
trustworthy as the bucket and the manifest that hold it. ``deployctl verify`` is what checks
the claim, by rebuilding from the commit it names.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Sequence
from pathlib import Path

from deployctl import __version__
from deployctl.artifacts import sbom as sbom_mod
from deployctl.artifacts.source import Source
from deployctl.pythons import Interpreter

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "urn:deployctl:build-type:lambda-artifact:v1"
BUILDER_ID = "urn:deployctl:builder"
MEDIA_TYPE = "application/vnd.in-toto+json"


def preload() -> None:
    """Import what :func:`document` needs (a caller may do it in a thread while it waits on something else)."""
    from google.protobuf import json_format  # noqa: F401
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2  # noqa: F401
    from in_toto_attestation.v1.statement import Statement  # noqa: F401


def document(*, kind: str, name: str, key: str, sha256: str, zip_path: Path, env: str, source: Source,
             epoch: int, runtime: str, architecture: str, python: str, platforms: Sequence[str],
             requirements: Path | None, requirements_rel: str = "",
             layers: Sequence[tuple[str, str]] = (), compiler: Interpreter | None = None) -> bytes:
    """The statement's JSON bytes (sorted keys, two-space indent, trailing newline)."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1.resource_descriptor import ResourceDescriptor
    from in_toto_attestation.v1.statement import Statement

    deps: list[dict] = []
    if source.commit:
        dep: dict = {"name": "source", "digest": {"gitCommit": source.commit}, "annotations": {"path": source.path or "."}}
        if source.repository:
            dep["uri"] = f"git+{source.repository}@{source.commit}"
        deps.append(dep)
    if requirements is not None and requirements.is_file():
        deps.append({"name": requirements_rel or requirements.name,
                     "digest": {"sha256": hashlib.sha256(requirements.read_bytes()).hexdigest()},
                     "mediaType": "text/plain"})
    for pkg in sbom_mod.read_zip(zip_path, requirements).packages:
        norm = sbom_mod.normalise(pkg.name)
        item: dict = {"name": f"{norm}=={pkg.version}", "uri": f"pkg:pypi/{norm}@{pkg.version}"}
        if pkg.wheel_sha256:
            item["digest"] = {"sha256": pkg.wheel_sha256}
        elif pkg.wheel_candidates:
            item["annotations"] = {"wheel_sha256_one_of": pkg.wheel_candidates}
        deps.append(item)
    for layer, digest in layers:
        deps.append({"name": f"layer:{layer}", "digest": {"sha256": digest}, "mediaType": "application/zip"})
    if compiler is not None:
        deps.append({"name": "bytecode-compiler", "uri": f"pkg:generic/cpython@{compiler.version}",
                     "annotations": {"version": compiler.version, "magic": compiler.magic,
                                     "cacheTag": compiler.cache_tag}})

    predicate = {
        "buildDefinition": {
            "buildType": BUILD_TYPE,
            "externalParameters": {
                "env": env,
                "artifact": {"kind": kind, "name": name},
                "source": {"repository": source.repository, "commit": source.commit, "path": source.path,
                           "dirty": source.dirty},
            },
            "internalParameters": {
                "runtime": runtime, "architecture": architecture, "python": python,
                "platforms": list(platforms), "sourceDateEpoch": str(epoch), "zlib": zlib.ZLIB_RUNTIME_VERSION,
                "bytecode": compiler.key if compiler is not None else "none",
            },
            "resolvedDependencies": deps,
        },
        "runDetails": {"builder": {"id": BUILDER_ID, "version": {"deployctl": __version__}}},
    }
    message = json_format.ParseDict(predicate, provenance_pb2.Provenance())  # unknown field -> ParseError
    subject = ResourceDescriptor(name=key, digest={"sha256": sha256}, media_type="application/zip").pb
    statement = Statement([subject], PREDICATE_TYPE, json_format.MessageToDict(message))
    statement.validate()
    data = json_format.MessageToDict(statement.pb)
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def validate(data: bytes) -> None:
    """Raise ValueError unless ``data`` is an in-toto Statement v1 with a SLSA provenance v1 predicate."""
    from google.protobuf import json_format
    from in_toto_attestation.predicates.provenance.v1 import provenance_pb2
    from in_toto_attestation.v1 import statement_pb2
    from in_toto_attestation.v1.statement import Statement

    try:
        doc = json.loads(data)
        stmt = Statement.copy_from_pb(json_format.ParseDict(doc, statement_pb2.Statement()))
        stmt.validate()
        if stmt.pb.predicate_type != PREDICATE_TYPE:
            raise ValueError(f"predicateType is {stmt.pb.predicate_type!r}, not {PREDICATE_TYPE}")
        json_format.ParseDict(doc["predicate"], provenance_pb2.Provenance())
    except json_format.ParseError as exc:
        raise ValueError(str(exc)) from None


def summary(data: bytes) -> dict:
    """The facts verify needs from a stored statement: subject digest, source, epoch, and the bytecode
    compiler (``None`` when the statement predates that record)."""
    doc = json.loads(data)
    build = doc.get("predicate", {}).get("buildDefinition", {})
    src = build.get("externalParameters", {}).get("source", {})
    subjects = doc.get("subject") or [{}]
    return {
        "sha256": (subjects[0].get("digest") or {}).get("sha256", ""),
        "repository": src.get("repository", ""), "commit": src.get("commit", ""), "path": src.get("path", ""),
        "dirty": bool(src.get("dirty", True)),
        "source_date_epoch": int(build.get("internalParameters", {}).get("sourceDateEpoch") or 0),
        "bytecode": build.get("internalParameters", {}).get("bytecode"),
    }


def compiler_key_version(key: str) -> str:
    """``cpython-312/3.12.1/<magic>`` -> ``3.12.1`` ("" for ``none``)."""
    parts = key.split("/")
    return parts[1] if len(parts) == 3 else ""
