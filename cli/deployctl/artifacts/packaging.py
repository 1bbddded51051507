"""Reproducible Lambda zips from ``lambda_src/``.

What goes into a function's zip:

* its handler module (``[functions.<fn>].handler`` = ``pkg.module.func``) and,
  transitively, every module under ``lambda_src/`` that it imports (found by
  parsing the sources with :mod:`ast`; ``import x``, ``from x import y`` and
  relative imports, wherever they appear in the file), plus the ``__init__.py``
  of every package on the way. Imports of anything not under ``lambda_src/``
  (stdlib, boto3, third-party) are left to the runtime or the requirements;
* its pinned third-party dependencies, if ``lambda_src/requirements/<fn>.txt``
  exists: installed by pip (through :mod:`deployctl.runner`) for the Lambda
  platform (manylinux wheels for ``[lambda].architecture``, CPython of
  ``[lambda].runtime``, ``--only-binary=:all:``, ``--no-compile``), cached by
  the hash of the requirements file and the platform. ``bin/`` scripts,
  ``direct_url.json``, ``__pycache__``, ``*.pyc``, ``.DS_Store`` and ``tests``
  directories are dropped and ``RECORD`` files are rewritten to match (sorted,
  relative paths only).

Reproducible: entries sorted, timestamps fixed (``SOURCE_DATE_EPOCH``, else
1980-01-01), permissions normalised (0644, or 0755 if the owner may execute the
source), deflate level fixed, no directory entries, no absolute paths. The
artifact's identity is the SHA-256 of the zip bytes.

Build cache: ``<root>/.deployctl/cache/package/<input-hash>.zip`` where the
input hash covers the archive names, modes and content hashes of the selected
files, the requirements file, the runtime/architecture and the zip settings
(never a path on this machine). An unchanged function is not rebuilt.
"""

from __future__ import annotations

import ast
import base64
import csv
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deployctl import runner
from deployctl.config import EnvConfig
from deployctl.errors import ConfigError, OperationFailed, UsageError
from deployctl.fsutil import atomic_write

FORMAT_VERSION = "1"
COMPRESS_LEVEL = 6
DEFAULT_EPOCH = 315532800  # 1980-01-01T00:00:00Z, the earliest time a zip can store
SOURCE_DIR = "lambda_src"
REQUIREMENTS_DIR = "requirements"
EXCLUDED_DIRS = frozenset({"__pycache__", "tests", ".pytest_cache", ".mypy_cache"})
EXCLUDED_FILES = frozenset({".DS_Store"})
EXCLUDED_SUFFIXES = (".pyc", ".pyo")
PLATFORMS = {
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
    "arm64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
}


@dataclass
class Artifact:
    """One built zip."""

    function: str
    path: Path
    sha256: str  # hex of the zip bytes: the artifact's identity
    code_sha256: str  # base64 of the same digest, as Lambda reports CodeSha256
    size: int
    files: int
    input_hash: str
    cached: bool
    kind: str = "function"  # or "layer" (then ``function`` holds the layer's name)
    provides: list[str] = field(default_factory=list)  # layers: top-level names under python/
    layers: list[str] = field(default_factory=list)  # functions: the layers attached (their content is left out)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["path"] = str(self.path)
        if self.kind == "layer":
            data["layer"] = data.pop("function")
            data.pop("layers")
        else:
            data.pop("provides")
        return data


@dataclass
class Build:
    """What one ``package`` run produced: function zips and the layer zips they use."""

    functions: list[Artifact]
    layers: list[Artifact]


@dataclass(frozen=True)
class Entry:
    arcname: str
    source: Path
    executable: bool


# -- selection ----------------------------------------------------------------------------------


