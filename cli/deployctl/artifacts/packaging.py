"""Reproducible Lambda zips from ``lambda_src/``.

What goes into a function's zip:

* its handler module (``[functions.<fn>].handler`` = ``pkg.module.func``) and,
  transitively, every module under ``lambda_src/`` that it imports (found by
  parsing the sources with :mod:`ast`; ``import x``, ``from x import y`` and
  relative imports, wherever they appear in the file), plus the ``__init__.py``
  of every package on the way. Imports of anything not under ``lambda_src/``
  (stdlib, boto3, third-party) are left to the runtime or the requirements;
* its pinned third-party dependencies, if ``lambda_src/requirements/<fn>.txt``
  exists: installed by pip (:mod:`deployctl.artifacts.deps`) for the Lambda
  platform (manylinux wheels for ``[lambda].architecture``, CPython of
  ``[lambda].runtime``, ``--only-binary=:all:``, ``--no-compile``), cached by
  the hash of the requirements file and the platform. ``bin/`` scripts,
  ``direct_url.json``, ``__pycache__``, ``*.pyc``, ``.DS_Store`` and ``tests``
  directories are dropped and ``RECORD`` files are rewritten to match (sorted,
  relative paths only).

Nothing outside ``lambda_src/``: every source and requirements file is read
through :class:`deployctl.artifacts.srctree.SourceTree`, which refuses (one
line naming the link and its target, exit 2) a symlink that resolves outside
``lambda_src/`` before anything is read, hashed, cached or written.

Reproducible (the writer in :mod:`deployctl.artifacts.zipbuild`, shared with
the layer zips): entries sorted, timestamps fixed (``SOURCE_DATE_EPOCH``, else
1980-01-01), permissions normalised (0644, or 0755 if the owner may execute the
source), deflate level fixed, no directory entries, no absolute paths. The
artifact's identity is the SHA-256 of the zip bytes.

Bytecode (:mod:`deployctl.artifacts.bytecode`): beside each ``.py``, its
``__pycache__/<stem>.cpython-3XX.pyc`` compiled by the runtime's own Python
(unchecked-hash pycs, code file names ``/var/task/<arcname>``), when one is found;
else one warning and no ``.pyc`` (the zip is still complete).

Build cache: ``<root>/.deployctl/cache/package/<input-hash>.zip`` where the
input hash covers the archive names, modes and content hashes of the selected
files, the requirements file, the runtime/architecture, the zip settings and
the bytecode compiler's version (or none) (never a path on this machine). An
unchanged function is not rebuilt.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from deployctl.artifacts import buildcache, bytecode
from deployctl.artifacts import layers as layer_build
from deployctl.artifacts.deps import install_requirements, pip_install_tree, read_requirements, tree_entries
from deployctl.artifacts.lambdas import check_functions  # noqa: F401 - re-exported: packaging.check_functions
from deployctl.artifacts.srctree import SOURCE_DIR, SourceTree
from deployctl.artifacts.zipbuild import (
    COMPRESS_LEVEL,
    DEFAULT_EPOCH,
    EXCLUDED_DIRS,
    EXCLUDED_FILES,
    EXCLUDED_SUFFIXES,
    FORMAT_VERSION,
    PLATFORMS,
    Artifact,
    Entry,
    cache_dir,
    cached_zip_ok,
    digest_file,
    place,
    platform,
    read_meta,
    read_nofollow,
    source_date_epoch,
    write_zip,
    zlib_version,
)
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed, UsageError
from deployctl.fsutil import atomic_write

# Public names. The shared machinery lives in zipbuild (writer, Artifact, Entry, cache), deps (pip) and
# srctree (the lambda_src guard); the names re-exported here keep working for existing callers.
__all__ = [
    "COMPRESS_LEVEL", "DEFAULT_EPOCH", "EXCLUDED_DIRS", "EXCLUDED_FILES", "EXCLUDED_SUFFIXES", "FORMAT_VERSION",
    "PLATFORMS", "REQUIREMENTS_DIR", "SOURCE_DIR",
    "Artifact", "Build", "Entry", "Scan",
    "build", "cache_dir", "check_functions", "default_output_dir", "digest_file", "input_hash",
    "install_requirements", "package", "pip_install_tree", "requirements_file", "select_sources",
    "source_date_epoch", "source_dir", "write_zip",
]

REQUIREMENTS_DIR = "requirements"


@dataclass
class Build:
    """What one ``package`` run produced: function zips and the layer zips they use."""

    functions: list[Artifact]
    layers: list[Artifact]
    pyc: bytecode.Choice | None = None  # the interpreter that compiled the .pyc (or none)

    @property
    def compiler(self) -> bytecode.Interpreter | None:
        return self.pyc.interpreter if self.pyc is not None else None


# -- selection ----------------------------------------------------------------------------------


class Scan:
    """Per-run memo of file digests, plus the imports of each module keyed by its content hash
    (kept in ``<cache>/imports.json``), so a warm run reads and hashes files but parses nothing.
    Every file is read once, through the lambda_src guard (``tree``)."""

    def __init__(self, cache: Path | None = None, tree: SourceTree | None = None):
        self.tree = tree
        self.digests: dict[Path, str] = {}
        self.path = cache / f"imports-v{FORMAT_VERSION}.json" if cache else None
        self.imports: dict[str, list[str]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                data = json.loads(read_nofollow(self.path))
                if isinstance(data, dict):
                    self.imports = data
            except (OSError, ValueError):
                pass

    def read(self, path: Path) -> bytes:
        assert self.tree is not None, "select_sources sets the tree"
        return self.tree.read(path).data

    def digest(self, path: Path) -> str:
        if path not in self.digests:
            self.digests[path] = hashlib.sha256(self.read(path)).hexdigest()
        return self.digests[path]

    def imports_of(self, path: Path, module: str, src: Path) -> list[str]:
        is_package = path.name == "__init__.py"
        key = f"{module}:{int(is_package)}:{self.digest(path)}"
        if key not in self.imports:
            self.imports[key] = sorted(set(_imports(_parse(self.read(path), path, src), module, is_package)))
            self.dirty = True
        return self.imports[key]

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        kept = self.imports
        if len(kept) > 5000:  # bounded: forget what this run did not see
            live = set(self.digests.values())
            kept = {k: v for k, v in kept.items() if k.rsplit(":", 1)[-1] in live}
        atomic_write(self.path, json.dumps(kept, sort_keys=True))


def source_dir(cfg: EnvConfig) -> Path:
    return cfg.root / SOURCE_DIR


def _module_file(src: Path, module: str) -> Path | None:
    parts = module.split(".")
    if not all(p.isidentifier() for p in parts):
        return None
    base = src.joinpath(*parts)
    if base.with_name(parts[-1] + ".py").is_file():
        return base.with_name(parts[-1] + ".py")
    if (base / "__init__.py").is_file():
        return base / "__init__.py"
    return None


def _is_package_dir(src: Path, module: str) -> bool:
    return src.joinpath(*module.split(".")).is_dir()


def _prefixes(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _parse(data: bytes, path: Path, src: Path) -> ast.Module:
    try:
        return ast.parse(data, filename=path.relative_to(src).as_posix())
    except SyntaxError as exc:
        raise ConfigError(f"syntax error: {exc.msg}", where=f"{SOURCE_DIR}/{path.relative_to(src).as_posix()}:{exc.lineno}",
                          hint="fix the source before packaging") from None


def _imports(tree: ast.Module, module: str, is_package: bool) -> Iterable[str]:
    """Candidate module names imported anywhere in ``tree`` (absolute, dotted)."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".") if package else []
                keep = len(parts) - (node.level - 1)
                if keep < 0 or (keep == 0 and not node.module):
                    continue
                base = ".".join(parts[:keep])
                target = ".".join(p for p in (base, node.module or "") if p)
            else:
                target = node.module or ""
            if not target:
                continue
            yield target
            for alias in node.names:
                if alias.name != "*":
                    yield f"{target}.{alias.name}"


