"""tracker_diag: label the training regime of every MLflow / W&B run."""

__version__ = "0.1.0"

from tracker_diag.analyze import analyze, analyze_frame
from tracker_diag.model import ANALYZER_VERSION, REGIMES, Diagnosis, RunRef, Thresholds

__all__ = [
           "ANALYZER_VERSION",
           "REGIMES",
           "Diagnosis",
           "RunRef",
           "Thresholds",
           "__version__",
           "analyze",
           "analyze_frame",
]
