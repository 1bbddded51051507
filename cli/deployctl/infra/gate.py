"""The checkov policy gate: on the Terraform source, and on a plan's JSON.

The gate's configuration is one versioned file, ``policy/gate.toml``:

    hard_fail = ["*"]          # check ids (or "CKV_AWS_*" prefixes) whose failure fails the gate
    [[waiver]]                 # a failed check accepted on purpose; a reason is mandatory
    check = "CKV_AWS_117"
    resources = ["module.*.aws_lambda_function.*"]   # optional: fnmatch patterns, default all
    reason = "..."

A failed check that is neither hard nor waived is reported as a warning.
checkov's own inline skips (``#checkov:skip=ID:reason``) must carry a reason
too; one without is a gate failure.

checkov's raw findings are cached (:mod:`deployctl.infra.gatecache`, authenticated entries in the
env's work dir) under a digest of exactly what checkov reads and the checkov version: for the
source, the Terraform sources scanned (never the files deployctl renders: checkov is not shown
them); for a plan, the plan JSON without its timestamp, the sources enrichment reads, and
``policy/gate.toml``. The gate (hard-fail list, waivers, the unknown-key explanation) is applied
to them on every run, so a hit gives the same findings as a scan.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import tempfile
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deployctl import runner, tools
from deployctl.errors import ConfigError, Interrupted, OperationFailed, ToolMissing
from deployctl.infra.gatecache import GateCache
from deployctl.infra.render import BACKEND_FILE, TFVARS_FILE
from deployctl.tools import CHECKOV_INSTALL

GATE_FILE = Path("policy") / "gate.toml"
CACHE_VERSION = 2  # of what the digests below cover: a change here invalidates every entry
_NO_REASON = {"", "no comment provided"}


# -- configuration ------------------------------------------------------------------


@dataclass
class Waiver:
    check: str
    reason: str
    resources: list[str] = field(default_factory=lambda: ["*"])

    def covers(self, finding: Finding) -> bool:
        return _id_match(finding.check_id, [self.check]) and any(
            fnmatch.fnmatchcase(finding.resource, pat) for pat in self.resources
        )


@dataclass
class GateConfig:
    path: Path | None
    hard_fail: list[str]
    waivers: list[Waiver]
    text: str = ""

    def is_hard(self, check_id: str) -> bool:
        return _id_match(check_id, self.hard_fail)


def _id_match(check_id: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(check_id, p) for p in patterns)


def load_gate(root: Path) -> GateConfig:
    """Read ``policy/gate.toml`` (absent: every failed check is hard, no waivers)."""
    path = root / GATE_FILE
    if not path.is_file():
        return GateConfig(None, ["*"], [])
    text = path.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", where=str(path)) from None
    unknown = set(data) - {"hard_fail", "waiver"}
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(sorted(unknown))}: expected hard_fail, [[waiver]]", where=str(path))
    hard = data.get("hard_fail", ["*"])
    if not isinstance(hard, list) or not all(isinstance(x, str) and x for x in hard):
        raise ConfigError("key 'hard_fail': expected a list of check ids or patterns", where=str(path))
    waivers = []
    raw = data.get("waiver", [])
    if not isinstance(raw, list):
        raise ConfigError("key 'waiver': expected [[waiver]] tables", where=str(path))
    for i, w in enumerate(raw):
        key = f"waiver[{i}]"
        if not isinstance(w, dict):
            raise ConfigError(f"key '{key}': expected a table", where=str(path))
        extra = set(w) - {"check", "reason", "resources"}
        if extra:
            raise ConfigError(f"key '{key}': unknown key(s) {', '.join(sorted(extra))}", where=str(path))
        check = w.get("check")
        if not isinstance(check, str) or not check.strip():
            raise ConfigError(f"key '{key}.check' is missing: expected a checkov check id", where=str(path))
        reason = w.get("reason")
        if not isinstance(reason, str) or not reason.strip():
            raise ConfigError(
                f"waiver of {check} ({key}) has no reason: every waiver needs one",
                where=str(path),
                hint="add reason = \"why this check does not apply\" or remove the waiver",
            )
        resources = w.get("resources", ["*"])
        if not isinstance(resources, list) or not resources or not all(isinstance(r, str) and r for r in resources):
            raise ConfigError(f"key '{key}.resources': expected a non-empty list of resource patterns", where=str(path))
        waivers.append(Waiver(check=check.strip(), reason=reason.strip(), resources=resources))
    return GateConfig(path, hard, waivers, text)


# -- results ---------------------------------------------------------------------------


@dataclass
class Finding:
    check_id: str
    check_name: str
    resource: str
    file: str  # relative to the project root when possible
    lines: list[int]
    guideline: str | None = None
    status: str = "failed"  # failed | waived | warning | skipped | bad_skip
    reason: str | None = None

    @property
    def location(self) -> str:
        if self.lines and self.lines[0]:
            return f"{self.file}:{self.lines[0]}"
        return self.file

    @property
    def fix(self) -> str:
        return self.guideline or self.check_name


@dataclass
class GateResult:
    kind: str  # "source" or "plan"
    targets: list[str]
    passed: bool
    counts: dict[str, int]
    findings: list[Finding]
    cached: bool = False
    junit: str | None = None
    # set when the plan creates/replaces the KMS key and encryption checks failed because of it
    unknown_key: dict | None = None

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if f.status in {"failed", "bad_skip"}]

    def as_dict(self) -> dict:
        d = asdict(self)
        d["findings"] = [asdict(f) | {"location": f.location, "fix": f.fix} for f in self.findings]
        return d


def parse_checkov_output(text: str) -> list[dict]:
    """checkov -o json prints one JSON document per scan (a dict, a list, or several in a row)."""
    decoder = json.JSONDecoder()
    docs: list[dict] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        try:
            doc, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise OperationFailed(f"checkov printed something that is not JSON: {text[i:i + 120]!r}") from exc
        docs += doc if isinstance(doc, list) else [doc]
    return docs


def _rel(path: str, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except (ValueError, OSError):
        return path


def collect(docs: list[dict], root: Path) -> tuple[list[Finding], list[Finding]]:
    """(failed, skipped) findings from checkov's reports, de-duplicated."""
    failed: dict[tuple, Finding] = {}
    skipped: dict[tuple, Finding] = {}
    for doc in docs:
        results = doc.get("results") or {}
        for bucket, store in (("failed_checks", failed), ("skipped_checks", skipped)):
            for r in results.get(bucket) or []:
                path = r.get("file_abs_path") or r.get("file_path") or ""
                f = Finding(
                    check_id=r.get("check_id") or "?",
                    check_name=r.get("check_name") or "",
                    resource=r.get("resource_address") or r.get("resource") or "?",
                    file=_rel(path, root),
                    lines=list(r.get("file_line_range") or []),
                    guideline=r.get("guideline") or None,
                )
                if bucket == "skipped_checks":
                    f.status = "skipped"
                    f.reason = ((r.get("check_result") or {}).get("suppress_comment") or r.get("suppress_comment") or "").strip()
                key = (f.check_id, f.resource, f.file, tuple(f.lines))
                store.setdefault(key, f)
    return list(failed.values()), list(skipped.values())