def select_sources(src: Path, handler: str, function: str, scan: Scan | None = None) -> list[Entry]:
    """The handler's module and, transitively, the lambda_src modules it imports (each read once,
    through the guard; the entries carry the bytes that were read and hashed)."""
    scan = scan or Scan()
    if scan.tree is None:
        scan.tree = SourceTree(src)
    module, _, attr = handler.rpartition(".")
    start = _module_file(src, module)
    where = f"functions.{function}.handler"
    if start is None:
        raise ConfigError(
            f"handler module '{module}' not found under {SOURCE_DIR}/",
            where=where,
            hint=f"create {SOURCE_DIR}/{module.replace('.', '/')}.py or fix the handler path",
        )
    key = f"{module}:defines:{attr}:{scan.digest(start)}"
    if key not in scan.imports:
        scan.imports[key] = ["yes"] if _defines(_parse(scan.read(start), start, src), attr) else []
        scan.dirty = True
    if not scan.imports[key]:
        raise ConfigError(
            f"'{attr}' is not defined in {SOURCE_DIR}/{start.relative_to(src).as_posix()}",
            where=where,
            hint="define the handler function or fix the handler path",
        )
    seen: dict[str, Path] = {}
    queue: list[str] = list(_prefixes(module))
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        path = _module_file(src, name)
        if path is None:
            continue
        seen[name] = path
        for imported in scan.imports_of(path, name, src):
            for candidate in _prefixes(imported):
                if candidate not in seen and (_module_file(src, candidate) or _is_package_dir(src, candidate)):
                    queue.append(candidate)
    entries = []
    for path in set(seen.values()):
        rel = path.relative_to(src)
        if any(part in EXCLUDED_DIRS for part in rel.parts[:-1]):
            continue
        read = scan.tree.read(path)
        entries.append(Entry(rel.as_posix(), path, read.executable, read.data))
    return sorted(entries, key=lambda e: e.arcname)