class Scan:
    """Per-run memo of file digests, plus the imports of each module keyed by its content hash
    (kept in ``<cache>/imports.json``), so a warm run reads and hashes files but parses nothing."""

    def __init__(self, cache: Path | None = None):
        self.digests: dict[Path, str] = {}
        self.path = cache / f"imports-v{FORMAT_VERSION}.json" if cache else None
        self.imports: dict[str, list[str]] = {}
        self.dirty = False
        if self.path is not None:
            try:
                data = json.loads(self.path.read_text())
                if isinstance(data, dict):
                    self.imports = data
            except (OSError, ValueError):
                pass

    def digest(self, path: Path) -> str:
        if path not in self.digests:
            self.digests[path] = hashlib.sha256(path.read_bytes()).hexdigest()
        return self.digests[path]

    def imports_of(self, path: Path, module: str, src: Path) -> list[str]:
        is_package = path.name == "__init__.py"
        key = f"{module}:{int(is_package)}:{self.digest(path)}"
        if key not in self.imports:
            self.imports[key] = sorted(set(_imports(_parse(path, src), module, is_package)))
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


def _parse(path: Path, src: Path) -> ast.Module:
    try:
        return ast.parse(path.read_bytes(), filename=path.relative_to(src).as_posix())
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
    """The handler's module and, transitively, the lambda_src modules it imports."""
    scan = scan or Scan()
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
        scan.imports[key] = ["yes"] if _defines(_parse(start, src), attr) else []
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
        entries.append(Entry(rel.as_posix(), path, _executable(path)))
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


def _executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o100)


def _excluded(rel: Path) -> bool:
    return (
        any(part in EXCLUDED_DIRS for part in rel.parts[:-1])
        or rel.name in EXCLUDED_FILES
        or rel.name in EXCLUDED_DIRS
        or rel.suffix in EXCLUDED_SUFFIXES
    )


# -- dependencies -------------------------------------------------------------------------------


def requirements_file(cfg: EnvConfig, function: str) -> Path | None:
    path = source_dir(cfg) / REQUIREMENTS_DIR / f"{function}.txt"
    return path if path.is_file() else None


def _platform(cfg: EnvConfig) -> tuple[tuple[str, ...], str]:
    arch = cfg.get("lambda.architecture", "x86_64")
    runtime = cfg.get("lambda.runtime", "python3.12")
    return PLATFORMS[arch], runtime.removeprefix("python")


def _deps_key(cfg: EnvConfig, req: Path) -> str:
    platforms, pyver = _platform(cfg)
    h = hashlib.sha256()
    h.update(f"deployctl-deps/{FORMAT_VERSION}\n{','.join(platforms)}\ncp{pyver}\n".encode())
    h.update(req.read_bytes())
    return h.hexdigest()


def install_requirements(cfg: EnvConfig, req: Path, cache: Path) -> Path:
    """Install ``req`` for the Lambda platform into a cached tree; returns the tree."""
    key = _deps_key(cfg, req)
    platforms, pyver = _platform(cfg)
    platform_args = [arg for plat in platforms for arg in ("--platform", plat)]
    platform_args += ["--implementation", "cp", "--python-version", pyver]
    return pip_install_tree(
        cfg, req, cache / "deps" / key, staging_dir=_mkdir(cache / "tmp"), pip_args=platform_args, marker_text=key,
        clean=True, failure="pip could not install the requirements",
        hint="pin versions that publish manylinux wheels for the Lambda platform; --debug shows pip's output",
    )


def pip_install_tree(cfg: EnvConfig, req: Path, tree: Path, *, staging_dir: Path, pip_args: list[str],
                     marker_text: str, clean: bool, failure: str, hint: str) -> Path:
    """``pip install --target`` of ``req`` (binary wheels only, no bytecode) into ``tree``, atomically.

    Built in a staging dir beside the cache and moved into place with its ``.complete`` marker;
    a tree that already has the marker is reused (and a concurrent build that wins the race is
    as good as ours).
    """
    if (tree / ".complete").is_file():
        return tree
    staging = Path(tempfile.mkdtemp(prefix="deps-", dir=staging_dir))
    try:
        target = staging / "t"
        argv = [sys.executable, "-m", "pip", "install", "--requirement", str(req), "--target", str(target), *pip_args,
                "--only-binary=:all:", "--no-compile", "--disable-pip-version-check", "--no-input", "--quiet"]
        result = runner.run(argv, env={"PYTHONDONTWRITEBYTECODE": "1", "PIP_NO_COMPILE": "1"})
        if not result.ok:
            last = next((ln for ln in reversed(result.stderr.splitlines()) if ln.strip()), "no output")
            raise OperationFailed(f"{failure}: {last.strip()}", where=str(req.relative_to(cfg.root)), hint=hint)
        target.mkdir(exist_ok=True)
        if clean:
            _clean_tree(target)
        (target / ".complete").write_text(marker_text + "\n")
        tree.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(target, tree)
        except OSError:
            if not (tree / ".complete").is_file():  # lost a race with another build: theirs is as good
                raise
        return tree
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _clean_tree(target: Path) -> None:
    """Drop scripts, caches and install metadata that embed paths; normalise RECORD files."""
    shutil.rmtree(target / "bin", ignore_errors=True)
    for dist_info in target.glob("*.dist-info"):
        for name in ("direct_url.json",):
            (dist_info / name).unlink(missing_ok=True)
    for record in target.glob("*.dist-info/RECORD"):
        record.write_bytes(_normalise_record(record.read_text(encoding="utf-8"), target))


