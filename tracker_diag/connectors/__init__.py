"""The backend registry: the one place that knows how to build a tracker's backend.

Each backend declares its name, its options (one declaration gives the ``label <tracker>``
command-line flags and the sweep's TOML keys, with the same types, bounds and environment
defaults) and how it is built from them; a backend's ``close()`` releases what it holds.
``label``, ``report`` and ``sweep`` build backends only through :func:`build`. A new tracker is one module in this package plus one entry in
:data:`REGISTRY`.

    backend = build("mlflow", {"tracking_uri": "sqlite:///mlflow.db", "experiments": ["my-exp"]})
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tracker_diag import settings
from tracker_diag.errors import ConfigError
from tracker_diag.tracker import Tracker


@dataclass(frozen=True)
class Option:
    """One setting of a backend: ``name`` is the TOML key, ``--name`` (or ``cli``) the flag."""

    name: str
    help: str
    kind: str = "str"  # str | flag | int | float | list | json
    default: object = None
    bounds: tuple[float, float] | None = None  # for int and float
    envvar: str | None = None  # the command line's default comes from here
    cli: str | None = None  # the flag when it differs from --name
    short: str | None = None
    metavar: str | None = None
    positional: bool = False  # an optional argument on the command line, not a flag

    @property
    def dest(self) -> str:
        return self.name.replace("-", "_")

    def check(self, value):
        """The value as the backend wants it, or ConfigError saying what is expected. Types are
        strict: the text "false" is not a flag (``bool("false")`` is True)."""
        if value is None:
            return self.default
        if self.kind == "flag":
            if not isinstance(value, bool):
                raise ConfigError(f"{self.name} must be true or false, got {value!r}")
            return value
        if self.kind == "int":
            lo, hi = self.bounds or (1, 2**31)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"{self.name} must be a whole number from {lo} to {hi}, got {value!r}")
            return value
        if self.kind == "float":
            lo, hi = self.bounds or (float("-inf"), float("inf"))
            if not isinstance(value, int | float) or isinstance(value, bool) or not lo <= value <= hi:
                raise ConfigError(f"{self.name} must be a number from {lo:g} to {hi:g}, got {value!r}")
            return float(value)
        if self.kind == "list":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list | tuple) or not all(isinstance(x, str) for x in items):
                raise ConfigError(f"{self.name} must be a list of names, got {value!r}")
            return list(items)
        if self.kind == "json":
            return _json_table(self.name, value)
        if not isinstance(value, str):
            raise ConfigError(f"{self.name} must be a string, got {value!r}")
        return value


def _json_table(name: str, value):
    """A table (TOML) or a JSON object given as text (the command line)."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ConfigError(f"{name} is not JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{name} must be a table or a JSON object, got {value!r}")
    return value


@dataclass(frozen=True)
class BackendSpec:
    name: str
    summary: str
    options: tuple[Option, ...]
    make: Callable[[dict], Tracker]  # checked values (by dest) -> backend

    def check(self, raw: Mapping) -> dict:
        """Every option's checked value by dest; raises ConfigError on the first bad one."""
        return {o.dest: o.check(raw.get(o.dest, raw.get(o.name))) for o in self.options}


def _mlflow(values: dict) -> Tracker:
    from tracker_diag.connectors.mlflow import MlflowBackend

    return MlflowBackend.open(values["tracking_uri"], experiments=values["experiments"] or [],
                         all_experiments=bool(values["all_experiments"]), filter_string=values["filter"],
                         include_running=bool(values["include_running"]), workers=values["workers"])


def wandb_project(path: str | None) -> str:
    """ENTITY/PROJECT, completed from WANDB_PROJECT and WANDB_ENTITY; ConfigError if it cannot be."""
    path = path or settings.get("WANDB_PROJECT") or ""
    entity = settings.get("WANDB_ENTITY")
    if path and "/" not in path and entity:
        path = f"{entity}/{path}"
    if path.count("/") != 1:
        raise ConfigError(f"give the project as ENTITY/PROJECT (or set WANDB_ENTITY and WANDB_PROJECT); got {path!r}")
    return path


def _wandb(values: dict) -> Tracker:
    from tracker_diag.connectors.wandb import WandbBackend

    return WandbBackend(wandb_project(values["project"]), filters=values["filter"],
                        include_running=bool(values["include_running"]), workers=values["workers"])


def _files(values: dict) -> Tracker:
    from tracker_diag.connectors.files import FileBackend

    return FileBackend(values["paths"])


_RUNNING = "Also label running runs (marked provisional). Ended runs ({}) always are."
REGISTRY: dict[str, BackendSpec] = {
    "mlflow": BackendSpec("mlflow", "MLflow experiments (a database URI, a tracking server, or files)", (
        Option("tracking-uri", "Default: $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db here (MLflow 3's default).",
               envvar="MLFLOW_TRACKING_URI", metavar="URI"),
        Option("experiments", "Experiment name or id; repeat for several. Default: $MLFLOW_EXPERIMENT_NAME or "
               "'Default'.", kind="list", cli="--experiment", short="-e", metavar="NAME|ID"),
        Option("all-experiments", "Every active experiment of the store.", kind="flag", default=False),
        Option("filter", "An MLflow search filter, e.g. \"params.lr > '0.01'\" or "
               "\"attributes.run_name LIKE 'bert%'\".", metavar="STR"),
        Option("include-running", _RUNNING.format("FINISHED, FAILED, KILLED"), kind="flag", default=False),
        Option("workers", "Parallel reads and writes (bounded; a tracking server is not flooded).", kind="int",
               default=8, bounds=(1, 32)),
    ), _mlflow),
    "wandb": BackendSpec("wandb", "a W&B project (WANDB_API_KEY, WANDB_BASE_URL from the environment)", (
        Option("project", "ENTITY/PROJECT; default from $WANDB_ENTITY and $WANDB_PROJECT.", metavar="[ENTITY/PROJECT]",
               positional=True),
        Option("filter", "A W&B (MongoDB-style) run filter, e.g. '{\"config.lr\": {\"$gt\": 0.01}}'.", kind="json",
               metavar="JSON"),
        Option("include-running", _RUNNING.format("finished, failed, crashed, killed"), kind="flag",
               default=False),
        Option("workers", "History reads and writes in flight (bounded; W&B rate-limits per API key).", kind="int",
               default=4, bounds=(1, 16)),
    ), _wandb),
    "file": BackendSpec("file", "long-format metric files and W&B offline runs (read-only)", (
        Option("paths", "CSV/TSV/parquet/JSON-lines files, W&B offline run directories or .wandb files.",
               kind="list"),
    ), _files),
}


def build(name: str, values: Mapping) -> Tracker:
    """The backend ``name`` built from its option values (by dest or by TOML name).

    Raises ConfigError for an unknown backend or a bad value, ConnectorError when the
    tracker cannot be reached, MissingExtraError when its SDK is not installed.
    """
    spec = REGISTRY.get(name)
    if spec is None:
        raise ConfigError(f"unknown tracker {name!r}; known: {', '.join(REGISTRY)}")
    return spec.make(spec.check(values))


__all__ = ["REGISTRY", "BackendSpec", "Option", "build", "wandb_project"]
