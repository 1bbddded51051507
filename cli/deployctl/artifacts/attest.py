"""The SBOM and the provenance of each artifact of a build, as bytes and as files.

Both documents sit next to their zip, under the zip's content address: for
``lambda/<fn>/<sha256>.zip`` they are ``lambda/<fn>/<sha256>.cdx.json`` (CycloneDX) and
``lambda/<fn>/<sha256>.intoto.json`` (in-toto/SLSA), likewise under ``layers/``. So the
CodeSha256 Lambda reports for any version leads to its documents, whichever manifest
recorded it.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from deployctl import naming
from deployctl.artifacts import layers as layer_build
from deployctl.artifacts import packaging, provenance, sbom
from deployctl.artifacts.packaging import Artifact, Build
from deployctl.artifacts.source import Source
from deployctl.config import EnvConfig
from deployctl.pythons import Interpreter

SBOM_SUFFIX = ".cdx.json"
PROVENANCE_SUFFIX = ".intoto.json"


@dataclass
class Documents:
    kind: str
    name: str
    sha256: str
    key: str  # the zip's S3 key
    sbom: bytes
    provenance: bytes

    @property
    def sbom_key(self) -> str:
        return sidecar_key(self.key, SBOM_SUFFIX)

    @property
    def provenance_key(self) -> str:
        return sidecar_key(self.key, PROVENANCE_SUFFIX)


def sidecar_key(zip_key: str, suffix: str) -> str:
    return zip_key.removesuffix(".zip") + suffix


def zip_key(kind: str, name: str, sha256: str) -> str:
    return (naming.layer_key if kind == "layer" else naming.artifact_key)(name, sha256)


def hex_of(code_sha256: str) -> str:
    """Lambda's base64 CodeSha256 as hex ("" if it is not a SHA-256)."""
    try:
        raw = base64.b64decode(code_sha256, validate=True)
    except (ValueError, TypeError):
        return ""
    return raw.hex() if len(raw) == 32 else ""


def _requirements(cfg: EnvConfig, art: Artifact) -> Path | None:
    if art.kind == "layer":
        return layer_build.requirements_path(cfg, art.function)
    return packaging.requirements_file(cfg, art.function)


def for_artifact(cfg: EnvConfig, art: Artifact, source: Source, epoch: int,
                 layer_digests: dict[str, str], compiler: Interpreter | None = None) -> Documents:
    """``compiler``: the interpreter that compiled the build's bytecode (:attr:`Build.bytecode`)."""
    req = _requirements(cfg, art)
    req_rel = req.relative_to(cfg.root).as_posix() if req is not None else ""
    layers = [(name, layer_digests[name]) for name in art.layers if name in layer_digests] \
        if art.kind == "function" else []
    key = zip_key(art.kind, art.function, art.sha256)
    runtime = str(cfg.get("lambda.runtime", "python3.12"))
    architecture = str(cfg.get("lambda.architecture", "x86_64"))
    platforms, pyver = packaging.PLATFORMS.get(architecture, ()), runtime.removeprefix("python")
    bom = sbom.document(kind=art.kind, name=art.function, zip_path=art.path, sha256=art.sha256, epoch=epoch,
                        requirements=req, layers=layers)
    prov = provenance.document(
        kind=art.kind, name=art.function, key=key, sha256=art.sha256, zip_path=art.path, env=cfg.name,
        source=source, epoch=epoch, runtime=runtime,
        architecture=architecture, python=pyver, platforms=platforms,
        requirements=req, requirements_rel=req_rel, layers=layers, compiler=compiler)
    return Documents(kind=art.kind, name=art.function, sha256=art.sha256, key=key, sbom=bom, provenance=prov)


def for_build(cfg: EnvConfig, build: Build, source: Source, epoch: int) -> Iterator[Documents]:
    """The documents of every artifact of ``build``: layers first, then functions."""
    digests = {layer.function: layer.sha256 for layer in build.layers}
    for art in [*build.layers, *build.functions]:
        yield for_artifact(cfg, art, source, epoch, digests, build.compiler)
