"""A CycloneDX SBOM per artifact, read from the artifact's own zip bytes.

Built with ``cyclonedx-python-lib`` (imported here, lazily: ``deployctl --help`` never loads it).

* **Packages**: every ``*.dist-info/METADATA`` in the zip (a layer's ``python/`` tree, or a
  function's own ``requirements/<fn>.txt``): name, version, ``pkg:pypi`` purl, the license from
  the metadata (``License-Expression``, else a short ``License`` field, else the ``License ::``
  classifiers) and the wheel's SHA-256 when the requirements file pins exactly one ``--hash`` for
  that package (pip refused any other file; with several hashes the candidates are listed as a
  property, with none it says so).
* **Own files**: every zip entry no package's ``RECORD`` claims (a function's modules from
  ``lambda_src/``), with its path and SHA-256.
* **Bytecode** (``__pycache__/<stem>.cpython-3XX.pyc``, compiled at build time by the runtime's
  Python): derived files. The ``.pyc`` of a package's module belongs to that package; any other is
  a file component with its path, the SHA-256 of its bytes in the zip, the source it was compiled
  from (``deployctl:derived_from``) and the magic number of its header (``deployctl:pyc_magic``:
  which CPython wrote it). The compiling interpreter's full version is in the provenance.
* **Layers** a function lists: one component each, with the layer zip's SHA-256 (its own SBOM
  details it).

Reproducible: the document depends only on the zip's bytes, the requirements file and the
layers' digests. ``metadata.timestamp`` is ``SOURCE_DATE_EPOCH`` (the same one the zip's entries
carry), every ``bom-ref`` is derived from the content, and the serial number is a UUID computed
from the rest of the document.
"""

from __future__ import annotations

import csv
import email.parser
import hashlib
import io
import json
import re
import uuid
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from deployctl import __version__

SPEC_VERSION = "1.6"
MEDIA_TYPE = "application/vnd.cyclonedx+json"
SERIAL_NAMESPACE = uuid.UUID("6b1f7c1e-3a43-5d1b-9a1f-2f0d3c6f5a10")  # deployctl's, fixed forever


@dataclass
class Package:
    name: str
    version: str
    licenses: list[str]
    wheel_sha256: str = ""
    wheel_candidates: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)


@dataclass
class Derived:
    """A ``.pyc`` of the zip compiled from one of its ``.py`` entries."""

    path: str
    sha256: str
    source: str  # the .py entry it was compiled from
    magic: str  # hex of its header's first 4 bytes (the CPython version that wrote it)


@dataclass
class Contents:
    packages: list[Package]
    files: list[tuple[str, str]]  # (path in the zip, sha256 hex) of entries no package claims
    derived: list[Derived] = field(default_factory=list)  # bytecode of those entries


def pyc_source(name: str) -> str | None:
    """``pkg/__pycache__/mod.cpython-312.pyc`` -> ``pkg/mod.py`` (PEP 3147), else None."""
    parts = name.split("/")
    if len(parts) < 2 or parts[-2] != "__pycache__" or not parts[-1].endswith(".pyc"):
        return None
    stem = parts[-1].removesuffix(".pyc").rsplit(".", 1)[0]
    return "/".join([*parts[:-2], f"{stem}.py"])


def normalise(name: str) -> str:
    """PEP 503 name normalisation."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_hashes(requirements: Path | None) -> dict[str, tuple[str, list[str]]]:
    """``{normalised name: (pinned version, [sha256, ...])}`` from a requirements file's ``==`` pins."""
    if requirements is None or not requirements.is_file():
        return {}
    text = requirements.read_text(encoding="utf-8").replace("\\\n", " ")
    out: dict[str, tuple[str, list[str]]] = {}
    for line in text.splitlines():
        line = line.split(" #", 1)[0].strip()
        if not line or line.startswith(("#", "-")):
            continue
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        if not m:
            continue
        hashes = re.findall(r"--hash[=\s]+sha256:([0-9a-fA-F]{64})", line)
        out[normalise(m.group(1))] = (m.group(3), sorted({h.lower() for h in hashes}))
    return out


def _licenses(meta) -> list[str]:
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return [expression]
    declared = (meta.get("License") or "").strip()
    if declared and "\n" not in declared and len(declared) <= 100 and declared.upper() != "UNKNOWN":
        return [declared]
    found = []
    for classifier in meta.get_all("Classifier") or []:
        parts = [p.strip() for p in classifier.split("::")]
        if parts[0] == "License" and len(parts) > 1 and parts[-1] not in ("OSI Approved", "Other/Proprietary License"):
            found.append(parts[-1])
    return sorted(set(found))


