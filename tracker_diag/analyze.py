"""The analyzer: one run's metric histories in, a frozen Diagnosis out.

Pure: no I/O, no clock, no environment. Bad data never raises; it becomes a label
(``insufficient_data``) or a flag (``nonfinite``, ``spikes``, ...).

How a curve is read:
1. non-finite points (NaN, ±inf, MLflow's ±1.797e308) are dropped and flagged; steps are
   sorted and de-duplicated (last write wins, as in the trackers);
2. long curves are reduced to at most ``max_bins`` bin medians, which removes
   per-minibatch noise without moving the trend;
3. on the late part of each curve, the Theil–Sen slope gives the size of the trend and a
   Mann–Kendall test, corrected for lag-1 autocorrelation, says whether it stands out of
   the curve's own noise;
4. a curve is *flat* when its trend is not significant, smaller than ``flat_rel`` of its
   level, or small next to its twin's (train vs test).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np

from tracker_diag.keys import ROLES, resolve_roles
from tracker_diag.model import Diagnosis, Thresholds

# MLflow reads ±inf back as ±1.797e308 (float max); anything this large is not a loss.
_HUGE = 1e300
_TRIU: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _median(x: np.ndarray) -> float:
    """np.median without its generic machinery (a hot path: ~10 calls per curve)."""
    n = x.size
    if n == 0:
        return math.nan
    k = n >> 1
    if n % 2:
        return float(np.partition(x, k)[k])
    p = np.partition(x, (k - 1, k))
    return 0.5 * (float(p[k - 1]) + float(p[k]))


def _median3(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    return np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))


def _pairs(k: int):
    if k not in _TRIU:
        _TRIU[k] = np.triu_indices(k, 1)
    return _TRIU[k]


@dataclass
class _Curve:
    key: str
    steps: np.ndarray  # finite points only, sorted, unique
    values: np.ndarray  # lower is better (accuracy is turned into error)
    n_logged: int
    nonfinite: int
    tail_nonfinite_step: float | None  # step where the curve went non-finite for good
    zeros_as_nan: bool = False
    # filled by _trend
    trend: str = "flat"
    rel: float = 0.0  # late change relative to the level (negative = falling)
    range_rel: float = 0.0  # late change relative to the curve's whole range
    z: float = 0.0
    level: float = 0.0
    start: float = 0.0
    lo: float = 0.0
    lo_step: float = 0.0
    end: float = 0.0
    noise: float = 0.0
    spikes: int = 0
    peak: float = 0.0  # of the smoothed curve: one bad minibatch is no explosion


def _as_arrays(series) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(series, tuple) and len(series) == 2:
        steps, values = series
    else:  # a pandas Series indexed by step, or a mapping step -> value
        steps, values = np.asarray(list(series.keys())), np.asarray(list(series.values()))
    s = np.asarray(steps, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    n = min(len(s), len(v))
    return s[:n], v[:n]


def _prepare(key: str, series, kind: str) -> _Curve:
    steps, values = _as_arrays(series)
    ok_step = np.isfinite(steps)
    steps, values = steps[ok_step], values[ok_step]
    if len(steps) > 1 and np.any(np.diff(steps) <= 0):
        order = np.argsort(steps, kind="stable")
        steps, values = steps[order], values[order]
        last = np.append(steps[1:] != steps[:-1], True)  # last write per step wins
        steps, values = steps[last], values[last]
    finite = np.isfinite(values) & (np.abs(values) < _HUGE)
    zeros_as_nan = False
    if kind == "loss" and len(values) >= 3 and values[-1] == 0.0 and finite.all():
        # Hugging Face Trainer logs the train loss as 0.0 once it turns NaN: a tail of
        # exact zeros right after clearly non-zero losses is that, not a perfect fit.
        nz = np.flatnonzero(values != 0.0)
        if len(nz) and values[nz[-1]] > 1e-3 * _median(np.abs(values[nz])) and abs(values[nz[-1]]) > 1e-2:
            finite[nz[-1] + 1:] = False
            zeros_as_nan = True
    tail_step = None
    good = np.flatnonzero(finite)
    if len(values) and not finite[-1] and len(good) >= 2:  # finite first, then NaN/inf for good
        tail_step = float(steps[good[-1] + 1])
    s, v = steps[finite], values[finite]
    if kind == "acc":
        if len(v) and np.nanmax(np.abs(v)) > 1.5:  # percent
            v = v / 100.0
        v = 1.0 - v
    return _Curve(key, s, v, len(values), int((~finite).sum()), tail_step, zeros_as_nan)


def _bins(c: _Curve, max_bins: int) -> tuple[np.ndarray, np.ndarray]:
    n = len(c.values)
    if n <= max_bins:
        return c.steps, c.values
    per = -(-n // max_bins)
    k = n // per
    cut = n - per * k  # fewer than `per` oldest points are left out so the bins are equal
    v = np.partition(c.values[cut:].reshape(k, per), per // 2, axis=1)[:, per // 2]  # bin medians
    s = c.steps[cut:].reshape(k, per)[:, per // 2]
    return s, v


def _mann_kendall(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Theil–Sen slope and Mann–Kendall z, variance inflated for AR(1) residuals.

    Theil 1950 / Sen 1968 slope; Mann 1945, Kendall 1975 test; the effective-sample-size
    correction for serial correlation follows Hamed & Rao 1998 (lag-1 term, as in
    Yue & Wang 2004), so a smooth wandering curve is not mistaken for a trend.
    """
    k = len(y)
    i, j = _pairs(k)
    dy = y[j] - y[i]
    dx = x[j] - x[i]
    slope = _median(dy / dx)
    s = float(np.sign(dy).sum())
    var = k * (k - 1) * (2 * k + 5) / 18.0
    resid = y - slope * x
    resid = resid - resid.mean()
    den = float(resid @ resid)  # y is scaled to [-1, 1] by the caller
    if den > 0 and k > 3:
        r1 = float(resid[1:] @ resid[:-1]) / den
        if r1 > 0:
            lags = np.arange(1, k)
            var *= 1 + 2 * float(((1 - lags / k) * r1 ** lags).sum())
    if s == 0 or var <= 0:
        return slope, 0.0
    z = (s - math.copysign(1, s)) / math.sqrt(var)
    return slope, z