def _normalise_record(text: str, target: Path) -> bytes:
    rows = []
    for row in csv.reader(io.StringIO(text)):
        if not row:
            continue
        name = row[0].replace("\\", "/")
        rel = Path(name)
        if name.startswith("/") or ".." in rel.parts or _excluded(rel) or rel.name == "direct_url.json":
            continue
        if not (target / rel).exists():
            continue
        rows.append([name, *row[1:]])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerows(sorted(rows))
    return out.getvalue().encode()


def _tree_entries(tree: Path) -> list[Entry]:
    entries = []
    for dirpath, dirnames, filenames in os.walk(tree):
        dirnames[:] = sorted(d for d in dirnames if d not in EXCLUDED_DIRS)
        for name in filenames:
            path = Path(dirpath) / name
            rel = path.relative_to(tree)
            if name == ".complete" and len(rel.parts) == 1 or _excluded(rel) or path.is_symlink() and not path.exists():
                continue
            entries.append(Entry(rel.as_posix(), path, _executable(path)))
    return entries


# -- zip ----------------------------------------------------------------------------------------


def source_date_epoch() -> int:
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_EPOCH
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"SOURCE_DATE_EPOCH must be a Unix timestamp, found {raw!r}", where="SOURCE_DATE_EPOCH") from None
    return max(value, DEFAULT_EPOCH)


def write_zip(entries: Sequence[Entry], dest: Path, epoch: int) -> None:
    """Write a reproducible zip of ``entries`` to ``dest`` (via a temp file + rename)."""
    date_time = time.gmtime(epoch)[:6]
    names = [e.arcname for e in entries]
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"two files would land at {', '.join(dupes)} in the zip",
                          hint="a requirement ships a module with the same name as one in lambda_src")
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as zf:
            for entry in sorted(entries, key=lambda e: e.arcname):
                info = zipfile.ZipInfo(entry.arcname, date_time)
                info.create_system = 3  # unix, so external_attr carries the mode
                info.external_attr = (0o100755 if entry.executable else 0o100644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, entry.source.read_bytes(), compress_type=zipfile.ZIP_DEFLATED,
                            compresslevel=COMPRESS_LEVEL)
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def input_hash(cfg: EnvConfig, entries: Sequence[Entry], req: Path | None, epoch: int,
               scan: Scan | None = None, layer_hashes: Sequence[str] = ()) -> str:
    """Hash of everything that determines the zip's bytes (no machine paths, no mtimes)."""
    platforms, pyver = _platform(cfg)
    h = hashlib.sha256()
    settings = {"format": FORMAT_VERSION, "level": COMPRESS_LEVEL, "epoch": epoch, "platforms": platforms,
                "python": pyver, "zlib": _zlib_version()}
    h.update(json.dumps(settings, sort_keys=True).encode() + b"\n")
    for entry in sorted(entries, key=lambda e: e.arcname):
        digest = (scan or Scan()).digest(entry.source)
        h.update(f"{entry.arcname}\0{'755' if entry.executable else '644'}\0{digest}\n".encode())
    if req is not None:
        h.update(b"requirements\0" + hashlib.sha256(req.read_bytes()).hexdigest().encode() + b"\n")
    for layer_hash in layer_hashes:  # what the layers provide is left out of the zip
        h.update(b"layer\0" + layer_hash.encode() + b"\n")
    return h.hexdigest()


