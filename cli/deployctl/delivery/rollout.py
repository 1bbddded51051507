"""Progressive delivery of Lambda versions: shift ``live`` in steps, watch, roll back on a breach.

``start`` (``deployctl promote --strategy``/``--all``) runs, per function and in parallel:

1. refusals: an unfinished rollout of the function (its record exists), a covering alarm
   already in ALARM (the hotfix trap; ``ignore`` lets named alarms through, with a reason
   recorded in the rollout record and the alias history);
2. the record is created (``If-None-Match: *``: two runners cannot both start);
3. the pre-traffic check: the new version is invoked once with a smoke event (a route of
   ``api/openapi.json`` the function serves, or ``[rollout]`` ``smoke_route``/``smoke_event``)
   and must answer 2xx; otherwise nothing moves;
4. each step: the engine shifts the weight, the record is rewritten (``If-Match``), then the
   signals (:mod:`deployctl.delivery.watch`) are read at once and every ``poll_s`` through the
   step's bake time. A breach (or SIGINT/SIGTERM) restores ``live`` to the old version and
   deletes the record;
5. at 100 % the record is deleted.

``resume`` takes over a record whose owner's lease (``deadline``) ran out and finishes it;
``abort`` undoes it at once (``live`` to the old version). Nothing here imports click.
"""

from __future__ import annotations

import getpass
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from deployctl import aws, naming
from deployctl.artifacts.aliases import AliasState
from deployctl.artifacts.lambdas import get_alias, get_function
from deployctl.config import EnvConfig
from deployctl.delivery import strategy as strategies
from deployctl.delivery.engine import LambdaAliasEngine, TrafficEngine
from deployctl.delivery.record import LostOwnership, RecordStore, Stored
from deployctl.delivery.watch import Breach, Watcher, functions_serving_routes
from deployctl.errors import ConfigError, DeployctlError, OperationFailed, Refused, UsageError
from deployctl.ui import UI

PROMOTED, ROLLED_BACK, INTERRUPTED, FAILED, ABORTED = "promoted", "rolled_back", "interrupted", "failed", "aborted"