def _trend(c: _Curve, th: Thresholds) -> None:
    """Fill the trend fields of a curve with at least ``min_points`` points."""
    s, v = _bins(c, th.max_bins)
    unit = float(np.max(np.abs(v))) or 1.0
    v = v / unit  # work in [-1, 1]: no overflow, and scaling a loss changes nothing
    k = len(v)
    late = max(th.min_points, math.ceil(th.late_fraction * k))
    ls, lv = s[-late:], v[-late:]
    slope, z = _mann_kendall(ls - ls[0], lv)
    change = slope * (ls[-1] - ls[0])
    level = _median(lv)
    span = float(v.max() - v.min())
    c.level, c.z = level * unit, z
    c.rel = change / abs(level) if level != 0 else 0.0
    c.range_rel = change / span if span > 0 else 0.0
    c.start = _median(c.values[: min(3, len(c.values))])
    c.end = _median(lv[-min(3, late):]) * unit
    # Minimum of a 3-point running median, so one lucky spike is not "the best step".
    if k >= 3:
        smooth = np.concatenate(([v[0]], _median3(v[:-2], v[1:-1], v[2:]), [v[-1]]))
    else:
        smooth = v
    b = int(np.argmin(smooth))
    c.lo = float(smooth[b]) * unit
    c.peak = float(smooth.max()) * unit
    # the best step itself is the raw minimum next to the smoothed one
    near = (c.steps >= s[max(b - 1, 0)]) & (c.steps <= s[min(b + 1, k - 1)])
    c.lo_step = float(c.steps[near][np.argmin(c.values[near])]) if near.any() else float(s[b])
    # Point-to-point noise of the raw late part: MAD of first differences / sqrt(2)
    # (a robust sigma: 1.4826 * MAD, Hampel 1974).
    raw = c.values[-max(th.min_points, math.ceil(th.late_fraction * len(c.values))):] / unit
    d = np.diff(raw)
    c.noise = 1.4826 * _median(np.abs(d - _median(d))) / math.sqrt(2) * unit if len(d) > 2 else 0.0
    if len(c.values) >= 2 * th.min_points:
        c.spikes = _spikes(c.values / unit)
    # A trend counts when it stands out of the noise (Mann-Kendall, alpha = 0.05), moves
    # the level by at least flat_rel, and is a visible part of the curve's whole range
    # (range_rel): how a person reads a plot on autoscaled linear axes.
    moving = abs(z) >= th.z_crit and abs(c.rel) >= th.flat_rel and abs(c.range_rel) >= th.range_rel
    c.trend = "flat" if not moving else ("falling" if change < 0 else "rising")


