"""deployctl plan and up on a deployed dev env (moto), against raw ``terraform plan -out`` on the same root.

Issue 18's rows for the daily loop, measured in one run: a moto server with the e2e compat layer
(tests/e2e/moto_compat.py, started by tests/e2e/harness.py) on a free port of 127.0.0.1, a copy of
the project in a temp dir, its dev env deployed there by ``deployctl up``; then, interleaved,
``--runs`` times (medians reported):

* ``terraform plan -input=false -no-color -compact-warnings -lock-timeout=0s -out=...``: the
  baseline, the arguments deployctl's own plan passes, on the same initialised root, backend and
  rendered tfvars;
* ``deployctl plan --env dev`` with nothing changed                              (target <= 1.3x);
* ``deployctl up --env dev --yes`` with nothing changed                          (target <= 1.5x);
* a one-line HCL change (the API 5XX alarm's description in terraform/modules/monitoring, one
  resource updated in place; a new text each run, reverted after it): raw plan on that tree, then
  ``deployctl plan``                                                               (target <= 2.0x).
  After the revert, one untimed ``deployctl plan``: caches keyed on the tree (the source gate's)
  hold the changed one, and "nothing changed" means nothing since the last deployctl run.

Where ``deployctl plan``'s time goes is read from its own step lines (``==> ...`` on stderr),
timestamped as they arrive: each step lasts until the next line of the next step.

``--functions N --tables M`` measures a generated project with N functions and M tables: the real
ones first (health-check always, up's smoke test calls it), then ``bench-fNN`` functions (a small
handler each under lambda_src/bench_gen/, one ``GET /bench/fNN`` route each, the shared layer,
reading one table) and ``bench-tNN`` tables; fewer than the real ones drops the others with their
routes. ``--scale`` runs ``up`` from empty, plan and up with nothing changed at 4 functions / 2
tables and at 40 / 10, prints the growth (40 vs 4) of each, how long the SQS dead-letter queues'
creates took, and whether the plan gate's verdict came from its cache on the second plan at 40.

Everything (moto server, temp dir) is torn down on exit, failure or Ctrl-C.

Run: .venv/bin/python benchmarks/bench_plan.py [--runs 5] [--functions N --tables M | --scale]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cli"))
sys.path.insert(0, str(ROOT / "tests"))

from e2e import harness  # noqa: E402 - tests/e2e/harness.py: moto, terraform, the provider, the project copy

CALL_TIMEOUT_S = 1800.0
CHANGED_FILE = "terraform/modules/monitoring/alarms.tf"
CHANGED_LINE = '"${var.api_name} ${var.api_stage}: 5XX responses"'
TARGETS = {"plan, nothing changed": 1.3, "plan, one-line HCL change": 2.0, "up, nothing changed": 1.5}
# terraform plan's verdict line (TF_IN_AUTOMATION prints nothing after it): from there to the next
# step is show -json, the summary and the bundle
PLAN_DONE = re.compile(r"^(No changes\. |Plan: \d+ to add)")
SHOW_STEP = "(after terraform plan's verdict) show -json, summary, bundle"
SMOKE_FUNCTION = "health-check"  # up's smoke test GETs its /health route


def log(message: str) -> None:
    print(f"[bench_plan {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- running things ----------------------------------------------------------------------------


@dataclass
class Run:
    argv: list[str]
    code: int
    seconds: float
    stdout: str
    lines: list[tuple[float, str]] = field(default_factory=list)  # (seconds since start, stderr line)

    @property
    def stderr(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def result(self) -> dict:
        try:
            return (json.loads(self.stdout) or {}).get("result") or {}
        except ValueError:
            return {}

    def steps(self) -> list[tuple[str, float]]:
        """(step, seconds) from the ``==> `` lines: a step lasts until the next one starts (or the exit);
        what comes before the first is ``start-up``."""
        marks = [(t, line[4:].strip()) if line.startswith("==> ") else (t, SHOW_STEP)
                 for t, line in self.lines if line.startswith("==> ") or PLAN_DONE.match(line)]
        if not marks:
            return []
        out = {"start-up (python, imports, config)": marks[0][0]}
        for (t, name), nxt in zip(marks, [m[0] for m in marks[1:]] + [self.seconds], strict=True):
            name = re.sub(r"\d+\.\d+\.\d+", "X", name)
            out[name] = out.get(name, 0.0) + nxt - t  # a step that comes twice (init) counts once, summed
        return list(out.items())


def run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float = CALL_TIMEOUT_S,
        check: bool = True) -> Run:
    """Run ``argv`` in its own process group (killed with it on timeout or Ctrl-C), timing it and
    timestamping each stderr line as it arrives."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    lines: list[tuple[float, str]] = []

    def pump() -> None:
        for line in proc.stderr:
            lines.append((time.perf_counter() - t0, line.rstrip("\n")))

    def kill() -> None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    watchdog = threading.Timer(timeout, kill)
    watchdog.start()
    try:
        stdout = proc.stdout.read()
        code = proc.wait()
    except BaseException:
        kill()
        proc.wait()
        raise
    finally:
        watchdog.cancel()
    seconds = time.perf_counter() - t0
    reader.join(10)
    res = Run(argv, code, seconds, stdout, lines)
    if check and code != 0:
        raise RuntimeError(f"{' '.join(argv[:6])} exited {code} after {seconds:.1f}s:\n{res.stderr[-4000:]}")
    return res


