"""tracker_diag: label the training regime of every MLflow / W&B run."""

__version__ = "0.1.0"

from tracker_diag.analyze import analyze, analyze_frame  # noqa: E402
from tracker_diag.model import ANALYZER_VERSION, REGIMES, Diagnosis, RunRef, Thresholds  # noqa: E402

__all__ = ["ANALYZER_VERSION", "REGIMES", "Diagnosis", "RunRef", "Thresholds", "analyze", "analyze_frame",
           "__version__"]
