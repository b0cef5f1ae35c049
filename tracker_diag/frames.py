"""Long-format metric frames (``run_id, key, step, value``): split into runs, downsample.

Plain numpy and pandas, no tracker, no analysis: the analyzer, the connectors and the
report use these.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# MLflow reads ±inf back as ±1.797e308 (float max); anything this large is not a value.
HUGE = 1e300


def as_arrays(series) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)``, a pandas Series indexed by step or a mapping step -> value, as
    two float arrays of the same length."""
    if isinstance(series, tuple) and len(series) == 2:
        steps, values = series
    else:
        steps, values = np.asarray(list(series.keys())), np.asarray(list(series.values()))
    s = np.asarray(steps, dtype=float).ravel()
    v = np.asarray(values, dtype=float).ravel()
    n = min(len(s), len(v))
    return s[:n], v[:n]


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
    s, v = as_arrays((steps, values))
    order = np.argsort(s, kind="stable")
    s, v = s[order], v[order]
    v = np.where(np.isfinite(v) & (np.abs(v) < HUGE), v, np.nan)
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
    blank = (run_codes < 0) | (key_codes < 0)  # a missing run id or key (NaN/None) has code -1
    for names, codes in ((run_names, run_codes), (key_names, key_codes)):
        empty = [i for i, n in enumerate(names) if not str(n).strip()]
        if empty:
            blank |= np.isin(codes, empty)
    if blank.any():  # rows that belong to no run or no key are no curve (files say how many: normalise)
        keep = ~blank
        run_codes, key_codes, steps, values = run_codes[keep], key_codes[keep], steps[keep], values[keep]
        if not len(run_codes):
            return
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



__all__ = ["HUGE", "as_arrays", "downsample", "split_runs"]