def evaluate(kind: str, targets: list[str], failed: list[Finding], skipped: list[Finding], gate: GateConfig) -> GateResult:
    findings: list[Finding] = []
    for f in failed:
        waiver = next((w for w in gate.waivers if w.covers(f)), None)
        if waiver is not None:
            f.status, f.reason = "waived", waiver.reason
        elif not gate.is_hard(f.check_id):
            f.status = "warning"
        findings.append(f)
    for f in skipped:
        if (f.reason or "").lower() in _NO_REASON:
            f.status, f.reason = "bad_skip", "inline #checkov:skip without a reason"
        findings.append(f)
    findings.sort(key=lambda f: ({"failed": 0, "bad_skip": 1, "warning": 2, "waived": 3, "skipped": 4}[f.status], f.file, f.lines[:1], f.check_id))
    counts = {s: sum(1 for f in findings if f.status == s) for s in ("failed", "bad_skip", "warning", "waived", "skipped")}
    passed = counts["failed"] == 0 and counts["bad_skip"] == 0
    return GateResult(kind=kind, targets=targets, passed=passed, counts=counts, findings=findings)


# -- running checkov ------------------------------------------------------------------------


# every checkov run: offline, JSON on stdout (its environment: tools.CHECKOV_ENV)
_CHECKOV_OPTIONS = ["--skip-download", "-o", "json", "--compact"]
CHECKOV_TIMEOUT_S = 900


