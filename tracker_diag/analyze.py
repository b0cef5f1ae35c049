"""The analyzer: one run's metric histories in, a frozen Diagnosis out.

Pure: no I/O, no clock, no environment. Bad data never raises; it becomes a label
or a flag (``nonfinite``, ``spikes``, ...).

How a curve is read (:func:`_describe`, once per curve), as levels:
1. non-finite points (NaN, ±inf, MLflow's ±1.797e308) are dropped and flagged; steps are
   sorted and de-duplicated (last write wins, as in the trackers); a one-off evaluation
   logged right after the last regular one is set aside;
2. a per-step train curve next to a per-epoch validation is read at the validation's
   resolution (:func:`_align`); long curves are reduced to ``max_bins`` bin medians;
3. a running median gives the best level (no lucky point, no spike); a loss spanning more
   than ``log_span`` is read on a log scale;
4. the late change is the median of the second half of the late part against the first,
   relative to where it started, with its effect size against the curve's own noise.

How a run is labelled: :data:`RULES`, an ordered table of small named functions of the
described curves; the first that returns a verdict decides. Confidence comes from
re-deriving the label with each sensitivity threshold moved by ``tolerance`` both ways
(:meth:`Thresholds.moved`), from the end of the run alone, and from the noise of the deciding
curves (see :func:`_confidence`). docs/labels.md has the table in prose.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from dataclasses import replace as dc_replace

import numpy as np

from tracker_diag.frames import HUGE, as_arrays, split_runs
from tracker_diag.keys import ROLES, candidate_keys, resolve_roles
from tracker_diag.model import SENSITIVITY, Confidence, Diagnosis, Regime, Thresholds


def _median(x: np.ndarray) -> float:
    """np.median without its generic machinery (a hot path: ~10 calls per curve)."""
    n = x.size
    if n == 0:
        return math.nan
    k = n >> 1
    p = x.copy()  # ndarray.partition skips np.partition's dispatch
    if n % 2:
        p.partition(k)
        return float(p[k])
    p.partition((k - 1, k))
    return 0.5 * (float(p[k - 1]) + float(p[k]))


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


@dataclass
class _Curve:
    key: str
    steps: np.ndarray  # finite points only, sorted, unique
    values: np.ndarray  # lower is better (accuracy is turned into error)
    n_logged: int
    nonfinite: int
    tail_nonfinite_step: float | None  # step where the curve went non-finite for good
    zeros_as_nan: bool = False
    kind: str = "loss"
    bins: int = 0  # how many levels to read it at (0: Thresholds.max_bins); see _align
    # filled by _describe (thresholds that only say how to *judge* never enter here)
    log: bool = False  # read on a log scale: the loss spans more than log_span
    first: float = 0.0  # level (median) of the first half of the late part
    last: float = 0.0  # level (median) of its second half: "where the curve is now"
    rel: float = 0.0  # last / first - 1: the late change of the level
    z: float = 0.0  # that change over its standard error from the curve's own noise
    tail_rel: float = 0.0  # the same two on the last half of the late part only
    tail_z: float = 0.0
    start: float = 0.0  # level of the first few points
    lo: float = 0.0  # lowest level of a running median: one lucky point is no best
    lo_step: float = 0.0
    lo_at_end: bool = False  # the lowest level is at the very end
    peak: float = 0.0
    noise: float = 0.0  # robust sigma of the raw late points (Hampel 1974: 1.4826 MAD)
    spikes: int = 0
    n_late: int = 0
    monotone: int = 0  # +1 every step down, -1 every step up, 0 otherwise (short runs)


def _zeros_after_nan(values: np.ndarray, finite: np.ndarray) -> bool:
    """Hugging Face Trainer logs the train loss as 0.0 once it turns NaN: a tail of exact
    zeros right after clearly non-zero losses is that, not a perfect fit."""
    if len(values) < 3 or values[-1] != 0.0 or not finite.all():
        return False
    nz = np.flatnonzero(values != 0.0)
    if len(nz) and values[nz[-1]] > 1e-3 * _median(np.abs(values[nz])) and abs(values[nz[-1]]) > 1e-2:
        finite[nz[-1] + 1:] = False
        return True
    return False


def _prepare(key: str, series, kind: str) -> _Curve:
    steps, values = as_arrays(series)
    ok_step = np.isfinite(steps)
    steps, values = steps[ok_step], values[ok_step]
    if len(steps) > 1 and (steps[1:] <= steps[:-1]).any():
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)  # last write per step wins
        steps, values = steps[last], values[last]
    finite = np.isfinite(values) & (np.abs(values) < HUGE)
    zeros_as_nan = kind == "loss" and _zeros_after_nan(values, finite)
    tail_step = None
    good = np.flatnonzero(finite)
    if len(values) and not finite[-1] and len(good):  # finite first, then NaN/inf for good
        tail_step = float(steps[good[-1] + 1])
    s, v = steps[finite], values[finite]
    if kind == "acc":
        top = float(np.max(np.abs(v))) if len(v) else 0.0
        if 1.5 < top <= 100.0:  # percent
            v = v / 100.0
        v = 1.0 - v  # (above 100 it is no accuracy, but its direction still reads)
    return _Curve(key, s, v, len(values), int((~finite).sum()), tail_step, zeros_as_nan, kind)


def _drop_extra_eval(c: _Curve) -> bool:
    """A last point logged right after the last regular one (Lightning's validation at the
    end of ``fit``, a final ``evaluate``): a one-off, not the curve's end."""
    if len(c.steps) < 6:
        return False
    gaps = np.diff(c.steps)
    regular = _median(gaps[:-1])
    if regular > 0 and gaps[-1] < 0.1 * regular and np.all(gaps[-4:-1] >= 0.5 * regular):
        c.steps, c.values = c.steps[:-1], c.values[:-1]
        return True
    return False