def _defines(tree: ast.Module, name: str) -> bool:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return True
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == name for t in targets):
                return True
        if isinstance(node, ast.ImportFrom | ast.Import):
            if any((a.asname or a.name.split(".")[0]) == name for a in node.names):
                return True
    return False


# -- dependencies -------------------------------------------------------------------------------


def requirements_file(cfg: EnvConfig, function: str) -> Path | None:
    path = source_dir(cfg) / REQUIREMENTS_DIR / f"{function}.txt"
    return path if path.is_file() or path.is_symlink() else None


# -- zip ----------------------------------------------------------------------------------------


def input_hash(cfg: EnvConfig, entries: Sequence[Entry], req: Path | None, epoch: int,
               scan: Scan | None = None, layer_hashes: Sequence[str] = (), req_data: bytes | None = None,
               pyc: str = "none") -> str:
    """Hash of everything that determines the zip's bytes (no machine paths, no mtimes). ``pyc``:
    :attr:`bytecode.Choice.key`, the interpreter that compiled the bytecode (its version), or "none"."""
    platforms, pyver = platform(cfg)
    h = hashlib.sha256()
    settings = {"format": FORMAT_VERSION, "level": COMPRESS_LEVEL, "epoch": epoch, "platforms": platforms,
                "python": pyver, "zlib": zlib_version(), "bytecode": pyc}
    h.update(json.dumps(settings, sort_keys=True).encode() + b"\n")
    for entry in sorted(entries, key=lambda e: e.arcname):
        if entry.data is not None:
            digest = hashlib.sha256(entry.data).hexdigest()
        else:
            digest = (scan or Scan(tree=SourceTree(source_dir(cfg)))).digest(entry.source)
        h.update(f"{entry.arcname}\0{'755' if entry.executable else '644'}\0{digest}\n".encode())
    if req is not None:
        data = req_data if req_data is not None else read_requirements(cfg, req)
        h.update(b"requirements\0" + hashlib.sha256(data).hexdigest().encode() + b"\n")
    for layer_hash in layer_hashes:  # what the layers provide is left out of the zip
        h.update(b"layer\0" + layer_hash.encode() + b"\n")
    return h.hexdigest()


# -- the command ---------------------------------------------------------------------------------


def default_output_dir(cfg: EnvConfig) -> Path:
    return cfg.root / ".deployctl" / "dist"


def _output_dir(out: Path, *, given: bool) -> Path:
    """The directory the zips go to, created if needed; a file in the way or no permission is one line."""
    where = "--output-dir" if given else str(out)
    for probe in (out, *out.parents):
        if probe.exists() or probe.is_symlink():
            if not probe.is_dir():
                what = f"{probe} is not a directory" + ("" if probe == out else f" (needed for {out})")
                if given:
                    raise UsageError(what, where=where, hint="give a directory; it is created if missing")
                raise OperationFailed(what, hint="move it out of the way: deployctl keeps its work files there")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OperationFailed(f"cannot create {out}: {exc.strerror}", where=where,
                              hint="pick a directory you can write to") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise OperationFailed(f"{out} is not writable", where=where, hint="pick a directory you can write to")
    return out


def package(cfg: EnvConfig, functions: Sequence[str] | None = None, output_dir: Path | None = None) -> list[Artifact]:
    """Build (or take from the cache) one zip per function; returns them in config order."""
    return build(cfg, functions, output_dir).functions