def _spikes(v: np.ndarray) -> int:
    """Isolated jumps: a point that leaves its neighbours and comes straight back.

    Both steps must exceed 10 robust sigmas of the point-to-point noise (1.4826 * MAD,
    Hampel 1974, with a band wider than his 3 sigma so minibatch jitter is no spike) and
    20 % of the curve's level, so a smooth curve's bend is no spike either.
    """
    d = np.diff(v)
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
    if not len(tr.steps) or not len(te.steps):
        return None, None
    at = min(tr.steps[-1], te.steps[-1])
    i = int(np.searchsorted(tr.steps, at, side="right")) - 1
    j = int(np.searchsorted(te.steps, at, side="right")) - 1
    if i < 0 or j < 0:
        return None, None
    return round(float(te.values[j] - tr.values[i]), 6), float(at)  # values are errors: 1 - acc


def _drop_restored_point(curves: dict[str, _Curve], flags: set[str], reasons: list[str]) -> None:
    """Keras EarlyStopping(restore_best_weights) and XGBoost/LightGBM early stopping log
    the best iteration's metrics once more, one step past the end: the curve "drops back".
    """
    ref = curves.get("test")
    if ref is None or len(ref.values) < 5:
        return
    v = ref.values
    b = int(np.argmin(v[:-1]))
    if b >= len(v) - 3 or abs(v[-1] - v[b]) > 1e-6 * abs(v[b]):
        return
    step = ref.steps[-1]
    for c in curves.values():
        if len(c.steps) and c.steps[-1] == step:
            c.steps, c.values = c.steps[:-1], c.values[:-1]
    flags.add("early_stopped")
    reasons.append(f"Early stopping: the last point (step {_step_txt(step)}) repeats the best "
                   f"step {_step_txt(ref.steps[b])}; it is left out of the trends.")


def analyze(histories: Mapping[str, object], keys: Mapping[str, str] | None = None,
            thresholds: Thresholds | None = None) -> Diagnosis:
    """Label one run from its histories ``{key: (steps, values)}``.

    ``keys`` maps roles to metric keys and wins over recognition; ``thresholds``
    defaults to :class:`Thresholds()`.
    """
    with np.errstate(all="ignore"):  # garbage in is a label out, not a warning
        return _analyze(histories, keys, thresholds or Thresholds())