class Bench:
    """One deployed project on its own moto server."""

    def __init__(self, tmp: Path, terraform: str, provider_env: dict[str, str], functions: int | None,
                 tables: int | None):
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        self.terraform = terraform
        self.moto = harness.start_moto(tmp / "moto.log")
        log(f"moto server at {self.moto.endpoint}")
        try:
            self.root = harness.copy_project(tmp / "project")
            if functions is not None or tables is not None:
                self.shape = scale_project(self.root, functions, tables)
            else:
                self.shape = app_shape(self.root)
        except BaseException:
            self.moto.stop()
            raise
        self.env = harness.cli_env(self.root, self.moto.endpoint, terraform, provider_env)
        # this interpreter's bin first, as in an activated venv: checkov (scripts/setup's shim) is found there
        self.env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), self.env.get("PATH", "")])
        self.env_dir = self.root / "terraform/envs/dev"
        self.raw_plan = tmp / "raw.tfplan"

    def close(self) -> None:
        self.moto.stop()

    def deployctl(self, *args: str) -> Run:
        return run([sys.executable, "-m", "deployctl", *args, "--json"], cwd=self.root, env=self.env)

    def terraform_plan(self) -> Run:
        return run([self.terraform, "plan", "-input=false", "-no-color", "-compact-warnings", "-lock-timeout=0s",
                    f"-out={self.raw_plan}"], cwd=self.env_dir, env=self.env)

    def plan_gate_cached(self) -> bool | None:
        """Whether the last bundle's plan gate verdict came from a cache (policy.json, as the gate records it)."""
        from deployctl.config import load_env

        policy = load_env("dev", self.root).work_dir / "plan" / "policy.json"
        try:
            doc = json.loads(policy.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return bool((doc.get("plan") or {}).get("cached"))


def plan_has_changes(res: Run) -> dict:
    summary = res.result().get("summary") or {}
    return {"has_changes": summary.get("has_changes"), "counts": summary.get("counts")}


# -- the generated project (--functions / --tables) ---------------------------------------------


def app_shape(root: Path) -> dict:
    doc = tomllib.loads((root / "terraform/envs/defaults.toml").read_text(encoding="utf-8"))
    return {"functions": len(doc.get("functions", {})), "tables": len(doc.get("tables", {})), "generated": 0}


def _drop_sections(text: str, prefixes: list[str]) -> str:
    """The TOML text without the tables whose header is one of ``prefixes`` or below one."""
    out, dropping = [], False
    for line in text.splitlines(keepends=True):
        m = re.match(r"^\s*\[\[?([^\]]+)\]\]?\s*(#.*)?$", line)
        if m:
            name = m.group(1).strip()
            dropping = any(name == p or name.startswith(p + ".") for p in prefixes)
        if not dropping:
            out.append(line)
    return "".join(out)


def _handler(name: str) -> str:
    return (f'"""GET /bench/{name}: generated by benchmarks/bench_plan.py for its scale runs."""\n\n'
            "import json\n\n"
            f'FUNCTION = "bench-{name}"\n\n\n'
            "def handler(event, context):\n"
            '    return {"statusCode": 200, "headers": {"Content-Type": "application/json"},\n'
            '            "body": json.dumps({"function": FUNCTION, "path": event.get("path")})}\n')


def scale_project(root: Path, functions: int | None, tables: int | None) -> dict:
    """Make the project at ``root`` have ``functions`` Lambda functions and ``tables`` DynamoDB tables."""
    defaults = root / "terraform/envs/defaults.toml"
    text = defaults.read_text(encoding="utf-8")
    doc = tomllib.loads(text)
    real_fns = list(doc.get("functions", {}))
    real_tables = list(doc.get("tables", {}))
    functions = len(real_fns) if functions is None else functions
    tables = len(real_tables) if tables is None else tables
    if functions < 1 or tables < 1:
        raise SystemExit("bench_plan: --functions and --tables must be >= 1 (up's smoke test needs health-check)")
    order = [SMOKE_FUNCTION] + [f for f in real_fns if f != SMOKE_FUNCTION]
    keep_fns = order[:functions]
    needed = sorted({t for f in keep_fns for t in doc["functions"][f].get("tables_read", [])
                     + doc["functions"][f].get("tables_write", [])})
    if len(needed) > tables:
        raise SystemExit(f"bench_plan: --tables {tables} is fewer than the kept functions need ({', '.join(needed)})")
    keep_tables = needed + [t for t in real_tables if t not in needed][: tables - len(needed)]
    drop_fns = [f for f in real_fns if f not in keep_fns]
    drop_tables = [t for t in real_tables if t not in keep_tables]
    text = _drop_sections(text, [f"functions.{f}" for f in drop_fns] + [f"rollout.functions.{f}" for f in drop_fns]
                          + [f"tables.{t}" for t in drop_tables])
    new_tables = [f"bench-t{i:02d}" for i in range(1, tables - len(keep_tables) + 1)]
    all_tables = keep_tables + new_tables
    new_fns = [f"f{i:02d}" for i in range(1, functions - len(keep_fns) + 1)]
    extra = ["\n# ---- generated by benchmarks/bench_plan.py (--functions/--tables) ----\n"]
    for t in new_tables:
        extra.append(f'\n[tables.{t}]\npartition_key = "pk"\nbilling_mode = "PAY_PER_REQUEST"\n')
    for i, f in enumerate(new_fns):
        extra.append(f'\n[functions.bench-{f}]\nlayers = ["shared"]\nhandler = "bench_gen.{f}.handler"\n'
                     f'description = "GET /bench/{f}: generated"\ntables_read = ["{all_tables[i % len(all_tables)]}"]\n')
    defaults.write_text(text + "".join(extra), encoding="utf-8")
    if new_fns:
        pkg = root / "lambda_src/bench_gen"
        pkg.mkdir()
        (pkg / "__init__.py").write_text('"""Handlers generated by benchmarks/bench_plan.py."""\n', encoding="utf-8")
        for f in new_fns:
            (pkg / f"{f}.py").write_text(_handler(f), encoding="utf-8")
    api = root / "api/openapi.json"
    spec = json.loads(api.read_text(encoding="utf-8"))
    for path in list(spec["paths"]):
        ops = spec["paths"][path]
        for method in [m for m, op in ops.items() if isinstance(op, dict) and op.get("x-deployctl-function") in drop_fns]:
            del ops[method]
        if not any(isinstance(op, dict) and "x-deployctl-function" in op for op in ops.values()):
            del spec["paths"][path]
    for f in new_fns:
        spec["paths"][f"/bench/{f}"] = {"get": {"operationId": f"getBench{f.capitalize()}", "summary": f"bench {f}",
                                                "x-deployctl-function": f"bench-{f}",
                                                "responses": {"200": {"description": "OK"}}}}
    api.write_text(json.dumps(spec, indent=2) + "\n", encoding="utf-8")
    from deployctl.config import load_env

    cfg = load_env("dev", root)  # a bad generated config fails here, in one line, not in terraform
    assert len(cfg.data["functions"]) == functions and len(cfg.data["tables"]) == tables, (functions, tables)
    return {"functions": functions, "tables": tables, "generated": len(new_fns) + len(new_tables)}


# -- measuring -------------------------------------------------------------------------------------


def change_hcl(root: Path, run_no: int) -> str:
    """The one-line change: a new description of the API 5XX alarm (one resource, updated in place)."""
    path = root / CHANGED_FILE
    text = path.read_text(encoding="utf-8")
    assert text.count(CHANGED_LINE) == 1, f"{CHANGED_FILE} no longer holds {CHANGED_LINE}: update bench_plan.py"
    path.write_text(text.replace(CHANGED_LINE, CHANGED_LINE[:-1] + f' (bench run {run_no})"'), encoding="utf-8")
    return text


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def deploy(bench: Bench) -> Run:
    log(f"deployctl up from empty ({bench.shape['functions']} functions, {bench.shape['tables']} tables)")
    res = bench.deployctl("up", "--env", "dev", "--yes")
    log(f"  deployed in {res.seconds:.1f}s: " + ", ".join(f"{name} {secs:.1f}s" for name, secs in res.steps()))
    dlq = dlq_creates(res)
    if dlq:
        log(f"  SQS queue creates: {len(dlq)}, {min(dlq)}-{max(dlq)}s each (the provider's propagation waiter)")
    return res


def dlq_creates(res: Run) -> list[float]:
    """Seconds each SQS queue's create took, from terraform apply's ``Creation complete after`` lines."""
    out = []
    for _, line in res.lines:
        m = re.search(r"aws_sqs_queue\.\w+(?:\[[^\]]*\])?: Creation complete after (?:(\d+)m)?(\d+)s", line)
        if m:
            out.append(int(m.group(1) or 0) * 60 + int(m.group(2)))
    return out


def measure_daily(bench: Bench, runs: int, *, changes: bool = True) -> dict:
    """Interleaved: raw plan, deployctl plan, up, (raw plan + deployctl plan on a one-line change, revert)."""
    times: dict[str, list[float]] = {k: [] for k in ("raw", "plan", "raw_changed", "plan_changed", "up")}
    steps: dict[str, list[float]] = {}
    up_steps: dict[str, list[float]] = {}
    changed_steps: dict[str, list[float]] = {}
    step_order: list[str] = []
    notes: list[str] = []
    cached: list[bool | None] = []
    for i in range(1, runs + 1):
        log(f"run {i}/{runs}: terraform plan")
        times["raw"].append(bench.terraform_plan().seconds)
        log(f"run {i}/{runs}: deployctl plan (nothing changed)")
        res = bench.deployctl("plan", "--env", "dev")
        times["plan"].append(res.seconds)
        cached.append(bench.plan_gate_cached())
        state = plan_has_changes(res)
        if state["has_changes"]:
            notes.append(f"run {i}: the nothing-changed plan has changes {state['counts']} (emulator drift?)")
        for name, secs in res.steps():
            if name not in steps:
                step_order.append(name)
            steps.setdefault(name, []).append(secs)
        log(f"run {i}/{runs}: deployctl up (nothing changed)")
        res = bench.deployctl("up", "--env", "dev", "--yes")
        times["up"].append(res.seconds)
        for name, secs in res.steps():
            up_steps.setdefault(name, []).append(secs)
        if res.result().get("applied"):
            notes.append(f"run {i}: the nothing-changed up applied something")
        if changes:
            original = change_hcl(bench.root, i)
            try:
                log(f"run {i}/{runs}: terraform plan (one-line HCL change)")
                times["raw_changed"].append(bench.terraform_plan().seconds)
                log(f"run {i}/{runs}: deployctl plan (one-line HCL change)")
                res = bench.deployctl("plan", "--env", "dev")
                times["plan_changed"].append(res.seconds)
                for name, secs in res.steps():
                    changed_steps.setdefault(name, []).append(secs)
                counts = plan_has_changes(res)["counts"] or {}
                if counts.get("update") != 1 or any(counts.get(k) for k in ("create", "delete", "replace")):
                    notes.append(f"run {i}: the one-line change planned {counts}, not exactly one update")
            finally:
                (bench.root / CHANGED_FILE).write_text(original, encoding="utf-8")
            if i < runs:
                # untimed: the caches keyed on the tree (the source gate's, today; the plan gate's and
                # init's with issue 18) hold the changed tree now; "nothing changed" means nothing since
                # the last deployctl run, so one plan on the reverted tree before the next run's rows
                log(f"run {i}/{runs}: deployctl plan on the reverted tree (untimed)")
                bench.deployctl("plan", "--env", "dev")
    return {"times": times, "steps": {k: median(steps[k]) for k in step_order},
            "up_steps": {k: median(v) for k, v in up_steps.items()},
            "changed_steps": {k: median(v) for k, v in changed_steps.items()}, "notes": notes, "cached": cached}


def ratio_rows(m: dict) -> list[list[str]]:
    t = {k: median(v) for k, v in m["times"].items()}
    rows = [["terraform plan -out (baseline)", "-", f"{t['raw']:.2f}", "1.00x", "", ""]]
    pairs = [("plan, nothing changed", "plan", "raw"), ("plan, one-line HCL change", "plan_changed", "raw_changed"),
             ("up, nothing changed", "up", "raw")]
    if m["times"]["raw_changed"]:
        rows.append(["terraform plan -out, one-line HCL change (baseline)", "-", f"{t['raw_changed']:.2f}", "1.00x",
                     "", ""])
    for label, key, base in pairs:
        if not m["times"][key]:
            continue
        r = t[key] / t[base]
        target = TARGETS[label]
        rows.append([f"deployctl {label}", f"{t[base]:.2f}", f"{t[key]:.2f}", f"{r:.2f}x", f"<= {target}x",
                     "met" if r <= target else f"missed by {r / target:.2f}x"])
    return rows


def table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*headers), fmt.format(*["-" * w for w in widths])] + [fmt.format(*r) for r in rows])


