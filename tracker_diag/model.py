"""Plain data shared by every layer: regimes, thresholds, the diagnosis. No I/O."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import asdict, astuple, dataclass, field, fields, replace
from typing import Literal, get_args

# 2: rule table, confidence, trends judged against the curve's own noise (issue 9).
# 3: curves read as levels (window medians, log scale across decades, per-epoch
#    aggregation), effect sizes with a practical band, the whole run (issue 19).
ANALYZER_VERSION = "3"

Regime = Literal["learning", "overfitting", "data_issue", "plateau", "diverging", "insufficient_data"]
REGIMES: tuple[Regime, ...] = get_args(Regime)
# the order the terminal table and the HTML report show runs in: what needs a person first
SEVERITY: tuple[Regime, ...] = ("diverging", "overfitting", "data_issue", "plateau", "insufficient_data", "learning")
Confidence = Literal["high", "medium", "low"]
CONFIDENCES: tuple[Confidence, ...] = get_args(Confidence)


def order_key(regime: str | None, confidence: str | None, name: str) -> tuple[int, int, str]:
    """The one order of runs (terminal table, HTML report): failed runs (no regime) first, then
    by SEVERITY, surest first within a regime, then by name."""
    rank = SEVERITY.index(regime) if regime in SEVERITY else -1  # type: ignore[arg-type]
    sure = CONFIDENCES.index(confidence) if confidence in CONFIDENCES else len(CONFIDENCES)  # type: ignore[arg-type]
    return rank, sure, name


def parse_regimes(names: str | list | tuple | None) -> tuple[Regime, ...]:
    """Regime names from "a,b" or a list; ValueError naming the unknown ones (--fail-on, fail-on)."""
    items = names.split(",") if isinstance(names, str) else list(names or ())
    items = [str(n).strip() for n in items if str(n).strip()]
    bad = [n for n in items if n not in REGIMES]
    if bad:
        raise ValueError(f"unknown regime(s) {', '.join(bad)}; choose from {', '.join(REGIMES)}")
    return tuple(items)  # type: ignore[arg-type]
Action = Literal["written", "unchanged", "dry-run", "failed"]  # what happened to a run (JSON "action")
ACTIONS: tuple[Action, ...] = get_args(Action)

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


# Train minus test accuracy that is overfitting on its own: the rule of thumb's 20 %
# (the analyzer's default, the CLI's --gap-threshold and the sweep's gap-threshold).
DEFAULT_GAP = 0.20


@dataclass(frozen=True)
class Thresholds:
    """Decision thresholds. Each default says where it comes from; the rule table in
    analyze.py says which rule reads it. "Judgement" marks a default that was chosen
    by reading plots (LABELLING.md), not taken from a published criterion.
    """

    acc_gap: float = DEFAULT_GAP  # train minus test accuracy that is overfitting on its own
    # Test accuracy this far above train accuracy is a data problem: dropout and heavy
    # augmentation cost the logged train accuracy up to ~15 points (judgement), label
    # noise costs more.
    reverse_gap: float = 0.30
    # Prechelt 1998 "Early stopping - but when?", GL5: the test loss is 5 % above its
    # minimum. Also the "improved at all" bar of a whole run.
    gl_alpha: float = 0.05
    # One-sided 5 % test of a late trend against the curve's own point-to-point noise.
    z_crit: float = 1.645
    # A change of the late level (the median of the last fifth of the run against the fifth
    # before) under 1 % is flat: what careful readers call "stopped improving" (LABELLING.md;
    # the naive reading's ±2 % between quarters, for windows a fifth of the run apart; chosen
    # leave-one-repository-out on the grid of scripts/evaluate_analyzer.py).
    flat_rel: float = 0.01
    # "Clearly improving": 5 % of its level over the late part, Prechelt's GL5 mirrored.
    clear_rel: float = 0.05
    # A change of the late level this large is a move however noisy the curve (the noise
    # only lowers the confidence): a 5 % fall of a window median is what a reader sees on
    # any plot (LABELLING.md "clearly improving", Prechelt's GL5 mirrored; chosen
    # leave-one-repository-out on the grid of scripts/evaluate_analyzer.py).
    sure_rel: float = 0.05
    # A loss whose level spans more than this factor is read on a log scale (a decade: the
    # trackers' own charts switch to log there).
    log_span: float = 10.0
    # Train ending at or under this fraction of its start ("train halves") while test never
    # got below its first values: generalisation never came (LABELLING.md, "in the light of
    # the whole run"; judgement).
    halved: float = 0.5
    # Train improving less than this fraction of the test curve's late improvement is flat
    # next to it, the label-noise signature (judgement: dropout and augmentation make the
    # two fall at similar rates).
    data_ratio: float = 0.5
    # A rise of the train loss that is a visible part of its plot: a fifth of its range.
    rise_range: float = 0.2
    # Cross-entropy of a uniform guess is ln(classes); a classifier's loss that sits above
    # 10 (ln of 22,000 classes) over the late part is broken, not stalled.
    chance_ce: float = 10.0
    # Test loss below this fraction of train loss from start to end: more than dropout or
    # augmentation explain (they lift the logged train loss by tens of percent; judgement).
    far_below: float = 0.25
    # Train loss flat under this fraction of a flat test loss: memorised (judgement).
    train_low: float = 0.2
    # A loss 100x its best is the weights exploding, not overfitting (judgement).
    blowup: float = 100.0
    # LABELLING.md: "judge the late part of the run (roughly its last third to 40 %)".
    late_fraction: float = 0.4
    # Fewer points than this per curve is a short run: only a monotone fall of at least
    # short_fall (10 %, judgement) is read, with low confidence; fewer than short_points
    # says nothing.
    min_points: int = 5
    short_points: int = 3
    short_fall: float = 0.1
    # Long curves are reduced to this many bin medians before trends are read.
    max_bins: int = 64
    # Fewer points than this per curve is at most medium: a sketch, not a curve (judgement).
    sure_points: int = 10
    # Confidence: the label is re-derived with each sensitivity threshold moved by this
    # factor both ways; a label that holds is high, one that flips names its runner-up.
    tolerance: float = 1.5

    def __post_init__(self):
        for name in ("acc_gap", "reverse_gap"):
            if not 0 < getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in (0, 1], got {getattr(self, name)}")
        if not 0 < self.late_fraction <= 1:
            raise ValueError(f"late_fraction must be in (0, 1], got {self.late_fraction}")
        if self.short_points < 2 or self.min_points < self.short_points:
            raise ValueError(f"need 2 <= short_points <= min_points, got {self.short_points}, {self.min_points}")
        if self.max_bins < 8:
            raise ValueError(f"max_bins must be at least 8, got {self.max_bins}")
        if not self.tolerance >= 1:
            raise ValueError(f"tolerance must be at least 1, got {self.tolerance}")
        for name in SENSITIVITY + ("train_low", "blowup", "short_fall", "rise_range", "chance_ce", "log_span"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def moved(self, name: str, factor: float) -> Thresholds:
        """These thresholds with ``name`` multiplied by ``factor`` (gaps capped at 1)."""
        value = getattr(self, name) * factor
        return replace(self, **{name: min(value, 1.0) if name.endswith("_gap") else value})

    def digest(self, *extra: str) -> str:
        """Short hash of every value (and ``extra`` text, e.g. a key mapping), written into
        diag_checked: new thresholds relabel."""
        text = ",".join([*(f"{f.name}={v!r}" for f, v in zip(fields(self), astuple(self))), *extra])
        return hashlib.sha1(text.encode()).hexdigest()[:8]


# The thresholds that say how sure a change must be; confidence moves these.
SENSITIVITY = ("acc_gap", "reverse_gap", "gl_alpha", "z_crit", "flat_rel", "clear_rel", "sure_rel", "data_ratio", "far_below", "halved")


@dataclass(frozen=True)
class Diagnosis:
    regime: Regime
    acc_gap: float | None = None
    best_step: float | None = None
    onset_step: float | None = None
    flags: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    keys: dict[str, str] = field(default_factory=dict)
    points: dict[str, int] = field(default_factory=dict)
    last_step: float | None = None
    confidence: Confidence = "low"
    runner_up: Regime | None = None
    rule: str = ""  # name of the rule that decided (analyze.RULES)

    @property
    def advice(self) -> str:
        return ADVICE[self.regime]

    @classmethod
    def from_dict(cls, d: Mapping) -> Diagnosis:
        """The inverse of :meth:`to_dict` (keys it does not know, such as ``advice``, are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in d.items() if k in known}
        for k in ("flags", "reasons"):
            values[k] = tuple(values.get(k, ()))
        return cls(**values)

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