def _analyze(histories: Mapping[str, object], keys: Mapping[str, str] | None, th: Thresholds) -> Diagnosis:
    counts = {}
    for k, series in histories.items():
        try:
            counts[str(k)] = len(_as_arrays(series)[0])
        except (TypeError, ValueError):
            counts[str(k)] = 0
    try:
        roles = resolve_roles(counts, keys)
    except ValueError as exc:
        return Diagnosis("insufficient_data", reasons=(str(exc),))
    roles = {r: k for r, k in roles.items() if k in histories}
    flags: set[str] = set()
    reasons: list[str] = []

    def side(split: str) -> _Curve | None:
        for kind in ("loss", "acc"):
            key = roles.get(f"{split}_{kind}")
            if key is not None:
                try:
                    return _prepare(key, histories[key], kind)
                except (TypeError, ValueError):
                    reasons.append(f"{key!r} could not be read as numbers.")
        return None

    curves = {s: c for s in ("train", "test") if (c := side(s)) is not None}
    points = {r: counts.get(k, 0) for r, k in roles.items()}
    last_step = max((float(c.steps[-1]) for c in curves.values() if len(c.steps)), default=None)
    gap, gap_step = _acc_gap(histories, roles)
    base = {"acc_gap": gap, "keys": dict(roles), "points": points, "last_step": last_step}

    for c in curves.values():
        if c.nonfinite:
            flags.add("nonfinite")
    _drop_restored_point(curves, flags, reasons)

    def done(regime, best=None, onset=None):
        return Diagnosis(regime, best_step=best, onset_step=onset, flags=tuple(sorted(flags)),
                         reasons=tuple(reasons), **base)

    # Non-finite for good: the run blew up, whatever came before.
    for split in ("train", "test"):
        c = curves.get(split)
        if c is not None and c.tail_nonfinite_step is not None:
            how = "was logged as 0.0 after turning NaN" if c.zeros_as_nan else "became NaN/inf"
            reasons.append(f"The {split} curve {c.key!r} {how} at step {_step_txt(c.tail_nonfinite_step)} "
                           "and never recovered.")
            return done("diverging")

    usable = {s: c for s, c in curves.items() if len(c.values) >= th.min_points}
    for c in usable.values():
        _trend(c, th)
        if c.spikes:
            flags.add("spikes")
        if c.noise > 0.05 * max(abs(c.level), 1e-12):  # jitter over 5 % of the level
            flags.add("oscillating")

    train, test = usable.get("train"), usable.get("test")
    if train is not None and _blew_up(train, th):
        reasons.append(f"The train curve {train.key!r} ends above where it started ({_fmt(train.end)} "
                       f"against {_fmt(train.start)} at the start, best {_fmt(train.lo)}).")
        return done("diverging")
    if train is not None and train.trend == "rising" and train.end > train.lo * (1 + th.gl_alpha):
        reasons.append(f"The train curve {train.key!r} rises: {_fmt(train.rel * 100)} % over its late part, "
                       f"now {_fmt(train.end)} against a best of {_fmt(train.lo)}.")
        return done("diverging")
    if train is None or test is None:
        found = ", ".join(f"{r}={k!r} ({counts.get(k, 0)} points)" for r, k in roles.items()) or "none"
        missing = [s for s in ("train", "test") if s not in usable]
        reasons.append(f"No usable {' and '.join(missing)} curve (at least {th.min_points} finite points "
                       f"needed); metric keys found: {found}.")
        return done("insufficient_data")

    for c in (train, test):
        if (why := _exploded(c, th)) is not None:
            reasons.append(why)
            return done("diverging")
    best = test.lo_step
    # Train accuracy far above test accuracy: the classic sign (a 20 % gap).
    if gap is not None and gap >= th.acc_gap:
        reasons.append(f"Train accuracy is {_fmt(gap * 100)} points above test accuracy at step "
                       f"{_step_txt(gap_step)} (threshold {_fmt(th.acc_gap * 100)}).")
        return done("overfitting", best, _onset(test, th))
    # Prechelt 1998, "Early stopping - but when?": generalisation loss GL = E/E_opt - 1;
    # GL > alpha (his GL5: 5 %) means the test loss left its minimum. We also ask that the
    # rise is no longer falling and stands out of the noise (his UP criterion's intent).
    gl = (test.end - test.lo) / abs(test.lo) if test.lo != 0 else (math.inf if test.end > test.lo else 0.0)
    test_rose = gl > th.gl_alpha and test.lo_step < test.steps[-1] and test.trend != "falling" and (
        test.trend == "rising" or test.end - test.lo > 3 * test.noise)
    if test_rose:
        reasons.append(f"The test curve {test.key!r} is {_fmt(gl * 100)} % above its minimum at step "
                       f"{_step_txt(test.lo_step)} (Prechelt's GL > {_fmt(th.gl_alpha * 100)} %) "
                       f"while the train curve {train.key!r} is {train.trend}.")
        return done("overfitting", best, _onset(test, th))
    if gap is not None and -gap >= th.acc_gap:
        reasons.append(f"Test accuracy is {_fmt(-gap * 100)} points above train accuracy at step "
                       f"{_step_txt(gap_step)}: the training labels or split look broken.")
        return done("data_issue", best)

    # "A curve that moved 3 % while its twin moved 15 % is flat relative to it."
    t_fall = train.trend == "falling" and abs(train.rel) >= th.twin_ratio * abs(test.rel)
    v_fall = test.trend == "falling" and abs(test.rel) >= th.twin_ratio * abs(train.rel)
    t_move = f"{train.key!r} moved {_fmt(train.rel * 100)} %"
    v_move = f"{test.key!r} moved {_fmt(test.rel * 100)} %"
    late = f"over the last {_fmt(th.late_fraction * 100)} % of the run"
    positive = train.level > 0 and test.level > 0
    if positive and train.trend != "rising" and train.level < th.train_low * test.level:
        reasons.append(f"Train has flattened far below test ({_fmt(train.level)} against {_fmt(test.level)}, "
                       f"under {_fmt(th.train_low)}x) while test is {test.trend} {late}: the model memorised "
                       "its training set.")
        return done("overfitting", best, _onset(test, th))
    t_gain = (train.start - train.level) / train.start if positive and train.start > 0 else 0.0
    v_gain = (test.start - test.level) / test.start if positive and test.start > 0 else 0.0
    if positive and test.level < th.test_below * train.level and v_gain > 0 and (
            (v_fall and abs(train.rel) < 0.5 * abs(test.rel)) or t_gain < 0.5 * v_gain):
        reasons.append(f"Test sits below train ({_fmt(test.level)} against {_fmt(train.level)}) and improved "
                       f"far more ({_fmt(v_gain * 100)} % against {_fmt(t_gain * 100)} % since the start; "
                       f"{t_move}, {v_move} {late}): the training labels look broken.")
        return done("data_issue", best)
    if v_fall and not t_fall:
        reasons.append(f"Train is flat while test falls {late} ({t_move}, {v_move}): the model "
                       "learns what generalises but not its own training labels.")
        return done("data_issue", best)
    if t_fall and not v_fall:
        reasons.append(f"Train falls while test is {'flat' if test.trend == 'falling' else test.trend} "
                       f"{late} ({t_move}, {v_move}).")
        return done("overfitting", best, _onset(test, th))
    if t_fall and v_fall:
        reasons.append(f"Both curves still fall {late} ({t_move}, {v_move}).")
        return done("learning", best)
    if test.trend == "rising":
        reasons.append(f"Test rises while train is {train.trend} {late} ({t_move}, {v_move}).")
        return done("overfitting", best, _onset(test, th))
    improved = (train.start - train.level) > th.gl_alpha * abs(train.start) or (
        test.start - test.level) > th.gl_alpha * abs(test.start)
    flags.add("converged" if improved else "stalled")
    what = "improved, then flattened" if improved else "never improved"
    reasons.append(f"Both curves are flat {late} ({t_move}, {v_move}); the run {what}{_chance_level(train)}.")
    return done("plateau", best)