HEADERS = ["measure", "baseline s", "median s", "ratio", "target", "met"]


def print_daily(m: dict, runs: int, shape: dict) -> None:
    print(f"deployctl plan / up vs raw terraform plan: dev env on moto, {shape['functions']} functions, "
          f"{shape['tables']} tables, medians of {runs} interleaved runs")
    print(table(ratio_rows(m), HEADERS))
    for key, what in (("steps", "deployctl plan (nothing changed)"), ("up_steps", "deployctl up (nothing changed)"),
                      ("changed_steps", "deployctl plan (one-line HCL change)")):
        if m.get(key):
            total = sum(m[key].values())
            print(f"\nwhere {what} spends its time (median per step, from its step lines):")
            print(table([[name, f"{secs:.2f}", f"{100 * secs / total:.0f}%"] for name, secs in m[key].items()],
                        ["step", "seconds", "share"]))
    cached = m["cached"]
    print(f"\nplan gate verdict from cache: {sum(bool(c) for c in cached)} of {len(cached)} nothing-changed plans")
    for note in m["notes"]:
        print(f"note: {note}")


# -- main -------------------------------------------------------------------------------------------


def _default_mirror() -> str | None:
    return os.environ.get("DEPLOYCTL_E2E_PROVIDER_MIRROR") or ("/opt/tf-plugins" if Path("/opt/tf-plugins").is_dir()
                                                                else None)