def build(cfg: EnvConfig, functions: Sequence[str] | None = None, output_dir: Path | None = None) -> Build:
    """Build the layers the functions use (first: function zips leave out what they provide), then the functions.

    Every function's sources and requirements are selected and checked (the lambda_src guard) before
    anything is built, so a refused link leaves no zip, no cache entry and no output behind."""
    names = check_functions(cfg, functions)
    src = source_dir(cfg)
    if not src.is_dir():
        raise ConfigError(f"no {SOURCE_DIR}/ directory", where=str(cfg.root), hint="the Lambda sources live there")
    tree = SourceTree(src)
    layer_names = layer_build.used_by(cfg, names)
    layer_reqs = {name: layer_build.read_checked(cfg, name, tree) for name in layer_names}
    cache = cache_dir(cfg)
    scan = Scan(cache, tree)
    selected = {name: _select(cfg, name, src, scan) for name in names}
    pyc = bytecode.find(cfg)  # a bad explicit interpreter is refused before anything is written
    out = _output_dir(Path(output_dir) if output_dir else default_output_dir(cfg), given=output_dir is not None)
    epoch = source_date_epoch()
    bytecode.warn(pyc)
    built_layers = {name: layer_build.build_layer(cfg, name, out, cache, epoch, req=layer_reqs[name], pyc=pyc)
                    for name in layer_names}
    try:
        arts = [_build_one(cfg, name, out, cache, epoch, scan, selected[name],
                           [built_layers[n] for n in cfg.functions[name].get("layers", [])], pyc) for name in names]
    finally:
        scan.save()
    # bounded cache: older entries go, never the ones this build used
    buildcache.trim(cache, protect=[a.input_hash for a in [*arts, *built_layers.values()]])
    return Build(functions=arts, layers=list(built_layers.values()), pyc=pyc)


@dataclass
class _Selected:
    entries: list[Entry]
    req: Path | None
    req_data: bytes | None


def _select(cfg: EnvConfig, function: str, src: Path, scan: Scan) -> _Selected:
    entries = select_sources(src, cfg.functions[function]["handler"], function, scan)
    req = requirements_file(cfg, function)
    assert scan.tree is not None
    return _Selected(entries, req, read_requirements(cfg, req, tree=scan.tree) if req is not None else None)


def _without_layers(entries: list[Entry], layers: Sequence[Artifact]) -> list[Entry]:
    """Leave out what the function's layers provide (a vendored copy of a layer's package)."""
    provided = {name for layer in layers for name in layer.provides}
    if not provided:
        return entries
    kept = []
    for e in entries:
        top = e.arcname.split("/", 1)[0]
        if top in provided or (top.endswith(".py") and top[:-3] in provided) or f"{top}.py" in provided:
            continue
        kept.append(e)
    return kept


def _build_one(cfg: EnvConfig, function: str, out: Path, cache: Path, epoch: int, scan: Scan, selected: _Selected,
               layers: Sequence[Artifact] = (), pyc: bytecode.Choice | None = None) -> Artifact:
    entries = _without_layers(selected.entries, layers)
    req = selected.req
    pyc = pyc or bytecode.Choice(None, platform(cfg)[1], disabled=True)
    key = input_hash(cfg, entries, req, epoch, scan, [layer.input_hash for layer in layers], req_data=selected.req_data,
                     pyc=pyc.key)
    cached_zip = cache / "package" / f"{key}.zip"
    meta_path = cached_zip.with_suffix(".json")
    meta = read_meta(meta_path)
    cached = cached_zip_ok(cached_zip, meta)
    if not cached:
        if req is not None:
            tree = install_requirements(cfg, req, cache, data=selected.req_data)
            entries = _without_layers([*entries, *tree_entries(tree)], layers)
        if pyc.interpreter is not None:  # lambda_src modules: compiled from the bytes the guard read
            entries += bytecode.compile_entries(entries, pyc.interpreter, bytecode.FUNCTION_ROOT,
                                                strict=frozenset(e.arcname for e in selected.entries))
        write_zip(entries, cached_zip, epoch)
        sha_hex, sha_b64, size = digest_file(cached_zip)
        meta = {"sha256": sha_hex, "code_sha256": sha_b64, "size": size, "files": len(entries)}
        atomic_write(meta_path, json.dumps(meta, sort_keys=True))
    assert meta is not None
    dest = out / f"{function}.zip"
    place(cached_zip, dest)
    return Artifact(function=function, path=dest, sha256=meta["sha256"], code_sha256=meta["code_sha256"],
                    size=meta["size"], files=meta["files"], input_hash=key, cached=cached,
                    layers=[layer.function for layer in layers])
