"""One exception tree; every error says what to do next.

    TrackerDiagError
    ├── InputError        a file or option is malformed (exit code 2)
    │   └── ConfigError   a setting of a tracker or a sweep is wrong: says which and what it expects
    ├── ConnectorError    a tracker cannot be reached or answered an error (exit code 2 when
    │                     listing fails; a per-run failure is recorded and the batch goes on)
    └── MissingExtraError an optional dependency is not installed
"""

from __future__ import annotations

import importlib


class TrackerDiagError(Exception):
    """Base of every error tracker_diag raises."""


class InputError(TrackerDiagError):
    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(InputError):
    """A tracker option or a sweep setting is wrong."""


class ConnectorError(TrackerDiagError):
    def __init__(self, message: str, run_id: str | None = None):
        self.run_id = run_id
        super().__init__(message)


class MissingExtraError(TrackerDiagError):
    def __init__(self, package: str, extra: str):
        self.package, self.extra = package, extra
        super().__init__(f"{package} is not installed: pip install 'tracker-diag[{extra}]'")


def need(module: str, extra: str, package: str | None = None):
    """``import module``, or MissingExtraError naming the extra that installs it:
    the one place that turns a missing optional dependency into a fix-it message."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(package or module.split(".")[0], extra) from exc
