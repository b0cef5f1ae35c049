"""What the sweep teaches: regimes against each logged hyper-parameter. Pure.

Numeric parameters are cut at their quartiles (fewer bins when there are few distinct
values); other parameters are grouped by value. A bin where one regime holds most of the
runs becomes a finding: "lr ≥ 0.1: 9 of 10 runs diverging".
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

from tracker_diag.model import REGIMES

MAX_VALUES = 12  # categories shown per parameter; the rest are "other"
_SKIP = ("mlflow.", "_wandb", "wandb_")


def _num(v) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


def _fmt(x: float) -> str:
    return f"{x:.3g}"


def _bins(name: str, values: list[tuple[float, str]]) -> list[tuple[str, list[str]]]:
    xs = np.array([v for v, _ in values])
    distinct = np.unique(xs)
    if len(distinct) <= 4:
        return [(f"{name} = {_fmt(d)}", [r for v, r in values if v == d]) for d in distinct]
    edges = np.unique(np.quantile(xs, [0.25, 0.5, 0.75]))
    out = []
    lo = None
    for hi in [*edges, None]:
        if lo is None:
            members, label = [r for v, r in values if v < hi], f"{name} < {_fmt(hi)}"
        elif hi is None:
            members, label = [r for v, r in values if v >= lo], f"{name} ≥ {_fmt(lo)}"
        else:
            members, label = [r for v, r in values if lo <= v < hi], f"{_fmt(lo)} ≤ {name} < {_fmt(hi)}"
        if members:
            out.append((label, members))
        lo = hi
    return out


def regime_table(runs: Iterable[tuple[str | None, dict[str, str]]], min_runs: int = 3,
                 dominance: float = 0.6) -> dict:
    """``runs`` = (regime, params) per run -> {"rows": [...], "findings": [...]}.

    A row per bin: parameter, bin label, run count, count per regime. A finding is a bin of
    at least ``min_runs`` runs where one regime holds at least ``dominance`` of them.
    """
    by_param: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for regime, params in runs:
        if not regime:
            continue
        for k, v in params.items():
            if not k.startswith(_SKIP):
                by_param[k].append((str(v), regime))
    rows: list[dict[str, Any]] = []
    findings: list[dict[str, Any]] = []
    for name in sorted(by_param):
        pairs = by_param[name]
        if len({v for v, _ in pairs}) < 2:
            continue  # a constant says nothing
        nums = [(_num(v), r) for v, r in pairs]
        if all(x is not None for x, _ in nums):
            groups = _bins(name, [(x, r) for x, r in nums if x is not None])
        else:
            common = [v for v, _ in Counter(v for v, _ in pairs).most_common(MAX_VALUES)]
            groups = [(f"{name} = {v}", [r for x, r in pairs if x == v]) for v in common]
            rest = [r for x, r in pairs if x not in common]
            if rest:
                groups.append((f"{name} = (other)", rest))
        for label, members in groups:
            counts = Counter(members)
            rows.append({"param": name, "bin": label, "runs": len(members),
                         "by_regime": {k: counts[k] for k in REGIMES if counts[k]}})
            top, n = counts.most_common(1)[0]
            if len(members) >= min_runs and n / len(members) >= dominance:
                findings.append({"param": name, "bin": label, "regime": top, "count": n, "runs": len(members),
                                 "text": f"{label}: {n} of {len(members)} runs {top}"})
    # the most telling first: alarming regimes, then the purest and largest bins
    alarm = {"diverging": 0, "overfitting": 1, "data_issue": 2}
    findings.sort(key=lambda f: (alarm.get(f["regime"], 9), -f["count"] / f["runs"], -f["runs"]))
    return {"rows": rows, "findings": findings}
