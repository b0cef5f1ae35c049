"""Every environment variable tracker-diag reads: its name, default, type and meaning.

The one module that reads ``os.environ`` for a setting (the README's table of settings is
checked against :data:`SETTINGS` by a test). The trackers' own variables are read here too,
so that what tracker-diag defaults from the environment is all in one table::

    from tracker_diag import settings
    settings.get("TRACKER_DIAG_PROBE_TIMEOUT")   # 10.0 unless the environment says otherwise
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tracker_diag.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | float | None
    help: str
    kind: type = str  # str | float

    def read(self, environ: Mapping[str, str] | None = None):
        """The value from the environment (empty counts as unset), else the default; a value
        that is not of the setting's type is a ConfigError naming the variable."""
        raw = (os.environ if environ is None else environ).get(self.name) or None
        if raw is None:
            return self.default
        if self.kind is float:
            try:
                value = float(raw)
            except ValueError:
                raise ConfigError(f"{self.name} must be a number of seconds, got {raw!r}") from None
            if not value > 0:
                raise ConfigError(f"{self.name} must be more than 0, got {raw!r}")
            return value
        return raw


SETTINGS: tuple[Setting, ...] = (
    # tracker-diag's own
    Setting("TRACKER_DIAG_DEADLINE", None, "Default of --deadline: stop making requests after this many seconds.",
            float),
    Setting("TRACKER_DIAG_PROBE_TIMEOUT", 10.0, "Seconds the first request to an MLflow tracking server (or the W&B "
            "server) may take before the tracker counts as unreachable.", float),
    Setting("TRACKER_DIAG_RETRY_BUDGET", 300.0, "Seconds a request that is rate-limited (HTTP 429; Retry-After "
            "honoured) is retried before its run fails; also how long a W&B call may run while the server answers.",
            float),
    Setting("TRACKER_DIAG_CALL_TIMEOUT", 20.0, "Seconds a W&B SDK call may run before tracker-diag checks that the "
            "server still accepts connections (a dead server stops the batch within about a minute).", float),
    Setting("XDG_CACHE_HOME", None, "Where locks and Spark's log go: $XDG_CACHE_HOME/tracker-diag "
            "(default ~/.cache/tracker-diag)."),
    Setting("CI", None, "Set (as CI services do): no progress bar even on a terminal."),
    Setting("COLUMNS", None, "Terminal width for the table when output goes to a pipe or a log (default 160)."),
    # MLflow's, read for their defaults
    Setting("MLFLOW_TRACKING_URI", None, "The MLflow store; unset: sqlite:///mlflow.db in the working directory."),
    Setting("MLFLOW_EXPERIMENT_NAME", None, "Experiment labelled when none is given (else MLFLOW_EXPERIMENT_ID, "
            "else 'Default')."),
    Setting("MLFLOW_EXPERIMENT_ID", None, "Experiment labelled when none is given and MLFLOW_EXPERIMENT_NAME is "
            "unset."),
    # W&B's
    Setting("WANDB_API_KEY", None, "W&B credentials (never printed)."),
    Setting("WANDB_BASE_URL", "https://api.wandb.ai", "The W&B server."),
    Setting("WANDB_ENTITY", None, "Entity of a project given without one."),
    Setting("WANDB_PROJECT", None, "Project labelled when none is given."),
    # Spark's
    Setting("PYSPARK_PYTHON", None, "Python of the Spark workers; unset in local mode: tracker-diag's own "
            "interpreter."),
)
_BY_NAME = {s.name: s for s in SETTINGS}

# A tracking server that stopped answering costs seconds, not MLflow's default 7 retries with
# backoff x2 (255 s per request): our defaults, unless the user set MLflow's own variables.
MLFLOW_HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "3", "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
                        "MLFLOW_HTTP_REQUEST_TIMEOUT": "30"}


def get(name: str):
    """The value of one setting of :data:`SETTINGS` (KeyError for a name it does not hold)."""
    return _BY_NAME[name].read()


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tracker-diag`` (``~/.cache/tracker-diag`` by default)."""
    base = get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base, "tracker-diag")


def is_set(name: str) -> bool:
    """Whether a variable is in the environment at all (Spark's own markers, e.g. PYSPARK_GATEWAY_PORT)."""
    return name in os.environ


def under_spark_submit() -> bool:
    """spark-submit (or pyspark's launcher) started this process: its master and settings win."""
    return bool(os.environ.get("SPARK_ENV_LOADED"))


def behind_proxy() -> bool:
    """Whether requests go through an HTTP proxy (a bare socket probe would not)."""
    return any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY"))


def mlflow_http_defaults() -> dict[str, str]:
    """MLflow's HTTP retry variables as tracker-diag wants them, the user's own values kept."""
    return {k: os.environ.get(k) or v for k, v in MLFLOW_HTTP_DEFAULTS.items()}


def markdown_table() -> str:
    """The README's table of settings."""
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for s in SETTINGS:
        default = "" if s.default is None else f"`{s.default:g}`" if isinstance(s.default, float) else f"`{s.default}`"
        rows.append(f"| `{s.name}` | {default} | {s.help} |")
    return "\n".join(rows)
