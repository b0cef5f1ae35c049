"""MLflow reads and labelling, side by side in one command.

    python scripts/bench_mlflow.py                 # 300 runs x 4 metrics x 200 steps
    python scripts/bench_mlflow.py --runs 3000 --no-server

Builds a sqlite store, then times on the sqlite URI and through a local `mlflow server`:
the naive loop users write (search_runs + get_metric_history per run per key), the
tracker-diag dry run (read + analyse), `label --write`, a second unchanged pass, and a
plain SQL read of the same histories. Prints the ratios.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np


def build(uri: str, n_runs: int, steps: int) -> None:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.create_experiment("bench")
    rng = np.random.default_rng(0)
    x = np.arange(steps)
    for i in range(n_runs):
        run = client.create_run(exp, run_name=f"run-{i}")
        tau = rng.uniform(20, 400)
        curves = {"loss": 2 * np.exp(-x / tau) + 0.1, "val_loss": 2 * np.exp(-x / tau) + 0.3,
                  "accuracy": 1 - 0.9 * np.exp(-x / tau), "val_accuracy": 0.95 - 0.9 * np.exp(-x / tau)}
        ms = [Metric(k, float(v[s] + 0.01 * rng.standard_normal()), 1000 + int(s), int(s))
              for k, v in curves.items() for s in x]
        for j in range(0, len(ms), 1000):
            client.log_batch(run.info.run_id, metrics=ms[j:j + 1000])
        client.set_terminated(run.info.run_id, "FINISHED")


def naive(uri: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench").experiment_id
    n, token = 0, None
    while True:
        page = client.search_runs([exp], max_results=1000, page_token=token)
        for run in page:
            for key in ("loss", "val_loss", "accuracy", "val_accuracy"):
                n += len(client.get_metric_history(run.info.run_id, key))
        token = page.token
        if not token:
            return n


def plain_sql(path: str) -> int:
    con = sqlite3.connect(path)
    rows = con.execute("SELECT run_uuid, key, step, value FROM metrics WHERE key IN "
                       "('loss','val_loss','accuracy','val_accuracy') ORDER BY run_uuid, key, step").fetchall()
    return len(rows)


def tracker_diag(uri: str, write: bool) -> tuple[int, int]:
    from tracker_diag.batch import label
    from tracker_diag.connectors.mlflow import MlflowBackend

    res = label(MlflowBackend(uri, experiments=["bench"], workers=4), write=write)
    return len(res.results), res.skipped


def timed(fn, *a):
    t0 = time.perf_counter()
    out = fn(*a)
    return time.perf_counter() - t0, out


def start_server(db: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A default server, as users start it (several workers).
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--host", "127.0.0.1", "--port", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            urllib.request.urlopen(url + "/health", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.3)
    os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit("mlflow server did not start")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--no-server", action="store_true")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-mlflow-")
    db = os.path.join(tmp, "mlflow.db")
    uri = f"sqlite:///{db}"
    t, _ = timed(build, uri, a.runs, a.steps)
    print(f"store: {a.runs} runs x 4 metrics x {a.steps} steps, built in {t:.0f} s ({db})")
    t_sql, _ = timed(plain_sql, db)
    t_naive, _ = timed(naive, uri)
    t_dry, _ = timed(tracker_diag, uri, False)
    t_write, _ = timed(tracker_diag, uri, True)
    t_again, (_, skipped) = timed(tracker_diag, uri, True)
    print(f"sqlite URI:  plain SQL read {t_sql:.2f} s | naive read {t_naive:.2f} s | "
          f"dry run {t_dry:.2f} s | label --write {t_write:.2f} s | unchanged pass {t_again:.2f} s ({skipped} skipped)")
    print(f"  dry run / plain SQL = {t_dry / t_sql:.1f}x;  naive read / dry run = {t_naive / t_dry:.1f}x;  "
          f"second pass / first = {100 * t_again / t_write:.1f} %")
    if a.no_server:
        return
    db2 = os.path.join(tmp, "server.db")
    uri2 = f"sqlite:///{db2}"
    build(uri2, a.runs, a.steps)
    proc, url = start_server(db2)
    try:
        t_naive, _ = timed(naive, url)
        t_write, _ = timed(tracker_diag, url, True)
        t_again, (_, skipped) = timed(tracker_diag, url, True)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"server {url}: naive read {t_naive:.2f} s ({a.runs / t_naive:.0f} runs/s) | label --write {t_write:.2f} s "
          f"({a.runs / t_write:.0f} runs/s) | unchanged pass {t_again:.2f} s ({skipped} skipped)")
    print(f"  naive read / label --write = {t_naive / t_write:.1f}x;  second pass / first = "
          f"{100 * t_again / t_write:.1f} %")


if __name__ == "__main__":
    main()
