"""Plain data shared by every layer: regimes, thresholds, the diagnosis. No I/O."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ANALYZER_VERSION = "1"

REGIMES = ("learning", "overfitting", "data_issue", "plateau", "diverging", "insufficient_data")

ADVICE = {
    "learning": "Still learning: keep training (both losses are still falling).",
    "overfitting": ("Overfitting: get more data, add noise augmentation or resampling, dropout, "
                    "batch norm or regularisation, and use the checkpoint at the best step."),
    "data_issue": ("The dataset looks broken: check label noise, leakage, the train/test split "
                   "and whether train and test come from the same distribution."),
    "plateau": ("Learning hit a bottleneck: lower the learning rate or the batch size "
                "(if it converged and the scores are good enough, stop here)."),
    "diverging": ("Diverging: check the architecture and hyper-parameters (learning rate first), "
                  "and clean the data (NaN/inf inputs, outliers)."),
    "insufficient_data": "Not enough data to judge: log train and test (validation) losses over several steps.",
}


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds; each default's source is given where it is used in analyze.py."""

    acc_gap: float = 0.20
    gl_alpha: float = 0.05
    z_crit: float = 1.96
    flat_rel: float = 0.01
    range_rel: float = 0.05
    twin_ratio: float = 0.25
    test_below: float = 0.95
    train_low: float = 0.2
    blowup: float = 100.0
    late_fraction: float = 0.4
    min_points: int = 5
    max_bins: int = 64

    def __post_init__(self):
        if not 0 < self.acc_gap <= 1:
            raise ValueError(f"acc_gap must be in (0, 1], got {self.acc_gap}")
        if not 0 < self.late_fraction <= 1:
            raise ValueError(f"late_fraction must be in (0, 1], got {self.late_fraction}")
        if self.min_points < 3:
            raise ValueError(f"min_points must be at least 3, got {self.min_points}")
        if self.max_bins < 8:
            raise ValueError(f"max_bins must be at least 8, got {self.max_bins}")
        for name in ("gl_alpha", "z_crit", "flat_rel", "range_rel", "twin_ratio", "test_below", "train_low", "blowup"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Diagnosis:
    regime: str
    acc_gap: float | None = None
    best_step: float | None = None
    onset_step: float | None = None
    flags: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    last_step: float | None = None

    @property
    def advice(self) -> str:
        return ADVICE[self.regime]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["flags"], d["reasons"] = list(self.flags), list(self.reasons)
        d["advice"] = self.advice
        for k in ("best_step", "onset_step", "last_step"):
            d[k] = _step(d[k])
        return d


def _step(x):
    """Steps are integers in every tracker; keep floats only when they really are."""
    if x is None:
        return None
    return int(x) if float(x).is_integer() else float(x)


@dataclass(frozen=True)
class RunRef:
    """A run as a connector lists it, before any history is read."""

    run_id: str
    run_name: str = ""
    source: str = "file"
    experiment: str = ""
    status: str = "FINISHED"
    tags: dict[str, str] = field(default_factory=dict)
    metric_keys: tuple[str, ...] = ()
    params: dict[str, str] = field(default_factory=dict)
    checked: str = ""  # what the data looks like now, compared with diag_checked
    url: str = ""
    extra: dict = field(default_factory=dict)  # connector-private snapshot taken when listing