def _bins(c: _Curve, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_bins`` bin medians: per-minibatch noise goes, the level stays."""
    n = len(c.values)
    if n <= max_bins:
        return c.steps, c.values
    per = -(-n // max_bins)
    k = n // per
    cut = n - per * k  # fewer than `per` oldest points are left out so the bins are equal
    v = np.partition(c.values[cut:].reshape(k, per), per // 2, axis=1)[:, per // 2]  # bin medians
    s = c.steps[cut:].reshape(k, per)[:, per // 2]
    return s, v


def _align(curves: Mapping[str, _Curve], th: Thresholds) -> None:
    """Per-epoch aggregation: a train curve logged per step next to a per-epoch validation
    curve is read at the validation's resolution (one bin median per evaluation), so both
    levels carry the same kind of noise."""
    tr, te = curves.get("train"), curves.get("test")
    if tr is None or te is None or len(te.values) < th.short_points:
        return
    if len(tr.values) >= 3 * len(te.values):
        tr.bins = max(len(te.values), th.min_points)
    elif len(te.values) >= 3 * len(tr.values) >= th.short_points:
        te.bins = max(len(tr.values), th.min_points)


def _sigma(d: np.ndarray) -> float:
    """Robust sigma of white noise from its first differences (Hampel 1974: 1.4826 MAD;
    a difference of two noisy points has sqrt(2) sigma). A smooth curve's curvature
    barely moves its differences, so it is not mistaken for noise."""
    if len(d) < 2:
        return 0.0
    return 1.4826 * _median(np.abs(d - _median(d))) / math.sqrt(2)


def _running_median(v: np.ndarray) -> np.ndarray:
    """3-point running median (5 points on curves of 16+ levels): a spike sets no level."""
    if len(v) < 3:
        return v
    m = np.concatenate(([v[0]], _median3(v[:-2], v[1:-1], v[2:]), [v[-1]]))
    if len(v) >= 16:  # a median of medians of 3: robust to two neighbouring spikes
        m[1:-1] = _median3(m[:-2], m[1:-1], m[2:])
    return m


def _levels(w: np.ndarray, late: int, sigma: float) -> tuple[float, float, float]:
    """Median of the first and of the second half of the last ``late`` levels, and their
    difference over its standard error (a median of n normal points: 1.2533 sigma/sqrt n)."""
    lw = w[-late:]
    h = late - late // 2
    a, b = _median(lw[:-h]), _median(lw[-h:])
    se = 1.2533 * sigma * math.sqrt(1.0 / (late - h) + 1.0 / h)
    z = (b - a) / se if se > 0 else (math.copysign(math.inf, b - a) if b != a else 0.0)
    return a, b, z


def _describe(c: _Curve, th: Thresholds) -> None:
    """Read a curve with at least ``short_points`` points as levels: bin medians, a log
    scale when it spans decades, window medians of the late part and their effect size."""
    s, v = _bins(c, c.bins or th.max_bins)
    k = len(v)
    smooth = _running_median(v)
    c.log = c.kind == "loss" and smooth.min() > 0 and smooth.max() > th.log_span * smooth.min()
    unit = float(np.max(np.abs(v))) or 1.0
    w = np.log(v) if c.log else v / unit  # scaling a loss changes nothing
    late = min(k, max(4, math.ceil(th.late_fraction * k)))
    seg = w[-max(late, min(k, 9)):]  # noise from the late part, or the last 9 levels
    sigma = _sigma(seg[1:] - seg[:-1])
    a, b, c.z = _levels(w, late, sigma)
    c.first, c.last, c.rel = _back(a, c.log, unit), _back(b, c.log, unit), _ratio(a, b, c.log)
    tail = min(late, max(4, late // 2))
    ta, tb, c.tail_z = _levels(w, tail, sigma)
    c.tail_rel = _ratio(ta, tb, c.log)
    c.n_late = late
    c.start = float(_median(v[: min(3, k)]))
    i = int(np.argmin(smooth))
    c.lo, c.peak = float(smooth[i]), float(smooth[1:].max() if k > 1 else smooth.max())
    c.lo_at_end = i >= k - max(2, k // 10)
    near = (c.steps >= s[max(i - 1, 0)]) & (c.steps <= s[min(i + 1, k - 1)])
    c.lo_step = float(c.steps[near][np.argmin(c.values[near])]) if near.any() else float(s[i])
    raw = c.values[-max(late, math.ceil(th.late_fraction * len(c.values))):] / unit
    c.noise = _sigma(raw[1:] - raw[:-1]) * unit
    if len(c.values) >= 2 * th.min_points:
        c.spikes = _spikes(c.values / unit)
    dv = c.values[1:] - c.values[:-1]
    c.monotone = 1 if np.all(dv < 0) else (-1 if np.all(dv > 0) else 0)


def _back(x: float, log: bool, unit: float) -> float:
    return math.exp(x) if log else x * unit


def _ratio(a: float, b: float, log: bool) -> float:
    """last / first - 1 of two levels on the working scale (relative to |first| for
    curves that cross zero)."""
    if log:  # levels hundreds of decades apart (1e-286 to 1e29): a factor past float's range
        return math.expm1(b - a) if b - a < 709.0 else math.inf
    return (b - a) / abs(a) if a else (0.0 if b == a else math.copysign(math.inf, b - a))


def _spikes(v: np.ndarray) -> int:
    """Isolated jumps: a point that leaves its neighbours and comes straight back.

    Both steps must exceed 10 robust sigmas of the point-to-point noise (1.4826 * MAD,
    Hampel 1974, with a band wider than his 3 sigma so minibatch jitter is no spike) and
    20 % of the curve's level, so a smooth curve's bend is no spike either.
    """
    d = v[1:] - v[:-1]
    sigma = 1.4826 * _median(np.abs(d - _median(d)))
    level = _median(np.abs(v)) or 1.0
    band = max(10 * sigma, 0.2 * level)
    up, down = d[:-1], d[1:]
    big = (np.minimum(np.abs(up), np.abs(down)) > band) & (np.sign(up) != np.sign(down))
    return int(big.sum())


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _step_txt(x: float | None) -> str:
    if x is None:
        return "?"
    return str(int(x)) if float(x).is_integer() else _fmt(x)


def _acc_gap(hist: Mapping, roles: Mapping[str, str]) -> tuple[float | None, float | None]:
    """Train minus test accuracy at the last step both have reached."""
    if "train_acc" not in roles or "test_acc" not in roles:
        return None, None
    tr = _prepare(roles["train_acc"], hist[roles["train_acc"]], "acc")
    te = _prepare(roles["test_acc"], hist[roles["test_acc"]], "acc")
    if not len(tr.steps) or not len(te.steps) or min(tr.values.min(), te.values.min()) < -0.01:
        return None, None  # above 100: a count or a score, not an accuracy
    at = min(tr.steps[-1], te.steps[-1])
    i = int(np.searchsorted(tr.steps, at, side="right")) - 1
    j = int(np.searchsorted(te.steps, at, side="right")) - 1
    if i < 0 or j < 0:
        return None, None
    return round(float(te.values[j] - tr.values[i]), 6), float(at)  # values are errors: 1 - acc


def _drop_restored_point(curves: dict[str, _Curve], reasons: list[str]) -> bool:
    """Keras EarlyStopping(restore_best_weights) and XGBoost/LightGBM early stopping log
    the best iteration's metrics once more, one step past the end: the curve "drops back".
    A curve that does not move (stuck at chance) repeats nothing; its last point stays.
    """
    ref = curves.get("test")
    if ref is None or len(ref.values) < 5:
        return False
    v = ref.values
    b = int(np.argmin(v[:-1]))
    tol = 1e-6 * abs(v[b])
    if b >= len(v) - 3 or abs(v[-1] - v[b]) > tol or abs(v[-2] - v[-1]) <= tol or _median(v[:-1]) - v[b] <= tol:
        return False
    step = ref.steps[-1]
    for c in curves.values():
        if len(c.steps) and c.steps[-1] == step:
            c.steps, c.values = c.steps[:-1], c.values[:-1]
    reasons.append(f"Early stopping: the last point (step {_step_txt(step)}) repeats the best "
                   f"step {_step_txt(ref.steps[b])}; it is left out of the trends.")
    return True


# --- the rule table -----------------------------------------------------------------

@dataclass(frozen=True)
class _Verdict:
    regime: Regime
    reason: Callable[[], str]  # built only for the verdict that decides (a hot path)
    cap: Confidence = "high"  # the most confidence this rule can give
    onset: bool = False  # overfitting: find the onset step
    flag: str | None = None
    reads: tuple[str, ...] = ()  # the curves whose late trend decided (their noise lowers confidence)


@dataclass
class _Run:
    """What the rules see: the described curves and the accuracy gap."""

    curves: dict[str, _Curve]  # every prepared curve, even without finite points
    train: _Curve | None  # curves with at least short_points points
    test: _Curve | None
    gap: float | None
    gap_step: float | None
    found: str  # "role='key' (n points)" for the insufficient_data reason
    classifier: bool = False  # an accuracy-like metric is logged

    def both(self) -> tuple[_Curve, _Curve]:
        """Train and test, for the rules after ``no_pair`` (which guarantees both)."""
        assert self.train is not None and self.test is not None
        return self.train, self.test


def _direction(c: _Curve, th: Thresholds) -> int:
    """-1 falling, +1 rising, 0 flat. A change of the level under ``flat_rel`` is flat; one
    of ``sure_rel`` or more is a move whatever the noise (the noise lowers the confidence);
    in between it must stand out of the noise (one-sided test at ``z_crit``)."""
    r = c.rel
    if abs(r) < th.flat_rel or not (abs(r) >= th.sure_rel or abs(c.z) >= th.z_crit):
        return 0
    return 1 if r > 0 else -1


def _falling(c: _Curve, th: Thresholds) -> bool:
    return _direction(c, th) < 0


def _rising(c: _Curve, th: Thresholds) -> bool:
    return _direction(c, th) > 0


def _clearly_falling(c: _Curve, th: Thresholds) -> bool:
    return _falling(c, th) and c.rel <= -th.clear_rel


def _noisy(c: _Curve, th: Thresholds) -> bool:
    """A move read mostly from its size: large, but not clearly out of the curve's noise."""
    return abs(c.rel) >= th.flat_rel and abs(c.z) < th.z_crit


def _trend(c: _Curve, th: Thresholds) -> str:
    return ("flat", "rising", "falling")[_direction(c, th)]


def _improved(c: _Curve, th: Thresholds) -> bool:
    """Over the whole run: the late level sits gl_alpha below the first points."""
    return c.start - c.last > th.gl_alpha * abs(c.start)


def _gl(c: _Curve) -> float:
    """Prechelt's generalisation loss of the late level (a median, robust to one good or
    bad last point) against the lowest running-median level."""
    if c.lo == 0:
        return math.inf if c.last > 0 else 0.0
    return (c.last - c.lo) / abs(c.lo)


def _change_txt(c: _Curve) -> str:
    """'fell 28 % (0.52 -> 0.37)' or 'fell 3.1x': relative to where the late part started."""
    ends = f"({_fmt(c.first)} → {_fmt(c.last)})"
    if c.first > 0 and c.last > 0 and max(c.first / c.last, c.last / c.first) >= 2:
        verb = "fell" if c.last < c.first else "rose"
        return f"{verb} {_fmt(max(c.first / c.last, c.last / c.first))}x {ends}"
    if abs(c.rel) < 0.0005:
        return f"did not move {ends}"
    verb = "fell" if c.rel < 0 else "rose"
    return f"{verb} {abs(c.rel) * 100:.2g} % {ends}"


def _moved(c: _Curve, th: Thresholds) -> str:
    return f"{c.key!r} {_change_txt(c)} over the last {_fmt(th.late_fraction * 100)} % ({_trend(c, th)})"


def _full(run: _Run) -> bool:
    return run.train is not None and run.test is not None


def _said(text: str) -> Callable[[], str]:
    """A reason already written (rules that loop over curves build theirs eagerly)."""
    return lambda: text


def rule_nan_everywhere(run: _Run, th: Thresholds) -> _Verdict | None:
    for split in ("train", "test"):
        c = run.curves.get(split)
        if c is not None and c.kind == "loss" and c.n_logged and not len(c.values):
            return _Verdict("diverging", _said(f"The {split} loss {c.key!r} is NaN/inf at all {c.n_logged} "
                                               "logged points."))
    return None


def rule_nan_for_good(run: _Run, th: Thresholds) -> _Verdict | None:
    for split in ("train", "test"):
        c = run.curves.get(split)
        if c is not None and c.tail_nonfinite_step is not None:
            how = "was logged as 0.0 after turning NaN" if c.zeros_as_nan else "became NaN/inf"
            lone = c.nonfinite == 1 and not c.zeros_as_nan  # one bad last point: a hint, not proof
            return _Verdict("diverging", _said(f"The {split} curve {c.key!r} {how} at step "
                            f"{_step_txt(c.tail_nonfinite_step)} and never recovered."), "medium" if lone else "high")
    return None


def rule_exploded(run: _Run, th: Thresholds) -> _Verdict | None:
    """Overfitting moves a test loss by percents to a few-fold; a factor of ``blowup`` is
    the weights blowing up (learning rate far too high), even when the run came back."""
    for c in (run.train, run.test):
        if c is None or c.lo <= 0:
            continue
        if c.last > th.blowup * c.lo:
            return _Verdict("diverging", _said(f"{c.key!r} blew up to {_fmt(c.last)}, over {_fmt(th.blowup)}x its best "
                            f"({_fmt(c.lo)}): the weights exploded."))
        if c.peak > th.blowup * max(c.start, c.last, float(c.values[0])):
            return _Verdict("diverging", _said(f"{c.key!r} exploded to {_fmt(c.peak)} mid-run, over {_fmt(th.blowup)}x "
                            "where it started and ended: training is unstable (learning rate too high)."))
    return None


def rule_train_rises(run: _Run, th: Thresholds) -> _Verdict | None:
    """Training making its own loss worse: rising late, or sitting clearly above where it
    started. Both beyond the noise (a tiny learning rate's jitter is no divergence), and
    not while the test curve is at its best at the end (that run is getting better)."""
    c, te = run.train, run.test
    if c is None or (te is not None and te.lo_at_end and not _rising(te, th)):
        return None
    above_best = c.last - c.lo > max(th.gl_alpha * abs(c.lo), c.noise, th.rise_range * (c.peak - c.lo))
    above_start = c.last - c.start > max(th.gl_alpha * abs(c.start), 3 * c.noise) and c.rel > 0
    if (_rising(c, th) and above_best) or above_start:
        return _Verdict("diverging", lambda: f"The train curve {c.key!r} gets worse: now {_fmt(c.last)} against "
                        f"{_fmt(c.start)} at the start and a best of {_fmt(c.lo)}; {_moved(c, th)}.", "medium",
                        reads=("train",))
    return None


def rule_far_above_chance(run: _Run, th: Thresholds) -> _Verdict | None:
    """A classifier (it logs an accuracy) whose loss sits far above any chance level:
    the weights blew up (often before the first log)."""
    c = run.train
    if c is None or c.kind != "loss" or not run.classifier or c.last <= th.chance_ce:
        return None
    return _Verdict("diverging", lambda: f"The train loss {c.key!r} sits at {_fmt(c.last)} over the late part: a "
                    f"classifier's cross-entropy above {_fmt(th.chance_ce)} is far beyond chance level.", "medium")


def rule_no_pair(run: _Run, th: Thresholds) -> _Verdict | None:
    if _full(run):
        return None
    missing = [s for s in ("train", "test") if getattr(run, s) is None]
    return _Verdict("insufficient_data", lambda: f"No usable {' and '.join(missing)} curve (at least {th.short_points} "
                    f"finite points needed); metric keys found: {run.found}.", "high")


def _at_chance(c: _Curve) -> int:
    """k when the loss sits at ln(k), a uniform guess over k classes (2..20), else 0."""
    if c.kind != "loss":
        return 0
    return next((k for k in range(2, 21) if abs(c.last - math.log(k)) < 0.01 * math.log(k)), 0)


def rule_short_run(run: _Run, th: Thresholds) -> _Verdict | None:
    """A handful of points still says something when it is monotone and large, or when
    it sits at chance level without moving."""
    tr, te = run.both()
    if min(len(tr.values), len(te.values)) >= th.min_points:
        return None
    n = min(len(tr.values), len(te.values))
    fall = (te.start - te.values[-1]) / abs(te.start) if te.start else 0.0
    if te.monotone == 1 and fall >= th.short_fall and tr.monotone != -1:
        return _Verdict("learning", lambda: f"Only {n} points, but {te.key!r} fell {_fmt(fall * 100)} % at every step.", "low")
    if te.monotone == -1 and tr.monotone == 1:
        return _Verdict("overfitting", lambda: f"Only {n} points: {tr.key!r} fell at every step while {te.key!r} rose.",
                        "low", onset=True)
    if te.monotone == -1 and tr.monotone == -1:
        return _Verdict("diverging", lambda: f"Only {n} points, and both curves rose at every step.", "low")
    if _at_chance(tr) and abs(fall) < th.short_fall:
        return _Verdict("plateau", lambda: f"Only {n} points, at chance level and not moving{_chance_level(tr)}.", "low",
                        flag="stalled")
    return _Verdict("insufficient_data", lambda: f"Only {n} points and no monotone trend: too short to judge "
                    f"(at least {th.min_points} needed).", "low")


def rule_acc_gap(run: _Run, th: Thresholds) -> _Verdict | None:
    gap = run.gap
    if gap is None or gap < th.acc_gap:
        return None
    return _Verdict("overfitting", lambda: f"Train accuracy is {_fmt(gap * 100)} points above test accuracy at step "
                    f"{_step_txt(run.gap_step)} (threshold {_fmt(th.acc_gap * 100)}).", onset=True)


def rule_never_generalised(run: _Run, th: Thresholds) -> _Verdict | None:
    """The whole run: train fell ``halved``x or more while test never got below its first
    values and is not falling now: generalisation never came."""
    tr, te = run.both()
    if not (tr.start > 0 and tr.last <= th.halved * tr.start) or te.lo < (1 - th.gl_alpha) * te.start:
        return None
    if _falling(te, th):
        return None
    return _Verdict("overfitting", lambda: f"Over the whole run {tr.key!r} fell from {_fmt(tr.start)} to {_fmt(tr.last)} "
                    f"while {te.key!r} never got below its first values ({_fmt(te.start)}, best {_fmt(te.lo)}): the "
                    "model fits its training set and does not generalise.", onset=True, reads=("test",))


def rule_test_left_minimum(run: _Run, th: Thresholds) -> _Verdict | None:
    """Prechelt 1998, "Early stopping - but when?": GL = E/E_opt - 1 above alpha means the
    test loss left its minimum; it must also stand out of the noise and not be on its way
    back (still falling late is allowed only when far above the minimum)."""
    tr, te = run.both()
    gl = _gl(te)
    if te.lo_at_end or gl <= th.gl_alpha or te.last - te.lo <= te.noise or _rising(tr, th):
        return None
    train_learns = _falling(tr, th) or tr.lo_at_end or (0 < tr.last < th.train_low * te.last)
    if not train_learns:  # both settled, the test a little above an early dip: a plateau
        return None
    if _falling(te, th) and gl <= 2 * th.gl_alpha:
        return None
    return _Verdict("overfitting", lambda: f"The test curve {te.key!r} sits {_fmt(gl * 100)} % above its best level "
                    f"({_fmt(te.lo)} at step {_step_txt(te.lo_step)}; Prechelt's GL > {_fmt(th.gl_alpha * 100)} %) "
                    f"while {_moved(tr, th)}.", onset=True, reads=("train",))


def rule_test_acc_far_above(run: _Run, th: Thresholds) -> _Verdict | None:
    """Test accuracy reverse_gap or more above train accuracy: dropout and augmentation
    cost some points of train accuracy, label noise costs far more."""
    gap = run.gap
    if gap is None or -gap < th.reverse_gap:
        return None
    return _Verdict("data_issue", lambda: f"Test accuracy is {_fmt(-gap * 100)} points above train accuracy at "
                    f"step {_step_txt(run.gap_step)}: more than regularisation explains; check the training labels "
                    "and the split.", "medium")


def rule_test_far_below(run: _Run, th: Thresholds) -> _Verdict | None:
    tr, te = run.both()
    if not (tr.last > 0 and te.last > 0 and tr.start > 0 and te.start > 0):
        return None
    if te.last < th.far_below * tr.last and te.start < th.far_below * tr.start:
        return _Verdict("data_issue", lambda: f"The test loss stays under {_fmt(th.far_below)}x the train loss from start "
                        f"to end ({_fmt(te.last)} against {_fmt(tr.last)}): more than dropout or augmentation "
                        "explain; check for leakage or a mismatched split.", "medium")
    return None


def rule_train_flat_test_falls(run: _Run, th: Thresholds) -> _Verdict | None:
    """Train flat (or worse) while test still improves: the model learns what generalises
    but not its own training labels (label noise looks like this)."""
    tr, te = run.both()
    if not _falling(te, th) or tr.rel <= max(th.data_ratio * te.rel, -th.flat_rel):
        return None  # train falling (by flat_rel, or half as fast as test) is both learning
    # train learned, then settled while test creeps down a little: converging, as likely
    cap: Confidence = "medium" if _clearly_falling(te, th) and not _improved(tr, th) else "low"
    return _Verdict("data_issue", lambda: f"Train is flat next to test ({_moved(tr, th)}; {_moved(te, th)}): the model "
                    "learns what generalises but not its own training labels.", cap, reads=("train", "test"))


def _at_best_and_falling(c: _Curve, th: Thresholds) -> bool:
    """At its best level at the very end and still lower than the late part began, beyond
    the noise: improving, if slowly (LABELLING.md: "still improving at the end")."""
    return c.lo_at_end and c.rel <= -th.flat_rel / 2 and c.z <= -th.z_crit / 2


def rule_still_learning(run: _Run, th: Thresholds) -> _Verdict | None:
    """Test falling; or at its best at the end and still lower, while train falls too
    (validation improving more slowly than train is learning, not overfitting)."""
    tr, te = run.both()
    if not (_falling(te, th) or (_at_best_and_falling(te, th) and _falling(tr, th))):
        return None
    return _Verdict("learning", lambda: f"The test curve still improves: {_moved(te, th)}; {_moved(tr, th)}.",
                    reads=("test",))


def rule_monotone_short(run: _Run, th: Thresholds) -> _Verdict | None:
    """A few epochs, test better at every one of them, train not worse: learning, by a
    little (a curve near chance that improves every epoch has not stalled)."""
    tr, te = run.both()
    if len(te.values) >= th.sure_points or te.monotone != 1 or tr.monotone == -1 or _rising(tr, th):
        return None
    fall = (te.start - float(te.values[-1])) / abs(te.start) if te.start else 0.0
    if te.rel <= -th.sure_rel or fall < th.flat_rel:
        return None  # a clear fall is still_learning's; one too small to see is no learning
    return _Verdict("learning", lambda: f"Only {len(te.values)} points, and {te.key!r} improved at every one of them "
                    f"({_fmt(te.start)} → {_fmt(float(te.values[-1]))}).", "low")


def rule_train_outpaces_test(run: _Run, th: Thresholds) -> _Verdict | None:
    tr, te = run.both()
    if not _clearly_falling(tr, th) or _falling(te, th):
        return None
    return _Verdict("overfitting", lambda: f"Train keeps improving while test has stopped: {_moved(tr, th)}; "
                    f"{_moved(te, th)}.", onset=True, reads=("train", "test"))


def rule_train_far_below(run: _Run, th: Thresholds) -> _Verdict | None:
    tr, te = run.both()
    if not (tr.last > 0 and te.last > 0) or te.lo_at_end or tr.last >= th.train_low * te.last:
        return None
    return _Verdict("overfitting", lambda: f"Train has flattened far below test ({_fmt(tr.last)} against {_fmt(te.last)}, "
                    f"under {_fmt(th.train_low)}x) and test is past its best: the model memorised its training set.",
                    "medium", onset=True)


def rule_plateau(run: _Run, th: Thresholds) -> _Verdict | None:
    tr, te = run.both()
    improved = _improved(tr, th) or _improved(te, th)
    what = "improved, then flattened" if improved else "never improved"
    return _Verdict("plateau", lambda: f"Test has stopped improving and train is not clearly improving either: "
                    f"{_moved(tr, th)}; {_moved(te, th)}; the run {what}{_chance_level(tr)}.",
                    flag="converged" if improved else "stalled", reads=("train", "test"))


Rule = Callable[[_Run, Thresholds], "_Verdict | None"]
# Ordered: the first rule that returns a verdict decides. Non-finite and exploding
# curves first (they make every trend meaningless), then "is there anything to read",
# then the rules of thumb from the most specific evidence to the least. The first
# INSENSITIVE rules read no sensitivity threshold (model.SENSITIVITY) nor any trend.
RULES: tuple[tuple[str, Rule], ...] = (
    ("nan_everywhere", rule_nan_everywhere),
    ("nan_for_good", rule_nan_for_good),
    ("exploded", rule_exploded),
    ("train_rises", rule_train_rises),
    ("no_pair", rule_no_pair),
    ("short_run", rule_short_run),
    ("far_above_chance", rule_far_above_chance),
    ("acc_gap", rule_acc_gap),
    ("never_generalised", rule_never_generalised),
    ("test_left_minimum", rule_test_left_minimum),
    ("test_acc_far_above", rule_test_acc_far_above),
    ("test_far_below", rule_test_far_below),
    ("train_flat_test_falls", rule_train_flat_test_falls),
    ("monotone_short", rule_monotone_short),
    ("still_learning", rule_still_learning),
    ("train_outpaces_test", rule_train_outpaces_test),
    ("train_far_below", rule_train_far_below),
    ("plateau", rule_plateau),
)
INSENSITIVE = 3


def _decide(run: _Run, th: Thresholds, first: int = 0) -> tuple[int, _Verdict]:
    for index in range(first, len(RULES)):
        verdict = RULES[index][1](run, th)
        if verdict is not None:
            return index, verdict
    raise AssertionError("rule_plateau always decides")  # pragma: no cover


_RANK: dict[Confidence, int] = {"high": 2, "medium": 1, "low": 0}
_LEVEL: dict[int, Confidence] = {2: "high", 1: "medium", 0: "low"}


@functools.lru_cache(maxsize=8)
def _neighbours(th: Thresholds) -> tuple[Thresholds, ...]:
    return tuple(th.moved(name, f) for name in SENSITIVITY for f in (th.tolerance, 1 / th.tolerance))


def _tail_view(run: _Run) -> _Run:
    """The run as read from the last half of the late part only."""
    view = {s: dc_replace(c, rel=c.tail_rel, z=c.tail_z)
            for s, c in (("train", run.train), ("test", run.test)) if c is not None}
    return dc_replace(run, train=view.get("train"), test=view.get("test"))


def _flips(run: _Run, th: Thresholds, index: int, verdict: _Verdict) -> dict[Regime, int]:
    """What the label turns into with each sensitivity threshold moved by ``tolerance``
    both ways, one at a time, and from the last half of the late part alone."""
    flips: dict[Regime, int] = {}
    if index < INSENSITIVE:  # the insensitive rules read no threshold a neighbour moves
        return flips
    views = [(run, moved) for moved in _neighbours(th)]
    if _full(run):
        views.append((_tail_view(run), th))
    for view, moved in views:
        regime = _decide(view, moved, INSENSITIVE)[1].regime
        if regime != verdict.regime:
            flips[regime] = flips.get(regime, 0) + 1
            if sum(flips.values()) > 2:
                break
    return flips


def _confidence(run: _Run, th: Thresholds, index: int, verdict: _Verdict) -> tuple[Confidence, Regime | None]:
    """As sure as the rule allows (``cap``), one step less when a neighbour of the
    thresholds or the end-only reader flips it (the runner-up is what it flips to), or when
    a deciding curve's move is read from its size inside its own noise; two steps less for
    many flips. A handful of points is a sketch: at most medium under ``sure_points``."""
    flips = _flips(run, th, index, verdict)
    noisy = any(c is not None and _noisy(c, th) for c in (getattr(run, s) for s in verdict.reads))
    level = _RANK[verdict.cap] - (1 if flips else 0) - (1 if noisy else 0) - (1 if sum(flips.values()) > 2 else 0)
    if _full(run) and min(len(c.values) for c in run.both()) < th.sure_points:
        level = min(level, 1)
    runner_up = max(flips.items(), key=lambda kv: kv[1])[0] if flips else None
    return _LEVEL[max(level, 0)], runner_up


def analyze(histories: Mapping[str, object], keys: Mapping[str, str] | None = None,
            thresholds: Thresholds | None = None) -> Diagnosis:
    """Label one run from its histories ``{key: (steps, values)}``.

    ``keys`` maps roles to metric keys and wins over recognition; ``thresholds``
    defaults to :class:`Thresholds()`.
    """
    with np.errstate(all="ignore"):  # garbage in is a label out, not a warning
        return _analyze(histories, keys, thresholds or Thresholds())


def _side(split: str, roles: Mapping[str, str], histories: Mapping, reasons: list[str]) -> _Curve | None:
    for kind in ("loss", "acc"):
        key = roles.get(f"{split}_{kind}")
        if key is not None:
            try:
                return _prepare(key, histories[key], kind)
            except (TypeError, ValueError):
                reasons.append(f"{key!r} could not be read as numbers.")
    return None


def _counts(histories: Mapping[str, object]) -> dict[str, int]:
    counts = {}
    for k, series in histories.items():
        try:
            counts[str(k)] = len(as_arrays(series)[0])
        except (TypeError, ValueError):
            counts[str(k)] = 0
    return counts


def _read_curves(curves: dict[str, _Curve], th: Thresholds, flags: set[str], reasons: list[str]) -> dict[str, _Curve]:
    """Set aside what is no part of a curve (a restored best point, a one-off final
    evaluation), align the resolutions and describe every curve that has enough points."""
    if any(c.nonfinite for c in curves.values()):
        flags.add("nonfinite")
    if _drop_restored_point(curves, reasons):
        flags.add("early_stopped")
    for split, c in curves.items():
        if _drop_extra_eval(c):
            reasons.append(f"The last {split} point (step {_step_txt(c.steps[-1])} was the last regular one) is a "
                           "one-off evaluation after training; it is left out of the trends.")
    usable = {s: c for s, c in curves.items() if len(c.values) >= th.short_points}
    _align(usable, th)
    for c in usable.values():
        _describe(c, th)
        if c.spikes:
            flags.add("spikes")
        if c.noise > 0.05 * max(abs(c.last), 1e-12):  # jitter over 5 % of the level
            flags.add("oscillating")
    return usable


def _analyze(histories: Mapping[str, object], keys: Mapping[str, str] | None, th: Thresholds) -> Diagnosis:
    counts = _counts(histories)
    try:
        roles = resolve_roles(counts, keys)
    except ValueError as exc:
        return Diagnosis("insufficient_data", reasons=(str(exc),), rule="keys")
    roles = {r: k for r, k in roles.items() if k in histories}
    flags: set[str] = set()
    reasons: list[str] = []
    curves = {s: c for s in ("train", "test") if (c := _side(s, roles, histories, reasons)) is not None}
    last_step = max((float(c.steps[-1]) for c in curves.values() if len(c.steps)), default=None)
    gap, gap_step = _acc_gap(histories, roles)
    usable = _read_curves(curves, th, flags, reasons)
    found = ", ".join(f"{r}={k!r} ({counts.get(k, 0)} points)" for r, k in roles.items()) or "none"
    run = _Run(curves, usable.get("train"), usable.get("test"), gap, gap_step, found,
               classifier="train_acc" in roles or "test_acc" in roles)
    index, verdict = _decide(run, th)
    confidence, runner_up = _confidence(run, th, index, verdict)
    reasons.append(verdict.reason())
    if verdict.flag:
        flags.add(verdict.flag)
    test = run.test
    best = test.lo_step if test is not None and _full(run) else None
    onset = _onset(test, th) if verdict.onset and test is not None else None
    return Diagnosis(verdict.regime, acc_gap=gap, best_step=best, onset_step=onset, flags=tuple(sorted(flags)),
                     reasons=tuple(reasons), keys=dict(roles), points={r: counts.get(k, 0) for r, k in roles.items()},
                     last_step=last_step, confidence=confidence, runner_up=runner_up, rule=RULES[index][0])


def _onset(test: _Curve, th: Thresholds) -> float | None:
    """First step after the best one where the test curve is GL-alpha above its best level."""
    after = test.steps > test.lo_step
    above = after & (test.values > test.lo * (1 + th.gl_alpha) + test.noise)
    idx = np.flatnonzero(above)
    return float(test.steps[idx[0]]) if len(idx) else None


def _chance_level(c: _Curve) -> str:
    """Cross-entropy of a uniform guess is ln(classes): say so when the loss sits there."""
    k = _at_chance(c)
    return f" (loss ≈ ln {k} = {math.log(k):.3f}, chance level for {k} classes)" if k else ""


def analyze_frame(frame, keys: Mapping[str, str] | None = None, thresholds: Thresholds | None = None) -> dict:
    """Diagnose one run's long-format frame (``key, step, value``, a ``run_id`` column if any);
    plain dict out. Without ``run_id`` (pandas 3's ``groupby(...).apply`` drops the grouping
    column) the frame is one run. For many runs per call, :func:`analyze_runs`."""
    unnamed = "run_id" not in frame.columns
    if unnamed:
        frame = frame.assign(run_id="-")  # a blank id would read as rows of no run
    d: dict = {}
    for run_id, hist in split_runs(frame):
        d = analyze(hist, keys, thresholds).to_dict()
        d["run_id"] = None if unnamed else run_id
        break  # one run per call
    return d or analyze({}, keys, thresholds).to_dict()


# The frame analyze_runs returns, one row per run: (column, Spark SQL type). Spark:
# ``mapInPandas(f, RUNS_DDL)``; pandas dtypes: strings are object, doubles float64.
RUNS_SCHEMA: tuple[tuple[str, str], ...] = (
    ("run_id", "string"), ("regime", "string"), ("confidence", "string"), ("runner_up", "string"),
    ("acc_gap", "double"), ("best_step", "double"), ("onset_step", "double"),
    ("flags", "string"),      # comma-separated, as the diag_flags tag
    ("keys", "string"),       # JSON {role: key}
    ("checked", "string"),    # the run's data fingerprint (the input's "checked" column), else null
    ("diagnosis", "string"),  # JSON of the whole Diagnosis (Diagnosis.from_dict), for the write-back plan
)
RUNS_DDL = ", ".join(f"{name} {kind}" for name, kind in RUNS_SCHEMA)


def analyze_runs(frame, keys: Mapping[str, str] | None = None, thresholds: Thresholds | None = None):
    """Diagnose every run of a long frame (``run_id, key, step, value``; optional ``timestamp``
    and ``checked``) -> a pandas frame, one row per run, columns ``RUNS_SCHEMA``.

    The entry point for engines that hand over many runs per call (``mapInPandas`` or
    ``groupBy(bucket).applyInPandas`` on Spark, ``map_batches`` on Ray, ``map_partitions`` on
    Dask): calling the analyzer per run costs several times more in engine overhead. Each run
    is analysed from the keys the single-process path would fetch (candidate keys, none of
    tracker-diag's own ``diag_*``), points in (step, timestamp) order, so the labels are the
    same field by field.
    """
    import json

    import pandas as pd

    th = thresholds or Thresholds()
    columns = [name for name, _ in RUNS_SCHEMA]
    if not len(frame):
        return pd.DataFrame({c: pd.Series(dtype="float64" if t == "double" else "object") for c, t in RUNS_SCHEMA})
    if "timestamp" in frame.columns:  # MLflow's order: step, then the time a point was logged
        frame = frame.sort_values(["run_id", "key", "step", "timestamp"], kind="stable")
    checked = frame.groupby("run_id", sort=False)["checked"].first().to_dict() if "checked" in frame.columns else {}
    rows = []
    for run_id, hist in split_runs(frame[["run_id", "key", "step", "value"]]):
        wanted = candidate_keys([k for k in hist if not str(k).startswith("diag_")], keys)
        d = analyze({k: hist[k] for k in wanted if k in hist}, keys, th)
        fp = checked.get(run_id)
        rows.append((str(run_id), d.regime, d.confidence, d.runner_up, d.acc_gap, d.best_step, d.onset_step,
                     ",".join(d.flags), json.dumps(d.keys, sort_keys=True),
                     None if fp is None or (isinstance(fp, float) and math.isnan(fp)) else str(fp),
                     json.dumps(d.to_dict(), allow_nan=True)))
    out = pd.DataFrame.from_records(rows, columns=columns)
    for name, kind in RUNS_SCHEMA:
        if kind == "double":
            out[name] = out[name].astype("float64")
    return out


__all__ = ["ROLES", "RULES", "RUNS_DDL", "RUNS_SCHEMA", "analyze", "analyze_frame", "analyze_runs"]
