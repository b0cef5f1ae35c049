"""Confusion matrix of the analyzer on corpora of genuinely trained runs.

    python scripts/evaluate_analyzer.py                 # tuning corpus (seed 0) and held-out (seed 1)
    python scripts/evaluate_analyzer.py --seeds 7 --runs 160 --show-errors

Each run is labelled by the cause that was used to train it (tracker_diag.samples),
never by the analyzer's output.
"""

from __future__ import annotations

import argparse
import time

import pandas as pd

from tracker_diag.analyze import analyze_frame
from tracker_diag.model import REGIMES
from tracker_diag.samples import generate


def evaluate(seed: int, n_runs: int, show_errors: bool) -> float:
    t0 = time.perf_counter()
    runs = generate(n_runs, seed=seed)
    t1 = time.perf_counter()
    rows = []
    for r in runs:
        d = analyze_frame(r.frame)
        rows.append((r.expected, d["regime"]))
        if show_errors and d["regime"] != r.expected:
            print(f"  {r.run_id} {r.run_name} [{r.convention}] expected {r.expected}, got {d['regime']}"
                  f" flags={d['flags']}\n    " + "\n    ".join(d["reasons"]))
    df = pd.DataFrame(rows, columns=["expected", "got"])
    cm = pd.crosstab(df.expected, df.got).reindex(index=REGIMES, columns=REGIMES, fill_value=0)
    acc = (df.expected == df.got).mean()
    per = cm.values.diagonal() / cm.sum(axis=1).clip(lower=1)
    print(f"\nseed {seed}: {len(runs)} runs (trained in {t1 - t0:.0f} s); rows = cause, columns = analyzer")
    print(cm.to_string())
    print("per-regime recall: " + ", ".join(f"{r} {p:.0%}" for r, p in zip(REGIMES, per)))
    print(f"overall accuracy: {acc:.1%}")
    return acc


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="0 was used while tuning; others were not")
    p.add_argument("--runs", type=int, default=120)
    p.add_argument("--show-errors", action="store_true")
    a = p.parse_args()
    for s in a.seeds:
        evaluate(s, a.runs, a.show_errors)


if __name__ == "__main__":
    main()
