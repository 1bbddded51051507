"""``lambda_src/``: the one tree packaging reads, and the guard that keeps every read inside it.

A zip holds what ``lambda_src/`` holds, and nothing else on the machine that builds it. Every file
the function and layer builds read from the source tree (the handler module, every module it
imports and the ``__init__.py`` of each package on the way, a function's requirements file, a
layer's requirements file) goes through :class:`SourceTree`:

* ``lambda_src`` itself must be a real directory, not a symlink;
* a symlink anywhere on the way (a file, a parent directory, at any depth) is followed only if what
  it resolves to lies inside ``lambda_src/``; otherwise the build stops with one line naming the
  link and its target (a :class:`~deployctl.errors.ConfigError`, exit 2) before the file is read,
  so its content reaches no zip, no cache entry and no manifest;
* the file is then opened through its resolved path, one component at a time from the
  ``lambda_src`` directory with ``O_NOFOLLOW`` (a link swapped in after the check makes the open
  fail, it is not followed), must be a regular file with one link (a hard link cannot be told
  from the file it shares an inode with, so a second name is refused), and is read once: the
  bytes that were hashed are the bytes that go into the zip;
* a requirements file may hold only requirement specifiers (``name[extras] <op> version ; marker``)
  and ``--hash`` options: no ``-r``/``-c`` (pip would read another file), no index or find-links
  options, no paths and no URLs (pip would read or fetch something the tree does not hold). pip
  then reads a checked copy, never the path in the tree.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from deployctl.errors import ConfigError

SOURCE_DIR = "lambda_src"
HINT_LINK = f"replace the link with the file itself or point it inside {SOURCE_DIR}/: packaging reads nothing outside it"

_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in the tree must not block the open
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class SourceFile:
    """A file read through the guard: its bytes and whether its owner may execute it."""

    data: bytes
    executable: bool


class SourceTree:
    """``lambda_src/`` of one project; each file is checked and read once per instance."""

    def __init__(self, src: Path):
        self.dir = Path(src)
        if self.dir.is_symlink():
            raise ConfigError(f"{SOURCE_DIR} is a symlink to {os.path.realpath(self.dir)}", where=str(self.dir),
                              hint=f"make {SOURCE_DIR}/ a real directory: packaging reads nothing outside it")
        self.real = Path(os.path.realpath(self.dir))
        self._files: dict[Path, SourceFile] = {}

    def rel(self, path: Path) -> str:
        """``lambda_src/...`` as the user sees the path (for messages)."""
        return f"{SOURCE_DIR}/{Path(path).relative_to(self.dir).as_posix()}"

    def resolve(self, path: Path, *, key: str | None = None) -> Path:
        """The real path of ``path`` (given under ``lambda_src/``), if it and every link on the way
        stay inside ``lambda_src/``; else one ConfigError naming the first link that leaves it."""
        path = Path(path)
        try:
            rel = path.relative_to(self.dir)
        except ValueError:
            raise ConfigError(f"{path} is not under {SOURCE_DIR}/", where=key, hint=HINT_LINK) from None
        if ".." in rel.parts:
            raise ConfigError(f"{SOURCE_DIR}/{rel.as_posix()} leaves {SOURCE_DIR}/", where=key, hint=HINT_LINK)
        current = self.dir
        for part in rel.parts:
            current = current / part
            if current.is_symlink():
                target = Path(os.path.realpath(current))
                if not target.is_relative_to(self.real):
                    raise self._outside(current, target, key)
        real = Path(os.path.realpath(path))
        if not real.is_relative_to(self.real):  # a link swapped in between the checks above
            raise self._outside(path, real, key)
        return real

    def _outside(self, link: Path, target: Path, key: str | None) -> ConfigError:
        return ConfigError(f"{self.rel(link)} is a symlink to {target}, outside {SOURCE_DIR}/", where=key, hint=HINT_LINK)

    def read(self, path: Path, *, key: str | None = None) -> SourceFile:
        """The checked bytes of ``path`` (read once; later calls return the same bytes)."""
        path = Path(path)
        if path not in self._files:
            self._files[path] = self._read(path, self.resolve(path, key=key), key)
        return self._files[path]

    def _read(self, path: Path, real: Path, key: str | None) -> SourceFile:
        parts = real.relative_to(self.real).parts
        if not parts:
            raise ConfigError(f"{self.rel(path)} is a directory", where=key)
        changed = ConfigError(f"{self.rel(path)} changed while it was being read (a link appeared on its path)",
                              where=key, hint="re-run once nothing else is changing lambda_src/")
        try:
            if os.open in os.supports_dir_fd:
                fd = os.open(self.real, os.O_RDONLY | _O_DIRECTORY | _O_CLOEXEC)
                try:
                    for part in parts[:-1]:
                        nxt = os.open(part, os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | _O_CLOEXEC, dir_fd=fd)
                        os.close(fd)
                        fd = nxt
                    ffd = os.open(parts[-1], os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC, dir_fd=fd)
                finally:
                    os.close(fd)
            else:  # no openat: open the resolved path, the last component still not followed
                ffd = os.open(real, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | _O_CLOEXEC)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                raise changed from None
            raise ConfigError(f"cannot read {self.rel(path)}: {exc.strerror}", where=key,
                              hint="check the file's permissions") from None
        with os.fdopen(ffd, "rb") as fh:
            st = os.fstat(fh.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise ConfigError(f"{self.rel(path)} is not a regular file", where=key,
                                  hint=f"packaging reads only regular files inside {SOURCE_DIR}/")
            if st.st_nlink > 1:
                raise ConfigError(
                    f"{self.rel(path)} has {st.st_nlink} hard links (one may be a file outside {SOURCE_DIR}/)",
                    where=key, hint="make it a file of its own: cp FILE FILE.new && mv FILE.new FILE")
            data = fh.read()
        return SourceFile(data=data, executable=bool(st.st_mode & 0o100))


# -- requirements files -------------------------------------------------------------------------

# pip's own reading of a requirements file (pip._internal.req.req_file): a comment starts at '#'
# at the line start or after whitespace; a line ending in a backslash continues on the next one
# (unless it holds a comment); the requirement is the tokens before the first one starting with '-'.
_COMMENT = re.compile(r"(^|\s+)#.*$")
# name[extras] with at least one version specifier: nothing that names a path, a URL, an archive
# or a direct reference, and no '$' (pip expands ${VAR} in requirement lines)
_REQUIREMENT = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"  # project name (PEP 508)
    r"(?:\[[A-Za-z0-9._-]+(?:,[A-Za-z0-9._-]+)*\])?"  # extras
    r"\(?(?:===|~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+"
    r"(?:,(?:===|~=|==|!=|<=|>=|<|>)[A-Za-z0-9.*+!_-]+)*\)?"  # version specifiers
)
_MARKER = re.compile(r"""[A-Za-z0-9_.\s'"()<>=!~,-]*""")  # environment markers: names, quoted versions, operators
_HASH_VALUE = re.compile(r"[A-Za-z0-9]+:[0-9A-Fa-f]+")


def _logical_lines(text: str):
    pending: list[str] = []
    first = 0
    for number, line in enumerate(text.splitlines(), 1):
        if not line.endswith("\\") or _COMMENT.match(line):
            if _COMMENT.match(line):
                line = " " + line
            if pending:
                pending.append(line)
                yield first, "".join(pending)
                pending = []
            else:
                yield number, line
        else:
            if not pending:
                first = number
            pending.append(line.strip("\\"))
    if pending:
        yield first, "".join(pending)


def check_requirements(data: bytes, where: str, name: str | None = None) -> None:
    """Refuse a requirements file line that would make pip read a file, fetch a location or expand
    a variable: only ``name[extras]<specifiers> ; <markers>`` and ``--hash`` options pass."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError("requirements file is not UTF-8", where=where, hint="save it as UTF-8") from None
    for number, raw in _logical_lines(text):
        line = _COMMENT.sub("", raw).strip()
        if not line:
            continue
        tokens = line.split()
        args: list[str] = []
        while tokens and not tokens[0].startswith("-"):
            args.append(tokens.pop(0))
        spec, _, marker = " ".join(args).partition(";")
        if not args or not _REQUIREMENT.fullmatch(re.sub(r"\s+", "", spec)) or not _MARKER.fullmatch(marker):
            _refuse(line, number, where, name)
        while tokens:
            option = tokens.pop(0)
            if option == "--hash" and tokens and _HASH_VALUE.fullmatch(tokens[0]):
                tokens.pop(0)
            elif not (option.startswith("--hash=") and _HASH_VALUE.fullmatch(option.removeprefix("--hash="))):
                _refuse(line, number, where, name)


def _refuse(line: str, number: int, where: str, name: str | None) -> None:
    shown = line if len(line) <= 80 else line[:77] + "..."
    raise ConfigError(
        f"{name + ' ' if name else ''}line {number}: only pinned requirements and --hash options are allowed, found {shown!r}",
        where=where,
        hint="no -r/-c, index or find-links options, paths, URLs or ${VARS}, so pip reads nothing the file does "
             "not pin; set indexes in pip's own config or PIP_INDEX_URL")