def _checkov(binary: str, args: list[str], cwd: Path) -> list[dict]:
    if runner.get_runner().which(binary) is None:
        raise ToolMissing(f"checkov was not found ('{binary}')", hint=CHECKOV_INSTALL)
    res = runner.run([binary, *args, *_CHECKOV_OPTIONS], cwd=cwd, env=tools.CHECKOV_ENV, timeout=CHECKOV_TIMEOUT_S)
    # checkov exits 1 when a check failed; anything else without JSON is a crash
    if res.returncode not in (0, 1) or not _is_report(res.stdout):
        tail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        raise OperationFailed(f"checkov did not run (exit {res.returncode}): {tail[:300]}", hint="run with --debug, or check the checkov install")
    return parse_checkov_output(res.stdout)


def _is_report(stdout: str) -> bool:
    return stdout.strip().startswith(("{", "["))


DRIVER = Path(__file__).with_name("checkov_driver.py")


class CheckovDriver:
    """checkov started before its job is known, so its start-up (importing itself and its check
    registries: most of a plan scan's time) overlaps terraform.

    :meth:`start` runs :mod:`deployctl.infra.checkov_driver` with the Python of checkov's console
    script (its shebang), in the directory and environment of a plain run; :meth:`scan` hands it
    one job and returns checkov's reports, or None whenever the driver could not give them (it
    died, printed nothing, or no report): the caller then runs checkov plainly, so a driver never
    changes a verdict, only when it is ready. :meth:`stop` ends it and every process it forked; it
    is safe to call at any time, twice, and after :meth:`scan`.
    """

    STOP_GRACE_S = 5.0

    def __init__(self, proc, out, err, name: str):
        self._proc, self._out, self._err, self._name = proc, out, err, name
        self._used = self._stopped = False

    @classmethod
    def start(cls, binary: str, *, cwd: Path) -> CheckovDriver | None:
        """The driver for ``binary`` started, or None when ``binary`` is not checkov's own Python
        console script (a wrapper, a packaged binary, missing) or could not be started."""
        import subprocess

        path = runner.get_runner().which(binary)
        python = _console_python(Path(path)) if path else None
        if python is None or not os.access(python, os.X_OK):
            return None
        env = dict(os.environ) | runner.get_runner().extra_env | tools.CHECKOV_ENV
        out, err = tempfile.TemporaryFile(), tempfile.TemporaryFile()  # unnamed: nothing else reads them
        try:
            proc = runner.spawn([python, str(DRIVER), path], env=env, cwd=cwd, stdin=subprocess.PIPE,
                                stdout=out, stderr=err)
        except (OperationFailed, ToolMissing):
            out.close()
            err.close()
            return None
        return cls(proc, out, err, Path(binary).name)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def scan(self, args: list[str]) -> list[dict] | None:
        """checkov's reports for ``args`` (as :func:`_checkov` gives them), or None: run checkov plainly."""
        import subprocess

        if self._used:
            return None
        self._used = True
        try:
            self._proc.stdin.write((json.dumps([*args, *_CHECKOV_OPTIONS]) + "\n").encode())
            self._proc.stdin.close()
        except OSError:  # it already died
            self.stop()
            return None
        try:
            code = self._proc.wait(timeout=CHECKOV_TIMEOUT_S)
        except KeyboardInterrupt:
            # as runner.run does for a plain checkov: the tool ends, then we stop
            self.stop()
            raise Interrupted(f"interrupted; {self._name} was stopped and has exited",
                              hint="nothing beyond what it reported was done") from None
        except subprocess.TimeoutExpired:
            self.stop()
            raise OperationFailed(f"{self._name} did not finish within {CHECKOV_TIMEOUT_S:.0f}s") from None
        self._out.seek(0)
        stdout = self._out.read().decode("utf-8", "replace")
        self.stop()  # its forked workers, and the files
        if code not in (0, 1) or not _is_report(stdout):
            return None  # a crash is reported by the plain run, exactly as without a driver
        try:
            return parse_checkov_output(stdout)
        except OperationFailed:
            return None

    def stop(self) -> None:
        import subprocess

        if self._stopped:
            return  # once: its process group id may belong to someone else by now
        self._stopped = True
        proc = self._proc
        if proc.poll() is None:
            runner._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=self.STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        runner._signal_group(proc, signal.SIGKILL)  # whatever of its group is left (forked workers)
        proc.wait()
        for fh in (proc.stdin, self._out, self._err):
            if fh is not None and not fh.closed:
                with contextlib.suppress(OSError):
                    fh.close()


# -- what checkov reads, and the digests the cache keys on ---------------------------------------