def _interrupted(*_) -> None:
    """SIGTERM ends the run as Ctrl-C does: the finally blocks stop moto and remove the temp dir."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved runs per measure (medians)")
    parser.add_argument("--functions", type=int, help="generate a project with this many Lambda functions")
    parser.add_argument("--tables", type=int, help="... and this many DynamoDB tables")
    parser.add_argument("--scale", action="store_true", help="up from empty, plan and up at 4/2 and 40/10; growth")
    parser.add_argument("--terraform", help="Terraform >= 1.10 (default: DEPLOYCTL_E2E_TERRAFORM, "
                        "DEPLOYCTL_TERRAFORM, else the first on PATH)")
    parser.add_argument("--provider-mirror", default=_default_mirror(),
                        help="filesystem mirror holding registry.terraform.io/hashicorp/aws "
                        "(default: DEPLOYCTL_E2E_PROVIDER_MIRROR, else /opt/tf-plugins when it exists)")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    if any(n is not None and n < 1 for n in (args.functions, args.tables)):
        parser.error("--functions and --tables must be >= 1 (up's smoke test needs the health-check function)")

    signal.signal(signal.SIGTERM, _interrupted)
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:  # started in the background by a script: Ctrl-C
        signal.signal(signal.SIGINT, signal.default_int_handler)  # (kill -INT) still tears down
    tmp = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    try:
        try:
            if args.terraform:
                os.environ["DEPLOYCTL_E2E_TERRAFORM"] = args.terraform
            terraform, version = harness.find_terraform()
            provider_env = harness.provider_config(tmp, args.provider_mirror)
        except harness.Unavailable as exc:
            print(f"bench_plan: cannot run: {exc}", file=sys.stderr)
            return 2
        log(f"terraform {version} ({terraform}); temp dir {tmp}")
        if args.scale:
            return scale(tmp, terraform, provider_env, args.runs)
        bench = Bench(tmp / "a", terraform, provider_env, args.functions, args.tables)
        try:
            deploy(bench)
            m = measure_daily(bench, args.runs)
        finally:
            bench.close()
        print_daily(m, args.runs, bench.shape)
        return 0
    except KeyboardInterrupt:
        log("interrupted: tearing down")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def scale(tmp: Path, terraform: str, provider_env: dict[str, str], runs: int) -> int:
    sizes = [(4, 2), (40, 10)]
    results = {}
    for functions, tables in reversed(sizes):  # the large one first: a failure there shows early
        bench = Bench(tmp / f"s{functions}", terraform, provider_env, functions, tables)
        try:
            up = deploy(bench)
            m = measure_daily(bench, runs, changes=False)
            m["up_empty"] = up.seconds
            m["dlq"] = dlq_creates(up)
        finally:
            bench.close()
        results[(functions, tables)] = m
        print_daily(m, runs, bench.shape)
        print(f"deployctl up from empty: {up.seconds:.1f}s; SQS queue creates: {len(m['dlq'])}, "
              f"median {median(m['dlq']):.0f}s each\n")
    small, big = (results[s] for s in sizes)
    rows = []
    for label, key in [("terraform plan -out (raw)", "raw"), ("deployctl plan, nothing changed", "plan"),
                       ("deployctl up, nothing changed", "up")]:
        a, b = median(small["times"][key]), median(big["times"][key])
        rows.append([label, f"{a:.2f}", f"{b:.2f}", f"{b / a:.2f}x"])
    rows.append(["deployctl up from empty", f"{small['up_empty']:.2f}", f"{big['up_empty']:.2f}",
                 f"{big['up_empty'] / small['up_empty']:.2f}x"])
    print(f"growth at {sizes[1][0]} functions / {sizes[1][1]} tables vs {sizes[0][0]} / {sizes[0][1]} "
          f"(x{sizes[1][0] / sizes[0][0]:.0f} functions)")
    print(table(rows, ["measure", f"{sizes[0][0]}/{sizes[0][1]} s", f"{sizes[1][0]}/{sizes[1][1]} s", "growth"]))
    second = big["cached"][1] if len(big["cached"]) > 1 else (big["cached"][0] if big["cached"] else None)
    print(f"plan gate cache at {sizes[1][0]} functions: "
          + ("held (the second plan's verdict came from the cache)" if second
             else "did not hold (checkov ran again on the second plan)" if second is not None else "not measured"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
