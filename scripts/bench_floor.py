"""The single machine against its floor, whole processes, side by side (issue 13's targets).

    python scripts/bench_floor.py [--runs 1000] [--steps 200]

A sqlite store of N runs x 4 metrics x 200 steps (100 runs logged through the MLflow client,
cloned with SQL to N). Timed as a user runs them, each a fresh process:

- the floor: a plain sqlite3 read of the histories (what any reader must pay);
- `tracker-diag label mlflow -e bench -q` (dry run)         target <= 2x the plain read;
- `... --write`, the first pass (writes every run);
- `... --write` again, nothing changed                      target <= 3 % of the first pass;
- `python -c "import mlflow"` and `python -c "import tracker_diag.cli"` for scale.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_mlflow import SQL_READ, build, clone


def timed(args: list[str], repeat: int = 1) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(args, check=True, capture_output=True, env={**os.environ, "CI": "1"})
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1000)
    p.add_argument("--steps", type=int, default=200)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-floor-")
    base, db = os.path.join(tmp, "base.db"), os.path.join(tmp, "store.db")
    seed = min(100, a.runs)
    build(f"sqlite:///{base}", seed, a.steps)
    clone(base, db, max(1, a.runs // seed))
    uri = f"sqlite:///{db}"
    py = sys.executable
    cli = [py, "-m", "tracker_diag", "label", "mlflow", "--tracking-uri", uri, "-e", "bench", "-q"]
    sql = timed([py, "-c", SQL_READ, db], repeat=3)
    dry = timed(cli, repeat=3)
    first = timed([*cli, "--write"])
    again = timed([*cli, "--write"], repeat=3)
    imp_mlflow = timed([py, "-c", "import mlflow"], repeat=3)
    imp_cli = timed([py, "-c", "import tracker_diag.cli"], repeat=3)
    n = (a.runs // seed) * seed
    print(f"{n} runs x 4 metrics x {a.steps} steps, sqlite, whole processes (best of 3; the first write once)")
    print(f"  plain SQL read (floor)         {sql:6.2f} s")
    print(f"  dry run                        {dry:6.2f} s   {dry / sql:4.1f}x the floor      (target <= 2x)")
    print(f"  first --write                  {first:6.2f} s   {1000 * first / n:5.1f} ms per run written")
    print(f"  unchanged --write              {again:6.2f} s   {100 * again / first:4.1f} % of the first (target <= 3 %)")
    print(f"  python -c 'import mlflow'      {imp_mlflow:6.2f} s")
    print(f"  python -c 'import tracker_diag.cli' {imp_cli:6.2f} s")


if __name__ == "__main__":
    main()