def _zlib_version() -> str:
    import zlib

    return zlib.ZLIB_RUNTIME_VERSION


def digest_file(path: Path) -> tuple[str, str, int]:
    h = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), base64.b64encode(h.digest()).decode(), size


# -- the command ---------------------------------------------------------------------------------


def cache_dir(cfg: EnvConfig) -> Path:
    return cfg.root / ".deployctl" / "cache"


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


def check_functions(cfg: EnvConfig, functions: Sequence[str] | None) -> list[str]:
    """The requested function keys (all of them if none), validated against [functions]."""
    known = list(cfg.functions)
    if not functions:
        return known
    unknown = [f for f in functions if f not in cfg.functions]
    if unknown:
        raise UsageError(
            f"unknown function {', '.join(repr(u) for u in unknown)}",
            where="--function",
            hint=f"known functions: {', '.join(known) or 'none'} (from [functions] in the env config)",
        )
    return list(dict.fromkeys(functions))


def package(cfg: EnvConfig, functions: Sequence[str] | None = None, output_dir: Path | None = None) -> list[Artifact]:
    """Build (or take from the cache) one zip per function; returns them in config order."""
    return build(cfg, functions, output_dir).functions


def build(cfg: EnvConfig, functions: Sequence[str] | None = None, output_dir: Path | None = None) -> Build:
    """Build the layers the functions use (first: function zips leave out what they provide), then the functions."""
    from deployctl.artifacts import layers as layer_build

    names = check_functions(cfg, functions)
    src = source_dir(cfg)
    if not src.is_dir():
        raise ConfigError(f"no {SOURCE_DIR}/ directory", where=str(cfg.root), hint="the Lambda sources live there")
    out = _output_dir(Path(output_dir) if output_dir else default_output_dir(cfg), given=output_dir is not None)
    cache = cache_dir(cfg)
    epoch = source_date_epoch()
    scan = Scan(cache)
    built_layers = {name: layer_build.build_layer(cfg, name, out, cache, epoch)
                    for name in layer_build.used_by(cfg, names)}
    try:
        arts = [_build_one(cfg, name, src, out, cache, epoch, scan,
                           [built_layers[n] for n in cfg.functions[name].get("layers", [])]) for name in names]
    finally:
        scan.save()
    return Build(functions=arts, layers=list(built_layers.values()))


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


def _build_one(cfg: EnvConfig, function: str, src: Path, out: Path, cache: Path, epoch: int, scan: Scan,
               layers: Sequence[Artifact] = ()) -> Artifact:
    entries = _without_layers(select_sources(src, cfg.functions[function]["handler"], function, scan), layers)
    req = requirements_file(cfg, function)
    key = input_hash(cfg, entries, req, epoch, scan, [layer.input_hash for layer in layers])
    cached_zip = cache / "package" / f"{key}.zip"
    meta_path = cached_zip.with_suffix(".json")
    cached = False
    meta = _read_meta(meta_path)
    if meta and cached_zip.is_file() and cached_zip.stat().st_size == meta.get("size"):
        cached = True
    else:
        if req is not None:
            tree = install_requirements(cfg, req, cache)
            entries = _without_layers([*entries, *_tree_entries(tree)], layers)
        write_zip(entries, cached_zip, epoch)
        sha_hex, sha_b64, size = digest_file(cached_zip)
        meta = {"sha256": sha_hex, "code_sha256": sha_b64, "size": size, "files": len(entries)}
        atomic_write(meta_path, json.dumps(meta, sort_keys=True))
    dest = out / f"{function}.zip"
    _place(cached_zip, dest)
    return Artifact(function=function, path=dest, sha256=meta["sha256"], code_sha256=meta["code_sha256"],
                    size=meta["size"], files=meta["files"], input_hash=key, cached=cached,
                    layers=[layer.function for layer in layers])


def _read_meta(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and {"sha256", "code_sha256", "size", "files"} <= set(data) else None


def _place(cached: Path, dest: Path) -> None:
    """Put the cached zip at ``dest`` (hard link if possible, else a copy), atomically."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and os.path.samefile(cached, dest):
        return
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(cached, tmp)
    except OSError:
        shutil.copyfile(cached, tmp)
        os.chmod(tmp, 0o644)
    os.replace(tmp, dest)


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
