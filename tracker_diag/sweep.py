"""The nightly sweep: every configured source, labelled incrementally, under a lock.

Configuration (``tracker-diag.toml``, or ``[tool.tracker-diag]`` in a pyproject.toml)::

    write = true                      # default false: a dry run
    attach-plots = true               # upload each changed run's diagnosis plot
    fail-on = ["diverging"]
    gap-threshold = 0.2
    report = "reports/nightly.html"   # optional
    json = "reports/nightly.json"     # optional
    state = ".tracker-diag-state.json"  # last sweep's regimes, to say what changed
    keys = { train_loss = "loss" }

    [[sources]]
    name = "local"
    type = "mlflow"
    tracking-uri = "sqlite:///mlflow.db"
    experiments = ["my-exp"]          # or all-experiments = true
    filter = "params.model = 'resnet'"

Every problem in the file gets one line naming the file and the entry; a source that is
wrong or unreachable is reported and the others are still labelled.
"""

from __future__ import annotations

import contextlib
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tracker_diag.atomic import atomic_write
from tracker_diag.batch import BatchResult, label
from tracker_diag.connectors import REGISTRY, Option, build
from tracker_diag.errors import BusyError, ConfigError, ConnectorError, InputError, MissingExtraError
from tracker_diag.keys import ROLES
from tracker_diag.locks import exclusive, labelling
from tracker_diag.model import DEFAULT_GAP, Thresholds, parse_regimes

# The top-level settings, checked as strictly as a source's options (connectors.Option): the
# text "false" is not false, a number in quotes is not a number.
SETTINGS = (
    Option("write", "Write the labels (default: a dry run).", kind="flag", default=False),
    Option("force", "Relabel runs whose data did not change.", kind="flag", default=False),
    Option("attach-plots", "Upload each changed run's diagnosis plot.", kind="flag", default=False),
    Option("fail-on", "Regimes that make the exit code 3.", kind="list", default=[]),
    Option("gap-threshold", "Train minus test accuracy that is overfitting.", kind="float", default=DEFAULT_GAP,
           bounds=(0.0, 1.0)),
    Option("report", "HTML report path (relative to the file)."),
    Option("json", "JSON report path (relative to the file)."),
    Option("state", "Where the last sweep's regimes are kept (relative to the file)."),
)
_TOP = {o.name for o in SETTINGS} | {"keys", "sources"}
_TRACKERS = tuple(k for k in REGISTRY if k != "file")  # what a sweep can label
_COMMON = {"name", "type", "keys"}
ALARMING = ("diverging", "overfitting", "data_issue")


@dataclass
class Source:
    name: str
    type: str
    options: dict  # checked values, by dest (connectors.REGISTRY)
    keys: dict[str, str]


@dataclass
class Config:
    path: Path
    write: bool = False
    force: bool = False
    attach_plots: bool = False
    fail_on: tuple[str, ...] = ()
    thresholds: Thresholds = field(default_factory=Thresholds)
    report: str | None = None
    json: str | None = None
    state: str = ".tracker-diag-state.json"
    sources: list[Source] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # one line per bad entry


def _keys(where: str, value, errors: list[str]) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        errors.append(f"{where}: keys must be a table of ROLE = \"metric key\"")
        return {}
    bad = [k for k in value if k not in ROLES]
    if bad:
        errors.append(f"{where}: unknown role(s) {', '.join(bad)} in keys; roles are {', '.join(ROLES)}")
    return {k: v for k, v in value.items() if k in ROLES}