def _exploded(c: _Curve, th: Thresholds) -> str | None:
    """A loss that went ``blowup`` times above its best, at the end or on the way.

    Overfitting moves a test loss by percents to a few-fold; a factor of 100 is the
    weights blowing up (learning rate far too high), even when the run came back.
    """
    if c.lo <= 0:
        return None
    peak = c.peak
    if c.end > th.blowup * c.lo:
        return (f"The curve {c.key!r} blew up to {_fmt(c.end)}, over {_fmt(th.blowup)}x its best "
                f"({_fmt(c.lo)}): the weights exploded.")
    if peak > th.blowup * max(c.start, c.end):
        return (f"The curve {c.key!r} exploded to {_fmt(peak)} mid-run, over {_fmt(th.blowup)}x where it "
                f"started and ended: training is unstable (learning rate too high).")
    return None


def _blew_up(c: _Curve, th: Thresholds) -> bool:
    """The late level sits clearly above the first points: training made things worse."""
    return c.level > c.start and c.level - c.start > th.gl_alpha * max(abs(c.start), c.start - c.lo)


def _onset(test: _Curve, th: Thresholds) -> float | None:
    """First step after the best one where the test curve is GL-alpha above its minimum."""
    after = test.steps > test.lo_step
    above = after & (test.values > test.lo * (1 + th.gl_alpha) + test.noise)
    idx = np.flatnonzero(above)
    return float(test.steps[idx[0]]) if len(idx) else None