def read_zip(zip_path: Path, requirements: Path | None = None) -> Contents:
    """The packages and the unclaimed files of a zip."""
    pins = pinned_hashes(requirements)
    packages: list[Package] = []
    claimed: set[str] = set()
    with zipfile.ZipFile(zip_path) as zf:
        names = sorted(zf.namelist())
        for name in names:
            parts = name.split("/")
            if len(parts) < 2 or not parts[-2].endswith(".dist-info") or parts[-1] != "METADATA":
                continue
            base = "/".join(parts[:-2])
            base = f"{base}/" if base else ""
            dist_info = "/".join(parts[:-1])
            meta = email.parser.BytesParser().parsebytes(zf.read(name), headersonly=True)
            pkg = Package(name=str(meta.get("Name", "")).strip(), version=str(meta.get("Version", "")).strip(),
                          licenses=_licenses(meta))
            pinned = pins.get(normalise(pkg.name))
            if pinned and pinned[0] == pkg.version:
                if len(pinned[1]) == 1:
                    pkg.wheel_sha256 = pinned[1][0]
                else:
                    pkg.wheel_candidates = pinned[1]
            owned = {f"{dist_info}/"}
            record = f"{dist_info}/RECORD"
            if record in names:
                for row in csv.reader(io.StringIO(zf.read(record).decode("utf-8"))):
                    if row:
                        owned.add(base + row[0])
            pkg.files = sorted(owned)
            claimed |= owned
            packages.append(pkg)
        owner = {f: pkg for pkg in packages for f in pkg.files}
        files, derived = [], []
        present = set(names)
        for name in names:
            if name in claimed or any(name.startswith(p) for p in claimed if p.endswith("/")):
                continue
            data = zf.read(name)
            source = pyc_source(name)
            if source is not None and source in present:
                if source in owner:  # bytecode of a package's module: part of that package
                    owner[source].files.append(name)
                    continue
                derived.append(Derived(name, hashlib.sha256(data).hexdigest(), source, data[:4].hex()))
                continue
            files.append((name, hashlib.sha256(data).hexdigest()))
    packages.sort(key=lambda p: (normalise(p.name), p.version))
    for pkg in packages:
        pkg.files.sort()
    return Contents(packages=packages, files=files, derived=derived)


def _license_factory():
    try:
        from cyclonedx.contrib.license.factories import LicenseFactory
    except ImportError:  # cyclonedx-python-lib before the contrib package
        from cyclonedx.factory.license import LicenseFactory
    return LicenseFactory()


def preload() -> None:
    """Import what :func:`document` needs (a caller may do it in a thread while it waits on something else)."""
    from cyclonedx.model.bom import Bom  # noqa: F401
    from cyclonedx.model.component import Component  # noqa: F401
    from cyclonedx.output.json import JsonV1Dot6  # noqa: F401
    from packageurl import PackageURL  # noqa: F401


def document(*, kind: str, name: str, zip_path: Path, sha256: str, epoch: int,
             requirements: Path | None = None, layers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The CycloneDX 1.6 JSON of one artifact (``kind`` "function" or "layer"); ``layers`` = (name, sha256)."""
    from cyclonedx.model import HashAlgorithm, HashType, Property
    from cyclonedx.model.bom import Bom
    from cyclonedx.model.component import Component, ComponentType
    from cyclonedx.output.json import JsonV1Dot6
    from packageurl import PackageURL

    contents = read_zip(zip_path, requirements)
    factory = _license_factory() if contents.packages else None  # its SPDX index is slow to load: only for packages

    def sha(hex_digest: str) -> list:
        return [HashType(alg=HashAlgorithm.SHA_256, content=hex_digest)]

    root = Component(
        type=ComponentType.APPLICATION if kind == "function" else ComponentType.LIBRARY,
        name=name, version=sha256[:16], bom_ref=f"{kind}:{name}", hashes=sha(sha256),
        description=f"Lambda {kind} zip {name} (sha256 {sha256})",
        properties=[Property(name="deployctl:kind", value=kind), Property(name="deployctl:sha256", value=sha256)],
    )
    components = []
    for pkg in contents.packages:
        props = []
        if not pkg.wheel_sha256:
            props.append(Property(name="deployctl:wheel_sha256",
                                  value=("one of " + " ".join(pkg.wheel_candidates)) if pkg.wheel_candidates
                                  else "unknown (the requirements file pins no single --hash for it)"))
        components.append(Component(
            type=ComponentType.LIBRARY, name=pkg.name, version=pkg.version,
            purl=PackageURL(type="pypi", name=normalise(pkg.name), version=pkg.version),
            bom_ref=f"pkg:pypi/{normalise(pkg.name)}@{pkg.version}",
            hashes=sha(pkg.wheel_sha256) if pkg.wheel_sha256 else [],
            licenses=[factory.make_from_string(text) for text in pkg.licenses],
            properties=props,
        ))
    for path, digest in contents.files:
        components.append(Component(type=ComponentType.FILE, name=path, bom_ref=f"file:{path}", hashes=sha(digest)))
    for pyc in contents.derived:
        components.append(Component(
            type=ComponentType.FILE, name=pyc.path, bom_ref=f"file:{pyc.path}", hashes=sha(pyc.sha256),
            description=f"bytecode compiled from {pyc.source} at build time (the provenance names the interpreter)",
            properties=[Property(name="deployctl:derived_from", value=pyc.source),
                        Property(name="deployctl:pyc_magic", value=pyc.magic)],
        ))
    for layer, digest in layers:
        components.append(Component(
            type=ComponentType.LIBRARY, name=layer, version=digest[:16], bom_ref=f"layer:{layer}", hashes=sha(digest),
            description=f"Lambda layer {layer} (its own SBOM lists its packages)",
            properties=[Property(name="deployctl:kind", value="layer")],
        ))

    def render(serial: uuid.UUID) -> str:
        bom = Bom(serial_number=serial)
        bom.metadata.timestamp = datetime.fromtimestamp(epoch, UTC)
        bom.metadata.component = root
        bom.metadata.tools.components.add(Component(type=ComponentType.APPLICATION, name="deployctl",
                                                    version=__version__, bom_ref="tool:deployctl"))
        for component in components:
            bom.components.add(component)
        bom.register_dependency(root, components)
        return JsonV1Dot6(bom).output_as_string(indent=None)

    draft = render(uuid.UUID(int=0))
    serial = uuid.uuid5(SERIAL_NAMESPACE, hashlib.sha256(draft.encode()).hexdigest())
    data = json.loads(render(serial))
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode()


def validate(data: bytes) -> str | None:
    """The first CycloneDX 1.6 schema error of ``data``, or None (needs cyclonedx-python-lib[json-validation])."""
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())
    return None if error is None else str(error)