EngineFactory = Callable[[EnvConfig, str, str, str, "str | None"], TrafficEngine]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _parse(text: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(text) if text else None
    except ValueError:
        return None


def runner_id() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "?"
    run = os.environ.get("GITHUB_RUN_ID")
    return f"{user}@{socket.gethostname()} pid {os.getpid()}" + (f" (GitHub run {run})" if run else "")


def lease_s(cfg: EnvConfig) -> int:
    """How long a runner owns its record without renewing it (renewed at every poll: two polls of slack)."""
    return 2 * strategies.poll_s(cfg) + 3


def _stale(data: dict) -> bool:
    deadline = _parse(data.get("deadline"))
    return deadline is None or deadline < _now()


def describe_record(data: dict) -> str:
    steps = data.get("steps") or []
    step = data.get("step", 0)
    weight = steps[step]["weight"] if step < len(steps) else "?"
    state = "owner gone (lease expired)" if _stale(data) else f"owned until {data.get('deadline')}"
    return (f"rollout of {data.get('function')} v{data.get('from')} -> v{data.get('to')} at step {step + 1}/"
            f"{len(steps)} ({weight}%), started {data.get('started')} by {data.get('by')}, {state}")


# -- the one-line view other commands use ----------------------------------------------------


def unfinished_rollouts(cfg: EnvConfig) -> list[dict]:
    """Every unfinished rollout of ``cfg``'s env (its record), each with ``stale`` and ``summary``.

    For ``status``, ``doctor`` and ``up``: an empty list when the state bucket does not exist.
    """
    out = []
    for stored in RecordStore(cfg).list():
        data = dict(stored.data)
        data["stale"] = _stale(data)
        data["summary"] = describe_record(data)
        out.append(data)
    return out


def refuse_if_unfinished(cfg: EnvConfig, functions: Sequence[str] | None = None, *, action: str) -> None:
    """:class:`Refused` (one line) when a rollout of one of ``functions`` (default: any) is unfinished."""
    aws.check_account(cfg)  # the account guard's refusal first: the bucket is the env account's
    for data in unfinished_rollouts(cfg):
        if functions is None or not functions or data.get("function") in functions:
            raise Refused(f"{action} refused: unfinished {data['summary']}",
                          hint=f"deployctl rollout status|resume|abort --env {cfg.name} --function {data['function']}")


def moved_functions(cfg: EnvConfig) -> list[str]:
    """The functions whose ``staging`` is ahead of ``live`` (what ``publish-lambda --deploy`` moved)."""
    aws.check_account(cfg)
    lam = aws.client("lambda", cfg.region)
    out = []
    for function in cfg.functions:
        physical = naming.function_name(cfg, function)
        with aws.errors("read the aliases", physical):
            staging = get_alias(lam, physical, naming.STAGING_ALIAS)
            live = AliasState.of(get_alias(lam, physical, naming.LIVE_ALIAS))
        target = (staging or {}).get("FunctionVersion")
        if str(target or "").isdigit() and live.version is not None and (target != live.version or live.weights):
            out.append(function)
    return out


# -- the pre-traffic check -------------------------------------------------------------------


def smoke_event(cfg: EnvConfig, function: str) -> tuple[str, str]:
    """``(description, event JSON)`` of the pre-traffic smoke request for ``function``."""
    import json

    from deployctl.local.events import read_event, route_event

    conf = strategies.settings_for(cfg, function)
    if conf.get("smoke_event"):
        path = (cfg.root / conf["smoke_event"]).resolve()
        if not path.is_relative_to(cfg.root.resolve()) or not path.is_file():
            key = f"rollout.functions.{function}.smoke_event"
            raise ConfigError(f"key '{key}': no such file under the project: {conf['smoke_event']}",
                              where=cfg.where(key))
        return f"event file {conf['smoke_event']}", read_event(Path(path).read_text(encoding="utf-8"), str(path))
    route = conf.get("smoke_route")
    if not route:
        routes = functions_serving_routes(cfg).get(function, [])
        route = next((r for r in routes if r.startswith("GET ") and "{" not in r), None)
        if route is None:
            raise ConfigError(f"no smoke request for {function}: it serves no GET route without path parameters",
                              where=cfg.where("rollout"),
                              hint=f"set smoke_route (+ smoke_body) or smoke_event under [rollout.functions.{function}]")
    served, event = route_event(cfg, route, body=conf.get("smoke_body"))
    if served != function:
        key = f"rollout.functions.{function}.smoke_route"
        raise ConfigError(f"key '{key}': {route} is served by {served}, not {function}", where=cfg.where(key))
    return route, json.dumps(event)


def pre_traffic(cfg: EnvConfig, function: str, version: str) -> dict:
    from deployctl.ops.invoke import invoke_deployed

    what, event = smoke_event(cfg, function)
    res = invoke_deployed(cfg, function, event, qualifier=str(version))
    payload = res.get("payload")
    status = payload.get("statusCode") if isinstance(payload, dict) else None
    ok = not res.get("function_error") and isinstance(status, int) and 200 <= status < 300
    return {"request": what, "ok": ok, "status_code": status, "function_error": res.get("function_error"),
            "executed_version": res.get("executed_version")}


# -- one function's rollout ------------------------------------------------------------------


class Rollout:
    """One function's rollout, from a fresh start or taken over from its record."""

    def __init__(self, cfg: EnvConfig, function: str, data: dict, store: RecordStore, etag: str | None,
                 ui: UI, stop: threading.Event, engine: TrafficEngine | None = None):
        self.cfg, self.function, self.data, self.store, self.etag = cfg, function, data, store, etag
        self.ui, self.stop = ui, stop
        self.steps = [strategies.Step(s["weight"], s["bake_s"]) for s in data["steps"]]
        note = _note(data.get("ignored_alarms") or [])
        self.engine = engine or LambdaAliasEngine(cfg, function, data["from"], data["to"], note)
        since = _parse(data.get("started")) or _now()
        ignored = {a["name"] for a in data.get("ignored_alarms") or []}
        self.watcher = Watcher(cfg, function, data["to"], since, float(data["error_rate_percent"]), ignored)
        self.result: dict = {
            "function": function, "function_name": naming.function_name(cfg, function), "engine": self.engine.name,
            "strategy": data["strategy"], "from": data["from"], "to": data["to"], "steps": [],
            "ignored_alarms": data.get("ignored_alarms") or [], "pre_traffic": data.get("pre_traffic"),
            "outcome": None, "breach": None, "poll_s": strategies.poll_s(cfg),
        }
        self.polls = 0

    def _write(self, **changes: Any) -> None:
        self.data.update(changes)
        self.data["deadline"] = _iso(_now() + timedelta(seconds=lease_s(self.cfg)))
        self.etag = self.store.replace(self.function, self.data, self.etag)

    def _say(self, text: str) -> None:
        self.ui.info(f"{self.result['function_name']}: {text}")

    def _undo(self, outcome: str, breach: Breach | None = None) -> None:
        after = self.engine.restore()
        self.result["outcome"] = outcome
        self.result["breach"] = breach.to_dict() if breach else None
        self.result["live"] = after.to_dict()
        self._say(f"rolled back: live at {after.describe()}")
        self._finish()

    def _finish(self) -> None:
        try:
            self.store.delete(self.function, self.etag)
        except LostOwnership:
            self._say("the rollout record was taken over meanwhile; left it alone")

    def run(self, start_step: int = 0) -> dict:
        poll = strategies.poll_s(self.cfg)
        try:
            for index in range(start_step, len(self.steps)):
                step = self.steps[index]
                if self.stop.is_set():  # interrupted before this step's move
                    self._undo(INTERRUPTED)
                    return self.result
                self._write(step=index)
                after = self.engine.shift(step.weight)
                started = _now()
                entry = {"step": index + 1, "weight": step.weight, "bake_s": step.bake_s,
                         "started": _iso(started), "ended": None, "readings": [], "outcome": None}
                self.result["steps"].append(entry)
                self._say(f"step {index + 1}/{len(self.steps)}: {step.weight}% on v{self.data['to']} "
                          f"({after.describe()}), baking {step.bake_s}s")
                end = time.monotonic() + step.bake_s
                while True:
                    if self.stop.is_set():
                        entry.update(ended=_iso(_now()), outcome=INTERRUPTED)
                        self._undo(INTERRUPTED)
                        return self.result
                    reading = self.watcher.read()
                    self.polls += 1
                    entry["readings"].append(reading.to_dict())
                    if reading.breaches:
                        entry.update(ended=_iso(_now()), outcome="breach")
                        for b in reading.breaches:
                            self._say(b.line())
                        self._undo(ROLLED_BACK, reading.breaches[0])
                        return self.result
                    left = end - time.monotonic()
                    if self.ui.err.isatty():
                        states = ", ".join(f"{n.removeprefix(self.cfg.prefix + '-')} {s}"
                                           for n, s in reading.alarms.items())
                        self._say(f"{step.weight}% {max(left, 0):.0f}s left; v{self.data['to']} errors "
                                  f"{reading.errors:g}/{reading.invocations:g}; alarms: {states}")
                    if left <= 0:
                        break
                    self.stop.wait(min(poll, left))
                    if not self.stop.is_set():
                        self._write()  # renew the lease
                entry.update(ended=_iso(_now()), outcome="passed")
            self.result["outcome"] = PROMOTED
            self.result["live"] = self.engine.current().to_dict()
            self._finish()
            self._say(f"promoted: live at v{self.data['to']}")
        except LostOwnership as exc:
            self.result["outcome"] = FAILED
            self.result["error"] = exc.one_line()
            self._say(f"stopped: {exc.message}; traffic left as it is for its new owner")
        except DeployctlError as exc:
            self.result["outcome"] = FAILED
            self.result["error"] = exc.one_line()
            try:
                self._undo(FAILED)
                self.result["outcome"] = FAILED
            except DeployctlError as again:
                self.result["error"] += f"; rolling back failed too: {again.one_line()}"
        return self.result


def _note(ignored: list[dict]) -> str | None:
    if not ignored:
        return None
    return "ignored " + "; ".join(f"{a['name']}: {a['reason']}" for a in ignored)


# -- starting ------------------------------------------------------------------------------


def _plan(cfg: EnvConfig, function: str, strategy: str | None, version: str | None,
          ignore: dict[str, str], lam: Any) -> tuple[dict, list[Breach]]:
    """The record to create for ``function`` and the covering alarms firing now."""
    physical = naming.function_name(cfg, function)
    name, steps = strategies.resolve(cfg, function, strategy)
    with aws.errors(f"promote {function}", physical):
        get_function(lam, physical)
        live = get_alias(lam, physical, naming.LIVE_ALIAS)
        if version is None:
            staging = get_alias(lam, physical, naming.STAGING_ALIAS)
            version = (staging or {}).get("FunctionVersion")
            if not str(version or "").isdigit():
                raise Refused(f"the staging alias of '{physical}' points at no published version",
                              hint="run publish-lambda --deploy first, or pass --version N")
        get_function(lam, physical, str(version))
    old = AliasState.of(live).version
    if old is None or not str(old).isdigit():
        raise Refused(f"'{physical}' has no live version to roll out from",
                      hint=f"point live at a version first: deployctl promote --env {cfg.name} --function {function}")
    if str(old) == str(version):
        raise UsageError(f"version {version} is already live on '{physical}'", where="--version",
                         hint="publish-lambda --deploy a new version first")
    now = _now()
    watcher = Watcher(cfg, function, str(version), now, strategies.error_rate_percent(cfg, function))
    firing = watcher.firing()
    data = {
        "function": function, "function_name": physical, "env": cfg.name, "from": str(old), "to": str(version),
        "strategy": name, "steps": [s.to_dict() for s in steps], "step": 0, "started": _iso(now),
        "by": runner_id(), "owner": uuid.uuid4().hex, "engine": LambdaAliasEngine.name,
        "error_rate_percent": strategies.error_rate_percent(cfg, function),
        "ignored_alarms": [{"name": b.signal, "reason": ignore[b.signal]} for b in firing if b.signal in ignore],
    }
    return data, [b for b in firing if b.signal not in ignore]


def start(cfg: EnvConfig, functions: Sequence[str], *, strategy: str | None = None, version: str | None = None,
          ignore: dict[str, str] | None = None, ui: UI | None = None,
          stop: threading.Event | None = None) -> list[dict]:
    """Roll out ``functions`` (in parallel); one result per function (see :class:`Rollout`)."""
    from deployctl.artifacts.packaging import check_functions

    ui = ui or UI()
    ignore = dict(ignore or {})
    check_functions(cfg, list(functions))
    if version is not None and len(functions) != 1:
        raise UsageError("--version names one function's version", where="--version", hint="use it with --function")
    aws.check_account(cfg)
    lam = aws.client("lambda", cfg.region)
    store = RecordStore(cfg)
    prepared: list[tuple[str, dict]] = []
    for function in functions:
        existing = store.get(function)
        if existing is not None:
            raise Refused(f"promote refused: unfinished {describe_record(existing.data)}",
                          hint=f"deployctl rollout status|resume|abort --env {cfg.name} --function {function}")
        data, firing = _plan(cfg, function, strategy, version, ignore, lam)
        if firing:
            names = ", ".join(f"{b.signal} (value {b.value if b.value is not None else '?'}, threshold "
                              f"{b.threshold})" for b in firing)
            raise Refused(f"{function}: covering alarm(s) already in ALARM: {names}",
                          hint="fix them first, or if this rollout is the fix: --ignore-alarm NAME --reason WHY")
        prepared.append((function, data))
    unknown = set(ignore) - {a["name"] for _, d in prepared for a in d["ignored_alarms"]}
    for name in sorted(unknown):
        ui.warn(f"--ignore-alarm {name}: not a covering alarm in ALARM now; ignored during the rollout anyway")
        for _, data in prepared:
            data["ignored_alarms"].append({"name": name, "reason": ignore[name]})

    from deployctl.artifacts.aliases import needs_confirmation

    for _function, data in prepared:
        ui.info(f"{data['function_name']}: rollout v{data['from']} -> v{data['to']} with {data['strategy']} "
                f"({', '.join(str(s['weight']) + '%/' + str(s['bake_s']) + 's' for s in data['steps'])})")
    if needs_confirmation(cfg):
        ui.confirm(f"Roll out {', '.join(f for f, _ in prepared)} in {cfg.name}?",
                   what=f"a rollout in {cfg.name}")
    stop = stop or threading.Event()
    with _signals(stop):
        return _run_all(cfg, prepared, store, ui, stop)


def _run_all(cfg: EnvConfig, prepared: list[tuple[str, dict]], store: RecordStore, ui: UI,
             stop: threading.Event) -> list[dict]:
    results: dict[str, dict] = {}

    def one(function: str, data: dict) -> None:
        try:
            etag = store.create(function, {**data, "deadline": _iso(_now() + timedelta(seconds=lease_s(cfg)))})
        except LostOwnership:
            results[function] = {"function": function, "outcome": "refused", "steps": [],
                                 "error": f"another runner started a rollout of {function} first"}
            return
        try:
            check = pre_traffic(cfg, function, data["to"])
        except DeployctlError as exc:
            check = {"ok": False, "error": exc.one_line()}
        data["pre_traffic"] = check
        if not check["ok"]:
            store.delete(function, etag)
            results[function] = {"function": function, "function_name": data["function_name"], "outcome": FAILED,
                                 "from": data["from"], "to": data["to"], "strategy": data["strategy"],
                                 "pre_traffic": check, "steps": [],
                                 "error": f"pre-traffic check of v{data['to']} failed: "
                                          f"{check.get('error') or 'status ' + str(check.get('status_code'))}"
                                          f"{' (' + check['function_error'] + ')' if check.get('function_error') else ''}"
                                          "; no traffic was moved"}
            ui.info(f"{data['function_name']}: {results[function]['error']}")
            return
        ui.info(f"{data['function_name']}: pre-traffic check passed ({check['request']} -> {check['status_code']})")
        results[function] = Rollout(cfg, function, data, store, etag, ui, stop).run()

    _parallel([(f, d) for f, d in prepared], one)
    return [results[f] for f, _ in prepared if f in results]


def _parallel(items: list[tuple[str, dict]], fn: Callable[[str, dict], None]) -> None:
    errors: list[BaseException] = []

    def guarded(function: str, data: dict) -> None:
        try:
            fn(function, data)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=guarded, args=item, daemon=True, name=f"rollout-{item[0]}") for item in items]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)  # short joins: the main thread stays free to take SIGINT/SIGTERM
    if errors:
        raise errors[0]


