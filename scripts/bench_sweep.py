"""A nightly sweep over two MLflow stores (a sqlite file and a local `mlflow server`), twice.

    python scripts/bench_sweep.py [--runs 150]

The second sweep finds nothing new: it must write nothing and take a small fraction of
the first. Prints both times, the ratio and the write counts.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_mlflow import build, start_server


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=150)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-sweep-")
    local, served = os.path.join(tmp, "local.db"), os.path.join(tmp, "served.db")
    build(f"sqlite:///{local}", a.runs, 200)
    build(f"sqlite:///{served}", a.runs, 200)
    proc, url = start_server(served)
    cfg = os.path.join(tmp, "tracker-diag.toml")
    with open(cfg, "w") as fh:
        fh.write(f'write = true\njson = "sweep.json"\n\n[[sources]]\nname = "local"\ntype = "mlflow"\n'
                 f'tracking-uri = "sqlite:///{local}"\nexperiments = ["bench"]\n\n[[sources]]\nname = "server"\n'
                 f'type = "mlflow"\ntracking-uri = "{url}"\nexperiments = ["bench"]\n')
    try:
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "tracker_diag", "sweep", "-c", cfg, "-q"], check=True,
                           capture_output=True)
            times.append(time.perf_counter() - t0)
            with open(os.path.join(tmp, "sweep.json")) as fh:
                actions = json.load(fh)["summary"]["actions"]
            print(f"sweep {len(times)}: {times[-1]:6.2f} s  {actions}")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"second sweep / first = {100 * times[1] / times[0]:.1f} %")


if __name__ == "__main__":
    main()
