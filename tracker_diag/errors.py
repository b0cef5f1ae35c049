"""One exception tree; every error says what to do next.

    TrackerDiagError
    ├── InputError        a file or option is malformed (exit code 2)
    │   └── ConfigError   a setting of a tracker or a sweep is wrong: says which and what it expects
    ├── ConnectorError    a tracker cannot be reached or answered an error (exit code 2 when
    │   │                 listing fails; a per-run failure is recorded and the batch goes on)
    │   └── Unreachable   the tracker is gone (probe failed, retry budget or --deadline spent,
    │                     circuit open): no further request is made; exit code 2
    ├── BusyError         another tracker-diag holds the lock on this store or sweep (exit code 2)
    └── MissingExtraError an optional dependency is not installed (exit code 2)

Commands raise; ``cli.main`` alone turns an error into "error: …" lines and exit code 2.

Every message is redacted (no URI userinfo, no token) when the error is made.
"""

from __future__ import annotations

import importlib

from tracker_diag.text import redact


class TrackerDiagError(Exception):
    """Base of every error tracker_diag raises; its message never holds a URI's userinfo.
    ``hint``: a line printed under the message (where to look next), set by whoever knows it."""

    hint: str = ""

    def __init__(self, message: object = "", *args):
        super().__init__(redact(str(message)), *args)


class InputError(TrackerDiagError):
    def __init__(self, message: str, path: str | None = None):
        self.path = path
        super().__init__(f"{path}: {message}" if path else message)


class ConfigError(InputError):
    """A tracker option or a sweep setting is wrong."""


class ConnectorError(TrackerDiagError):
    """``transient``: the network failed (a cut response, a timeout), not the request: worth
    re-reading and retrying within the batch's budget. ``limited``: the tracker rate-limited
    the request (HTTP 429): retried for as long as the retry budget allows."""

    def __init__(self, message: str, run_id: str | None = None, transient: bool = False, limited: bool = False):
        self.run_id, self.transient, self.limited = run_id, transient or limited, limited
        super().__init__(message)


class Unreachable(ConnectorError):
    """The tracker stopped answering: the batch makes no further request."""


class BusyError(TrackerDiagError):
    """Another tracker-diag process holds the lock."""


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