@contextmanager
def _signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM set ``stop`` (every rollout then rolls back); the previous handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(_signum, _frame) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# -- recovery --------------------------------------------------------------------------------


def _records(cfg: EnvConfig, store: RecordStore, function: str | None) -> list[Stored]:
    if function is not None:
        from deployctl.artifacts.packaging import check_functions

        check_functions(cfg, [function])
        found = store.get(function)
        return [found] if found else []
    return store.list()


def status(cfg: EnvConfig, function: str | None = None) -> list[dict]:
    store = RecordStore(cfg)
    lam = aws.client("lambda", cfg.region)
    out = []
    for stored in _records(cfg, store, function):
        data = dict(stored.data)
        data["stale"] = _stale(data)
        data["summary"] = describe_record(data)
        with aws.errors("read the live alias", data.get("function_name")):
            live = get_alias(lam, data.get("function_name") or naming.function_name(cfg, data["function"]),
                             naming.LIVE_ALIAS)
        data["live"] = AliasState.of(live).to_dict()
        out.append(data)
    return out


def _take_over(store: RecordStore, stored: Stored) -> tuple[dict, str]:
    data = dict(stored.data)
    data["by"] = runner_id()
    data["owner"] = uuid.uuid4().hex
    etag = store.replace(data["function"], data, stored.etag)
    return data, etag


