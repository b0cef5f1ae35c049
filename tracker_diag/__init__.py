"""tracker_diag: label the training regime of every MLflow / W&B run."""

__version__ = "0.1.0"

from tracker_diag.analyze import analyze, analyze_frame
from tracker_diag.errors import ConfigError, ConnectorError, InputError, MissingExtraError, TrackerDiagError
from tracker_diag.model import (
    ACTIONS,
    ANALYZER_VERSION,
    CONFIDENCES,
    REGIMES,
    Action,
    Confidence,
    Diagnosis,
    Regime,
    RunRef,
    Thresholds,
)
from tracker_diag.tracker import History, Tracker

__all__ = [
    "ACTIONS",
    "ANALYZER_VERSION",
    "CONFIDENCES",
    "REGIMES",
    "Action",
    "Confidence",
    "ConfigError",
    "ConnectorError",
    "Diagnosis",
    "History",
    "InputError",
    "MissingExtraError",
    "Regime",
    "RunRef",
    "Thresholds",
    "Tracker",
    "TrackerDiagError",
    "__version__",
    "analyze",
    "analyze_frame",
]