def load(path: str | Path) -> Config:
    """Read and check a configuration. Raises InputError when nothing can be used and
    ConfigError when a top-level setting is unknown or of the wrong type (it changes the
    whole sweep: nothing is read or written); a wrong source is one line of ``errors``."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError("no such configuration file", str(path)) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid TOML: {exc}", str(path)) from exc
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("tracker-diag")
        if data is None:
            raise InputError("has no [tool.tracker-diag] table", str(path))
    cfg = Config(path=path)
    err = cfg.errors
    settings = _settings(path, data)  # a wrong top-level setting changes the whole sweep: nothing runs
    cfg.write, cfg.force, cfg.attach_plots = settings["write"], settings["force"], settings["attach_plots"]
    cfg.fail_on = tuple(settings["fail_on"])
    try:
        cfg.thresholds = Thresholds(acc_gap=settings["gap_threshold"])
    except ValueError as exc:
        raise ConfigError(f"{path}: gap-threshold: {exc}") from exc
    base = path.parent
    for name in ("report", "json", "state"):
        if settings[name] is not None:
            setattr(cfg, name, str(base / settings[name]))
    if settings["state"] is None:
        cfg.state = str(base / cfg.state)
    top: list[str] = []
    global_keys = _keys(f"{path}: keys", data.get("keys"), top)
    sources = data.get("sources", [])
    if not isinstance(sources, list):
        top.append(f"{path}: sources must be [[sources]] tables, got {sources!r}")
    if top:
        raise ConfigError("\n".join(top))
    if not sources:
        err.append(f"{path}: no [[sources]] configured")
    for i, raw in enumerate(sources):
        source = _source(path, i, raw, global_keys, err)
        if source is not None:
            cfg.sources.append(source)
    return cfg


def _source(path: Path, i: int, raw, global_keys: dict[str, str], err: list[str]) -> Source | None:
    """One [[sources]] entry checked against its tracker's declared options, or None."""
    where = f"{path}: sources[{i}]" + (f" ({raw.get('name')})" if isinstance(raw, dict) and raw.get("name") else "")
    if not isinstance(raw, dict):
        err.append(f"{where}: must be a table")
        return None
    kind = raw.get("type")
    if kind not in _TRACKERS:
        err.append(f"{where}: type must be one of {', '.join(_TRACKERS)}, got {kind!r}")
        return None
    spec = REGISTRY[kind]
    known = _COMMON | {o.name for o in spec.options}
    unknown = sorted(set(raw) - known)
    if unknown:
        err.append(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        return None
    name = str(raw.get("name") or raw.get("tracking-uri") or raw.get("project") or f"source {i}")
    if kind == "mlflow" and not raw.get("experiments") and not raw.get("all-experiments"):
        err.append(f"{where}: give experiments = [...] or all-experiments = true")
        return None
    if kind == "wandb" and not raw.get("project"):
        err.append(f"{where}: give project = \"entity/project\"")
        return None
    try:
        options = spec.check({k: v for k, v in raw.items() if k not in _COMMON})
    except ConfigError as exc:
        err.append(f"{path}: source {name!r}: {exc}")
        return None
    return Source(name, kind, options, {**global_keys, **_keys(where, raw.get("keys"), err)})


def _settings(path: Path, data: dict) -> dict:
    """The top-level settings by dest; ConfigError (one line per problem, each naming the file,
    the key, the value and what is expected) if any is unknown or of the wrong type."""
    problems = [f"{path}: unknown setting {key!r} (known: {', '.join(sorted(_TOP))})" for key in sorted(set(data) - _TOP)]
    out = {}
    for o in SETTINGS:
        try:
            out[o.dest] = o.check(data.get(o.name))
        except ConfigError as exc:
            problems.append(f"{path}: {exc}")
    try:
        out["fail_on"] = parse_regimes(out.get("fail_on"))
    except ValueError as exc:
        problems.append(f"{path}: fail-on: {exc}")
    if problems:
        raise ConfigError("\n".join(problems))
    return out


def lock(state_path: str):
    """An exclusive, non-blocking lock next to the state file: two sweeps never overlap."""
    return exclusive(Path(f"{state_path}.lock"), "another sweep is running")


@dataclass
class SweepResult:
    batch: BatchResult = field(default_factory=BatchResult)
    per_source: list[tuple[str, BatchResult | None, str]] = field(default_factory=list)  # name, batch, error
    changes: list[dict] = field(default_factory=list)


def run(cfg: Config, progress=None, keep_curves: bool = False) -> SweepResult:
    """Label every source; one failing source is recorded and the others go on."""
    out = SweepResult()
    for src in cfg.sources:
        try:
            with contextlib.closing(build(src.type, src.options)) as backend, contextlib.ExitStack() as stack:
                if cfg.write:  # the lock `label --write` takes: never two writers on one scope
                    stack.enter_context(labelling(backend.source, backend.describe()))
                batch = label(backend, keys=src.keys or None, thresholds=cfg.thresholds, write=cfg.write,
                              force=cfg.force, progress=progress, keep_curves=keep_curves,
                              attach_plots=cfg.attach_plots and cfg.write)
        except (ConfigError, ConnectorError, MissingExtraError, BusyError) as exc:
            out.per_source.append((src.name, None, f"{cfg.path}: source {src.name!r}: {exc}"))
            continue
        out.per_source.append((src.name, batch, ""))
        out.batch.results.extend(batch.results)
    out.changes = _changes(cfg.state, out)
    return out


def _changes(state_path: str, result: SweepResult) -> list[dict]:
    """Compare with the previous sweep's regimes, save the new ones (atomically)."""
    path = Path(state_path)
    try:
        before = json.loads(path.read_text(encoding="utf-8")).get("runs", {})
    except (FileNotFoundError, ValueError):
        before = {}
    now = dict(before)
    changes = []
    for name, batch, _ in result.per_source:
        if batch is None:
            continue  # an unreachable source keeps its last known regimes
        for r in batch.results:
            if r.diagnosis is None:
                continue
            key = f"{name}/{r.ref.run_id}"
            old = before.get(key, {}).get("regime")
            if old != r.diagnosis.regime:
                changes.append({"source": name, "run_id": r.ref.run_id, "run_name": r.ref.run_name,
                                "before": old, "after": r.diagnosis.regime, "url": r.ref.url})
            now[key] = {"regime": r.diagnosis.regime, "run_name": r.ref.run_name}
    rank = {k: i for i, k in enumerate(ALARMING)}
    changes.sort(key=lambda c: (rank.get(c["after"], len(ALARMING)), c["source"], c["run_name"]))
    atomic_write(str(path), json.dumps({"runs": now}, indent=1, sort_keys=True) + "\n")
    return changes