def resume(cfg: EnvConfig, function: str | None = None, *, ui: UI | None = None,
           stop: threading.Event | None = None) -> list[dict]:
    """Take over every unfinished rollout whose owner's lease ran out, and finish it from its step."""
    ui = ui or UI()
    aws.check_account(cfg)
    store = RecordStore(cfg)
    records = _records(cfg, store, function)
    for stored in records:
        if not _stale(stored.data):
            raise Refused(f"resume refused: {describe_record(stored.data)}",
                          hint="its runner is alive; wait for it, or run deployctl rollout abort")
    taken = []
    for stored in records:
        data, etag = _take_over(store, stored)
        taken.append((data["function"], data, etag))
    stop = stop or threading.Event()
    results: dict[str, dict] = {}

    def one(function: str, data: dict) -> None:
        etag = next(e for f, _, e in taken if f == function)
        ui.info(f"{data['function_name']}: resuming at step {data['step'] + 1}/{len(data['steps'])}")
        results[function] = Rollout(cfg, function, data, store, etag, ui, stop).run(start_step=data["step"])

    with _signals(stop):
        _parallel([(f, d) for f, d, _ in taken], one)
    return [results[f] for f, _, _ in taken if f in results]


def abort(cfg: EnvConfig, function: str | None = None, *, ui: UI | None = None) -> list[dict]:
    """Undo every unfinished rollout (or ``function``'s) at once: live back to the old version."""
    ui = ui or UI()
    aws.check_account(cfg)
    store = RecordStore(cfg)
    out = []
    for stored in _records(cfg, store, function):
        data, etag = _take_over(store, stored)
        engine = LambdaAliasEngine(cfg, data["function"], data["from"], data["to"], _note(data.get("ignored_alarms")
                                                                                          or []))
        after = engine.restore()
        store.delete(data["function"], etag)
        ui.info(f"{data['function_name']}: rollout aborted; live at {after.describe()}")
        out.append({"function": data["function"], "function_name": data["function_name"], "from": data["from"],
                    "to": data["to"], "step": data.get("step"), "outcome": ABORTED, "live": after.to_dict()})
    return out


def outcome_error(results: list[dict]) -> DeployctlError | None:
    """The one error a set of rollout results exits with (None when every one reached 100 %)."""
    from deployctl.errors import Interrupted

    bad = [r for r in results if r.get("outcome") not in (PROMOTED, ABORTED)]
    if not bad:
        return None
    if any(r["outcome"] == INTERRUPTED for r in bad):
        return Interrupted("interrupted: " + "; ".join(f"{r['function']} rolled back to v{r.get('from')}"
                                                       for r in bad if r["outcome"] == INTERRUPTED))
    parts = []
    for r in bad:
        if r.get("breach"):
            b = r["breach"]
            parts.append(f"{r['function']}: {b['signal']} fired (value {b['value']}, threshold {b['threshold']}); "
                         f"rolled back to v{r['from']}")
        else:
            parts.append(f"{r['function']}: {r.get('error') or r['outcome']}")
    refused = all(r["outcome"] == "refused" for r in bad)
    cls = Refused if refused else OperationFailed
    return cls("; ".join(parts), hint="see the steps and readings in the result (--json)")
