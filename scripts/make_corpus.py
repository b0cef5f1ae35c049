"""Write a corpus of genuinely trained runs as a long-format file plus the cause labels.

    python scripts/make_corpus.py --runs 120 --seed 0 --out corpus/seed0.parquet
    python scripts/make_corpus.py --runs 16 --seed 3 --out samples/runs.csv   # the README's sample

The labels file (``<out>.labels.csv``) holds each run's cause and the regime that cause
induces; the analyzer's output is never used to label.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from tracker_diag.training import long_frame
from tracker_diag.training.numpy_mlp import generate


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=120)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="corpus/seed0.parquet")
    a = p.parse_args()
    t0 = time.perf_counter()
    runs = generate(a.runs, seed=a.seed)
    frame = long_frame(runs)[["run_id", "run_name", "key", "step", "value"]]
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".parquet":
        frame.to_parquet(out, index=False)
    else:
        frame.to_csv(out, index=False)
    labels = pd.DataFrame([(r.run_id, r.run_name, r.cause, r.expected, r.convention) for r in runs],
                          columns=["run_id", "run_name", "cause", "expected", "convention"])
    labels.to_csv(f"{out}.labels.csv", index=False)
    print(f"{len(runs)} runs, {len(frame)} points -> {out} ({time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