# deployctl renders these into the env root; the source scan never sees them (the plan gate
# judges the rendered values), so a publish or a re-render does not send it back to checkov
GENERATED_FILES = frozenset({TFVARS_FILE, BACKEND_FILE})


def read_by_checkov(name: str) -> bool:
    """Whether checkov's terraform parser reads a file of this name (checkov 3: ``.tf``, ``.tf.json``,
    ``.hcl``, ``terraform.tfvars[.json]``, ``*.auto.tfvars[.json]``; names starting with a dot never)."""
    if name.startswith("."):
        return False
    return name.endswith((".tf", ".tf.json", ".hcl", ".auto.tfvars", ".auto.tfvars.json")) or name in {
        "terraform.tfvars", "terraform.tfvars.json"}


def terraform_files(base: Path, root: Path, *, skip: frozenset[str] = frozenset()) -> dict[str, Path]:
    """Relative name -> path of every file under ``base`` that checkov reads, as checkov walks it
    (directories starting with a dot, such as ``.terraform``, are not entered; neither are symlinked ones)."""
    if base.is_file():
        return {_name(base, root): base} if read_by_checkov(base.name) and base.name not in skip else {}
    found: dict[str, Path] = {}
    for here, dirs, files in os.walk(base):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if read_by_checkov(name) and name not in skip:
                p = Path(here) / name
                found[_name(p, root)] = p
    return found