def _chance_level(c: _Curve) -> str:
    """Cross-entropy of a uniform guess is ln(classes): say so when the loss sits there."""
    if not c.key or "acc" in c.key.lower():
        return ""
    for k in range(2, 21):
        if abs(c.level - math.log(k)) < 0.01 * math.log(k):
            return f" (loss ≈ ln {k} = {math.log(k):.3f}, chance level for {k} classes)"
    return ""


def _codes(col, pd) -> tuple[np.ndarray, list]:
    """Integer codes and names of a string column; Arrow's dictionary encoding when the
    column is Arrow-backed (pandas 3 strings), about twice as fast as pd.factorize there.
    """
    if hasattr(col.array, "__arrow_array__"):
        try:
            import pyarrow as pa
        except ImportError:
            pa = None
        if pa is not None:
            arr = pa.array(col.array)
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            if arr.null_count == 0:
                enc = arr.dictionary_encode()
                return enc.indices.to_numpy(zero_copy_only=False).astype(np.int64), enc.dictionary.to_pylist()
    codes, names = pd.factorize(col, sort=False)
    return codes, list(names)


def downsample(steps, values, n: int = 120) -> tuple[list[float], list[float | None]]:
    """At most ``n`` points of a curve for plotting: sorted, bin medians past ``n``;
    non-finite values become None (a gap in the plot)."""
    s, v = _as_arrays((steps, values))
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    v = np.where(np.isfinite(v) & (np.abs(v) < _HUGE), v, np.nan)
    if len(v) > n:
        per = -(-len(v) // n)
        k = len(v) // per
        cut = len(v) - per * k
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                v = np.nanmedian(v[cut:].reshape(k, per), axis=1)
        s = s[cut:].reshape(k, per)[:, per // 2]
    return s.tolist(), [None if not np.isfinite(x) else float(x) for x in v]


def split_runs(frame) -> Iterator[tuple[str, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    """Long-format frame -> ``(run_id, {key: (steps, values)})`` per run, in one pass.

    Runs and keys are factorised to integer codes and sorted once (no per-group pandas
    objects), so splitting costs little next to the analysis itself.
    """
    import pandas as pd

    if not len(frame):
        return
    run_codes, run_names = _codes(frame["run_id"], pd)
    key_codes, key_names = _codes(frame["key"], pd)
    steps = frame["step"].to_numpy(dtype=float, na_value=np.nan)
    values = frame["value"].to_numpy(dtype=float, na_value=np.nan)
    composite = run_codes.astype(np.int64) * max(len(key_names), 1) + key_codes
    if (composite[1:] < composite[:-1]).any():  # files and SQL reads usually come grouped already
        order = np.argsort(composite, kind="stable")
        run_codes, key_codes, steps, values = run_codes[order], key_codes[order], steps[order], values[order]
    rc, kc = run_codes, key_codes
    cut = np.flatnonzero((rc[1:] != rc[:-1]) | (kc[1:] != kc[:-1])) + 1
    bounds = np.concatenate(([0], cut, [len(rc)]))
    hist: dict = {}
    current = rc[0]
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        if rc[a] != current:
            yield str(run_names[current]), hist
            hist, current = {}, rc[a]
        hist[str(key_names[kc[a]])] = (steps[a:b], values[a:b])
    yield str(run_names[current]), hist


def analyze_frame(frame, keys: Mapping[str, str] | None = None, thresholds: Thresholds | None = None) -> dict:
    """Diagnose one run's long-format frame (``run_id, key, step, value``); plain dict out.

    The entry point for distributed engines: ``df.groupby("run_id").applyInPandas(...)``
    on Spark or ``map_groups`` on Ray Data can call it per run.
    """
    d: dict = {}
    for run_id, hist in split_runs(frame):
        d = analyze(hist, keys, thresholds).to_dict()
        d["run_id"] = run_id
        break  # one run per call
    return d or analyze({}, keys, thresholds).to_dict()


__all__ = ["ROLES", "analyze", "analyze_frame", "downsample", "split_runs"]