def _name(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` as written (a symlinked file keeps its own name, not its target's)."""
    try:
        return str(path.relative_to(root))
    except ValueError:
        return _rel(str(path), root)


def _digest_files(h, files: dict[str, bytes]) -> None:
    h.update(f"{len(files)}\0".encode())
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


@functools.lru_cache(maxsize=8)
def _identity(real: str, binary: str, stamp: tuple) -> str:
    installed = _installed_checkov(Path(real))
    if installed:
        return f"{installed} at {real}"
    # not a Python install we can read (a wrapper, a packaged binary): ask it
    res = runner.run([binary, "--version"], env=tools.CHECKOV_ENV, timeout=300)
    with open(real, "rb") as fh:
        content = hashlib.sha256(fh.read()).hexdigest()
    return f"checkov --version: {res.stdout.strip()[:200]} (exit {res.returncode}) at {real} sha256 {content}"


def _installed_checkov(script: Path) -> str | None:
    """The version and install record of checkov behind a Python console script (its shebang's
    environment, ``checkov-*.dist-info``): what ``checkov --version`` reports, without starting it."""
    installed = tools.checkov_install(script)
    if installed is None:
        return None
    return f"checkov {installed.version} (installed files: RECORD sha256 {installed.record_sha256})"


def _console_python(script: Path) -> str | None:
    """The Python of checkov's own console script ``script``, or None on any doubt (not that
    script, a shebang with options, a wrapper): then only the script itself runs checkov."""
    console = tools.checkov_console_python(script)
    return console[0] if console is not None and console[1] else None


def checkov_identity(binary: str) -> str:
    """Which checkov ``binary`` is, for a cache key: its version (read from its install, else from
    ``--version``) and its install record, not just its path."""
    path = runner.get_runner().which(binary)
    if path is None:
        return f"missing: {binary}"  # nothing is ever stored under this: the scan raises ToolMissing
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except OSError:
        return f"unreadable: {real}"
    return _identity(real, binary, (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))


def source_digest(files: dict[str, bytes], targets: list[str], checkov_id: str) -> str:
    """What the source gate's findings depend on: the bytes checkov is shown, where, and the checkov version."""
    h = hashlib.sha256(f"deployctl-gate-cache-source-{CACHE_VERSION}\0{checkov_id}\0".encode())
    h.update(_canonical({"targets": targets}))
    _digest_files(h, files)
    return h.hexdigest()


# top-level fields of `terraform show -json` that differ between two plans of the same state and
# configuration (two no-change plans of one root differ in "timestamp" only, terraform 1.11)
VOLATILE_PLAN_FIELDS = frozenset({"timestamp"})
# top-level lists that are sets: terraform writes them in map iteration order, which differs from
# one plan of the same state and configuration to the next (the deployed dev stack's 30-odd
# "relevant_attributes" entries never came out twice in the same order). Sorted for the digest,
# never dropped: another entry is another plan. (checkov does not read them.)
UNORDERED_PLAN_LISTS = frozenset({"relevant_attributes"})


def stable_plan(doc: dict) -> dict:
    """The plan JSON as the verdict cache keys it: without :data:`VOLATILE_PLAN_FIELDS`, with each of
    :data:`UNORDERED_PLAN_LISTS` in a canonical order."""
    out = {}
    for key, value in doc.items():
        if key in VOLATILE_PLAN_FIELDS:
            continue
        if key in UNORDERED_PLAN_LISTS and isinstance(value, list):
            value = sorted(value, key=_canonical)
        out[key] = value
    return out


def plan_digest(root: Path, doc: dict, target: str, source_dir: Path | None, gate: GateConfig,
                checkov_id: str) -> str:
    """What the plan gate's findings depend on: the plan (without its volatile fields), where its JSON
    lies (a finding not located in a ``.tf`` names it), the sources enrichment and
    :func:`locate_plan_findings` read, ``policy/gate.toml``, and the checkov version."""
    h = hashlib.sha256(f"deployctl-gate-cache-plan-{CACHE_VERSION}\0{checkov_id}\0".encode())
    h.update(_canonical({"target": target, "source_dir": _rel(str(source_dir), root) if source_dir else None,
                         "policy": [str(gate.path) if gate.path else None, gate.text]}))
    h.update(hashlib.sha256(_canonical(stable_plan(doc))).digest())
    _digest_files(h, {name: p.read_bytes() for name, p in terraform_files(enrichment_root(root), root).items()})
    if source_dir is not None:
        located = {}
        for directory in _module_dirs({"configuration": doc.get("configuration") or {}}, source_dir).values():
            for p in sorted(directory.glob("*.tf")):
                located[_rel(str(p), root)] = p.read_bytes()
        _digest_files(h, located)
    return h.hexdigest()


def _payload(failed: list[Finding], skipped: list[Finding]) -> dict:
    return {"failed": [asdict(f) for f in failed], "skipped": [asdict(f) for f in skipped]}


def _cached_findings(cache: GateCache | None, kind: str, digest: str | None) -> tuple[list[Finding], list[Finding]] | None:
    if cache is None or digest is None:
        return None
    payload = cache.get(kind, digest)
    if payload is None:
        return None
    try:
        return _findings(payload["failed"]), _findings(payload["skipped"])
    except (KeyError, TypeError, AttributeError):
        return None


def scan_source(root: Path, targets: list[Path], *, checkov: str, cache_dir: Path | None, gate: GateConfig | None = None) -> GateResult:
    """checkov on Terraform directories (offline), through the gate.

    checkov scans a private copy of exactly the files it would read there, minus the ones deployctl
    renders (:data:`GENERATED_FILES`: the plan gate judges rendered values); its raw findings are
    cached under a digest of those bytes and the checkov version. The gate (hard-fail list, waivers)
    is applied on every run, so editing policy/gate.toml takes effect without a rescan.
    """
    gate = gate or load_gate(root)
    names = [_name(t, root) for t in targets]
    paths: dict[str, Path] = {}
    for t in targets:
        paths.update(terraform_files(t, root, skip=GENERATED_FILES))
    files = {name: p.read_bytes() for name, p in paths.items()}
    cache = GateCache.open(cache_dir)
    digest = source_digest(files, names, checkov_identity(checkov)) if cache else None
    hit = _cached_findings(cache, "source", digest)
    if hit is not None:
        failed, skipped = hit
    else:
        staged = Path(tempfile.mkdtemp(prefix="deployctl-scan-"))
        try:
            for name, data in files.items():
                (staged / name).parent.mkdir(parents=True, exist_ok=True)
                (staged / name).write_bytes(data)
            args = ["--framework", "terraform"]
            for name in names:
                (staged / name).mkdir(parents=True, exist_ok=True)
                args += ["-d", str(staged / name)]
            docs = _checkov(checkov, args, cwd=root)  # as for the plan: a relative --checkov-bin, checkov config
            failed, skipped = collect(docs, staged)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        if cache is not None and digest is not None:
            cache.put("source", digest, _payload(failed, skipped))
    result = evaluate("source", names, failed, skipped, gate)
    result.cached = hit is not None
    return result


def plan_has_resources(doc: dict) -> bool:
    """Whether a plan JSON holds any managed resource (planned, changed, or in the prior state)."""
    if any(rc.get("mode") != "data" for rc in doc.get("resource_changes") or []):
        return True

    def walk(module: dict | None) -> bool:
        if not module:
            return False
        if any(r.get("mode") != "data" for r in module.get("resources") or []):
            return True
        return any(walk(child) for child in module.get("child_modules") or [])

    prior = (doc.get("prior_state") or {}).get("values") or {}
    return walk((doc.get("planned_values") or {}).get("root_module")) or walk(prior.get("root_module"))


def _findings(items: list[dict]) -> list[Finding]:
    fields = Finding.__dataclass_fields__
    return [Finding(**{k: v for k, v in f.items() if k in fields}) for f in items]


def enrichment_root(root: Path) -> Path:
    """Where checkov reads inline skips for a plan from: our Terraform sources only.

    checkov matches plan resources to source blocks by ``TYPE.NAME`` alone, so
    enriching from the whole project let ``#checkov:skip`` comments in test
    fixtures silence the same checks on real resources.
    """
    tf = root / "terraform"
    return tf if tf.is_dir() else root


_INSTANCE_KEY = re.compile(r'\[[^\]]*\]')


def _module_dirs(doc: dict, env_dir: Path) -> dict[tuple[str, ...], Path]:
    """Module path (call names) -> source directory, from the plan's own configuration."""
    dirs: dict[tuple[str, ...], Path] = {(): env_dir}

    def walk(module: dict, path: tuple[str, ...], here: Path) -> None:
        for name, call in (module.get("module_calls") or {}).items():
            source = call.get("source") or ""
            if not source.startswith("."):
                continue  # a registry or remote module: not our source
            sub = (here / source).resolve()
            dirs[(*path, name)] = sub
            walk(call.get("module") or {}, (*path, name), sub)

    walk((doc.get("configuration") or {}).get("root_module") or {}, (), env_dir)
    return dirs


def _block_lines(directory: Path, rtype: str, name: str) -> tuple[Path, list[int]] | None:
    pattern = re.compile(rf'^\s*resource\s+"{re.escape(rtype)}"\s+"{re.escape(name)}"\s*\{{')
    for path in sorted(directory.glob("*.tf")):
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines):
            if pattern.match(line):
                depth, end = 0, i
                for j in range(i, len(lines)):
                    depth += lines[j].count("{") - lines[j].count("}")
                    if depth <= 0:
                        end = j
                        break
                return path, [i + 1, end + 1]
    return None


def locate_plan_findings(findings: list[Finding], doc: dict, env_dir: Path, root: Path) -> None:
    """Point each plan finding at the ``.tf`` block that declares it (checkov names the plan JSON)."""
    dirs = _module_dirs(doc, env_dir)
    for f in findings:
        parts = _INSTANCE_KEY.sub("", f.resource).split(".")
        if len(parts) < 2 or parts[0] == "data":
            continue
        modules = tuple(parts[i + 1] for i in range(0, len(parts) - 2, 2) if parts[i] == "module")
        directory = dirs.get(modules)
        found = _block_lines(directory, parts[-2], parts[-1]) if directory else None
        if found:
            f.file, f.lines = _rel(str(found[0]), root), found[1]


def scan_plan(root: Path, plan_json: Path, *, checkov: str, gate: GateConfig | None = None,
              source_dir: Path | None = None, doc: dict | None = None, cache_dir: Path | None = None,
              driver: CheckovDriver | None = None) -> GateResult:
    """checkov on ``terraform show -json`` output, enriched from our Terraform (so inline skips apply).

    ``doc``: that JSON already parsed (it is read from ``plan_json`` otherwise); checkov reads the file.
    ``source_dir``: the env root that was planned; findings then name the ``.tf`` file and lines of
    the block that declares each resource instead of the plan JSON.
    ``cache_dir``: where verdicts may be cached (:mod:`deployctl.infra.gatecache`); None: checkov runs.
    ``result.cached`` says whether checkov's findings came from there.
    ``driver``: checkov already started for ``checkov`` (:class:`CheckovDriver`): a miss hands it the
    scan (falling back to a plain run), anything else stops it; it is stopped on return either way.

    When the plan creates or replaces a KMS key, the encryption checks that failed
    on resources whose key ARN is therefore unknown are explained (``unknown_key``,
    and each finding's ``reason``); they still fail the gate.
    """
    try:
        return _scan_plan(root, plan_json, checkov=checkov, gate=gate, source_dir=source_dir, doc=doc,
                          cache_dir=cache_dir, driver=driver)
    finally:
        if driver is not None:
            driver.stop()  # a hit, no resources, an error: nothing waits for it


def _scan_plan(root: Path, plan_json: Path, *, checkov: str, gate: GateConfig | None, source_dir: Path | None,
               doc: dict | None, cache_dir: Path | None, driver: CheckovDriver | None) -> GateResult:
    gate = gate or load_gate(root)
    if doc is None:
        doc = json.loads(plan_json.read_text(encoding="utf-8"))
    target = _rel(str(plan_json), root)
    if not plan_has_resources(doc):
        # nothing for checkov to look at (outputs/locals only); saves a checkov start-up
        result = evaluate("plan", [target], [], [], gate)
        result.targets.append("(no resources: not scanned)")
        return result
    keys, unknown = kms_key_changes(doc), unknown_kms_addresses(doc)
    cache = GateCache.open(cache_dir)
    digest = plan_digest(root, doc, target, source_dir, gate, checkov_identity(checkov)) if cache else None
    # the plan JSON may hold secrets: keep only addresses and the module tree
    located_doc = {"configuration": doc.get("configuration") or {}}
    del doc
    hit = _cached_findings(cache, "plan", digest)
    if hit is not None:
        failed, skipped = hit
    else:
        args = ["-f", str(plan_json), "--framework", "terraform_plan",
                "--repo-root-for-plan-enrichment", str(enrichment_root(root))]
        docs = driver.scan(args) if driver is not None else None
        if docs is None:
            docs = _checkov(checkov, args, cwd=root)
        failed, skipped = collect(docs, root)
        if source_dir is not None:
            locate_plan_findings(failed + skipped, located_doc, source_dir, root)
        if cache is not None and digest is not None:
            cache.put("plan", digest, _payload(failed, skipped))  # findings only: no value of the plan
    del located_doc
    result = evaluate("plan", [target], failed, skipped, gate)
    result.cached = hit is not None
    explain_unknown_key(result, keys, unknown)
    return result


# -- the unknown-key case ----------------------------------------------------------------------
#
# A plan that creates (or replaces) the env's KMS key cannot know the key's ARN:
# every kms_key_arn / kms_key_id / kms_master_key_id that refers to it is
# "known after apply", and checkov's encryption checks read an unknown value as
# "not encrypted". Those failures are explained, not waived: the gate still fails,
# and the way out is the foundation-first order (plan --foundation, apply, plan).

UNKNOWN_KEY_CHECKS = frozenset({
    "CKV_AWS_26",   # SNS topic encrypted
    "CKV_AWS_27",   # SQS queue encrypted
    "CKV_AWS_119",  # DynamoDB table with a CMK
    "CKV_AWS_145",  # S3 bucket encrypted with KMS by default
    "CKV_AWS_158",  # CloudWatch log group encrypted with KMS
    "CKV_AWS_173",  # Lambda environment variables encrypted
    "CKV_AWS_337",  # SSM parameter with a CMK
})
_KMS_WORDS = ("kms", "cmk", "encrypt")


def kms_key_changes(doc: dict) -> list[str]:
    """Addresses of the KMS keys a plan creates or replaces (their ARN is unknown until apply)."""
    out = []
    for rc in doc.get("resource_changes") or []:
        if rc.get("mode") != "data" and rc.get("type") == "aws_kms_key" and "create" in ((rc.get("change") or {}).get("actions") or []):
            out.append(rc.get("address", "?"))
    return sorted(out)


def unknown_kms_addresses(doc: dict) -> set[str]:
    """Resources with a KMS attribute (kms_key_arn, kms_key_id, kms_master_key_id ...) unknown at plan time."""

    def unknown_kms(node, kms: bool = False) -> bool:
        if node is True:
            return kms
        if isinstance(node, dict):
            return any(unknown_kms(v, kms or "kms" in str(k)) for k, v in node.items())
        if isinstance(node, list):
            return any(unknown_kms(v, kms) for v in node)
        return False

    return {rc.get("address", "?") for rc in doc.get("resource_changes") or []
            if rc.get("mode") != "data" and unknown_kms((rc.get("change") or {}).get("after_unknown"))}


def explain_unknown_key(result: GateResult, keys: list[str], unknown: set[str]) -> None:
    """Mark the failed encryption checks caused by a KMS key this plan creates (they keep failing)."""
    if not keys:
        return
    hits = [f for f in result.findings if f.status in {"failed", "warning"} and f.resource in unknown
            and (f.check_id in UNKNOWN_KEY_CHECKS or any(w in f.check_name.lower() for w in _KMS_WORDS))]
    if not hits:
        return
    cause = f"KMS key unknown at plan time: this plan creates {', '.join(keys)}"
    for f in hits:
        f.reason = cause
    checks: dict[str, int] = {}
    for f in hits:
        checks[f.check_id] = checks.get(f.check_id, 0) + 1
    others = sorted({f.check_id for f in result.blocking if f not in hits})
    result.unknown_key = {"keys": keys, "checks": dict(sorted(checks.items())), "findings": len(hits),
                          "other_blocking_checks": others}


def unknown_key_error(result: GateResult, env: str, *, foundation: bool) -> tuple[str, str]:
    """(message, hint) of a plan gate that failed with ``unknown_key`` findings."""
    info = result.unknown_key or {}
    counts = ", ".join(f"{cid} x{n}" if n > 1 else cid for cid, n in info.get("checks", {}).items())
    message = (f"the policy gate failed on the plan because it creates the KMS key ({', '.join(info.get('keys', []))}): "
               f"every kms_key_arn referring to it is unknown until apply, so checkov reports "
               f"{info.get('findings', 0)} resource(s) as unencrypted ({counts})")
    others = info.get("other_blocking_checks") or []
    if foundation:
        hint = ("the foundation plan itself creates the key: waive these checks for the foundation resources "
                "with a reason in policy/gate.toml")
    else:
        hint = (f"create the key first: deployctl plan --env {env} --foundation, deployctl apply --env {env}, "
                f"then deployctl plan --env {env} again")
    if others:
        message += f"; {len(others)} other blocking check(s) are not about the key: {', '.join(others)}"
        hint += "; fix or waive (with a reason, in policy/gate.toml) the others"
    return message, hint


# -- reports -----------------------------------------------------------------------------


def junit_xml(results: list[GateResult]) -> str:
    """A JUnit XML report (one testsuite per scan, one testcase per finding) for CI."""
    from xml.etree import ElementTree as ET

    suites = ET.Element("testsuites", name="deployctl policy gate")
    for r in results:
        blocking = r.blocking
        suite = ET.SubElement(suites, "testsuite", name=f"checkov {r.kind}: {', '.join(r.targets)}",
                              tests=str(len(r.findings)), failures=str(len(blocking)),
                              skipped=str(len(r.findings) - len(blocking)))
        for f in r.findings:
            case = ET.SubElement(suite, "testcase", classname=f.check_id, name=f"{f.check_id} {f.resource}", file=f.file)
            if f.status in {"failed", "bad_skip"}:
                el = ET.SubElement(case, "failure", message=f"{f.check_name} ({f.location})", type=f.status)
                el.text = f"{f.check_id} {f.check_name}\nresource: {f.resource}\nfile: {f.location}\nfix: {f.fix}\n"
                if f.reason and f.status == "failed":
                    el.text += f"cause: {f.reason}\n"
            else:
                ET.SubElement(case, "skipped", message=f"{f.status}: {f.reason or f.check_name}")
        if not r.findings:
            ET.SubElement(suite, "testcase", classname="gate", name="no failed checks")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"


def summary_lines(result: GateResult, style=lambda text, *s: text) -> list[str]:
    """Readable summary: one block per finding (id, resource, file:line, how to fix)."""
    marks = {"failed": ("FAILED", "red"), "bad_skip": ("BADSKIP", "red"), "warning": ("WARN", "yellow"),
             "waived": ("WAIVED", "dim"), "skipped": ("SKIPPED", "dim")}
    lines = []
    for f in result.findings:
        label, color = marks[f.status]
        lines.append(f"{style(f'{label:<7}', color)} {f.check_id:<12} {f.resource}  {f.location}")
        if f.status in {"failed", "warning", "bad_skip"}:
            lines.append(f"        fix: {f.fix}" + (f" ({f.reason})" if f.status == "bad_skip" else ""))
            if f.reason and f.status != "bad_skip":
                lines.append(f"        cause: {f.reason}")
        elif f.reason:
            lines.append(f"        reason: {f.reason}")
    c = result.counts
    verdict = style("passed", "green") if result.passed else style("FAILED", "red")
    cache = " (cached)" if result.cached else ""
    lines.append(
        f"policy gate ({result.kind}: {', '.join(result.targets)}){cache}: {verdict}, "
        f"{c['failed']} failed, {c['bad_skip']} skips without reason, {c['warning']} warnings, "
        f"{c['waived']} waived, {c['skipped']} skipped inline"
    )
    return lines
