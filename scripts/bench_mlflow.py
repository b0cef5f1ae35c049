"""MLflow reads and labelling, side by side in one command.

    python scripts/bench_mlflow.py                  # 300-run and 3,000-run stores, sqlite + a local server
    python scripts/bench_mlflow.py --no-server --no-big
    python scripts/bench_mlflow.py --runs 1000 --no-server --no-big --postgres   # sqlite and PostgreSQL

Stores hold N runs x 4 metrics x 200 steps. The 300-run store is logged through the
MLflow client; the 3,000-run store is that store cloned ten times with SQL (new run ids),
to save the ~15 minutes of logging it would take. Timed, on the sqlite URI: a plain SQL
read of the histories and the tracker-diag dry run, each as a whole process (peak memory
too); the naive loop users write (search_runs + get_metric_history per run per key);
`label --write`; a second, unchanged pass. Through a default `mlflow server` (as users
start it): the naive read against `label --write`.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))  # pg_server

KEYS = ("loss", "val_loss", "accuracy", "val_accuracy")


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


def clone(src: str, dst: str, times: int) -> None:
    """dst = src with every run copied ``times`` times under new ids (a benchmark fixture only)."""
    shutil.copy(src, dst)
    con = sqlite3.connect(dst)
    cols = {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in
            ("runs", "metrics", "latest_metrics", "tags", "params")}
    con.execute("CREATE TEMP TABLE orig AS SELECT run_uuid FROM runs")
    for k in range(1, times):
        for table, names in cols.items():
            sel = ", ".join(f"substr(run_uuid, 1, 28) || printf('%04d', {k})" if c == "run_uuid" else
                            (f"name || '-{k}'" if (table, c) == ("runs", "name") else c) for c in names)
            con.execute(f"INSERT INTO {table} ({', '.join(names)}) SELECT {sel} FROM {table} "
                        "WHERE run_uuid IN (SELECT run_uuid FROM orig)")
    con.commit()
    con.close()


def naive(uri: str) -> int:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench").experiment_id
    n, token = 0, None
    while True:
        page = client.search_runs([exp], max_results=1000, page_token=token)
        for run in page:
            for key in KEYS:
                n += len(client.get_metric_history(run.info.run_id, key))
        token = page.token
        if not token:
            return n


PEAK = "int(next(line for line in open('/proc/self/status') if line.startswith('VmHWM')).split()[1])"
SQL_READ = """
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
rows = con.execute("SELECT run_uuid, key, step, value, is_nan FROM metrics WHERE key IN "
                   "('loss','val_loss','accuracy','val_accuracy') ORDER BY run_uuid, key, timestamp, step").fetchall()
print(len(rows), PEAK)
""".replace("PEAK", PEAK)
DRY_RUN = """
import sys
from tracker_diag.batch import label
from tracker_diag.connectors.mlflow import MlflowBackend
res = label(MlflowBackend.open(sys.argv[1], experiments=["bench"]), force=True)
print(len(res.results), PEAK)
""".replace("PEAK", PEAK)


def process(code: str, arg: str) -> tuple[float, int, int]:
    """Wall time of a whole Python process, its result count and its peak RSS (VmHWM, KiB)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, arg], capture_output=True, text=True, check=True)
    n, rss = out.stdout.split()[-2:]
    return time.perf_counter() - t0, int(n), int(rss)


def labelled(uri: str, write: bool, client: bool = False) -> tuple[float, int]:
    """One labelling pass; ``client``: reads and writes through MLflow's client, run by run
    (what a database URI of an unknown schema, or a file store, gets)."""
    from tracker_diag.batch import label
    from tracker_diag.connectors.mlflow import MlflowBackend

    t0 = time.perf_counter()
    backend = MlflowBackend.open(uri, experiments=["bench"])
    if client:
        backend = MlflowBackend(uri, backend.experiment_ids)
    res = label(backend, write=write)
    assert not res.failed, [r.error for r in res.results if r.error][:3]
    return time.perf_counter() - t0, res.skipped


def unchanged_pass(uri: str) -> tuple[float, int, str]:
    """The median of three unchanged passes (the first after a write may meet a cold cache),
    its skip count, and all three as text."""
    times = [labelled(uri, True) for _ in range(3)]
    return *sorted(times)[1], ", ".join(f"{t:.2f}" for t, _ in times)


def write_floor(uri: str, workers: int = 16) -> float:
    """Seconds for the server to take one bare log_batch per run (7 tags, 1 metric), with
    ``workers`` in flight: no client that writes each run can finish faster than this.
    """
    from concurrent.futures import ThreadPoolExecutor

    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("bench").experiment_id
    ids = [r.info.run_id for r in client.search_runs([exp], max_results=1000)]

    def put(rid):
        client.log_batch(rid, metrics=[Metric("bench_probe", 0.1, 1, 0)],
                         tags=[RunTag(f"bench_probe_{k}", "x" * 30) for k in range(7)])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(put, ids))
    return time.perf_counter() - t0


def start_server(db: str) -> tuple[subprocess.Popen, str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
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


def sqlite_side(db: str, n: int, with_naive: bool) -> dict:
    uri = f"sqlite:///{db}"
    t_sql, rows, rss_sql = process(SQL_READ, db)
    t_dry, runs, rss_dry = process(DRY_RUN, uri)
    assert runs == n, (runs, n)
    t_naive = None
    if with_naive:
        t0 = time.perf_counter()
        naive(uri)
        t_naive = time.perf_counter() - t0
    twin = db + ".client.db"
    shutil.copy(db, twin)
    writes = write_figures(uri, f"sqlite:///{twin}", n)
    print(f"sqlite, {n} runs ({rows} points):")
    print(f"  plain SQL read (process) {t_sql:6.2f} s  peak {rss_sql / 1024:5.0f} MiB")
    print(f"  tracker-diag dry run     {t_dry:6.2f} s  peak {rss_dry / 1024:5.0f} MiB   -> {t_dry / t_sql:.1f}x the SQL read")
    if t_naive is not None:
        print(f"  naive read (in process)  {t_naive:6.2f} s                   -> {t_naive / t_dry:.1f}x the dry run")
    print(writes)
    return {"dry": t_dry, "rss": rss_dry}


def write_figures(uri: str, twin: str, n: int) -> str:
    """In this process (imports paid already): the dry run, the first --write on the SQL path,
    the unchanged pass, and the first --write through the client on ``twin`` (the same store)."""
    t_dry, _ = labelled(uri, False)
    t_write, _ = labelled(uri, True)
    t_again, skipped, passes = unchanged_pass(uri)
    t_client, _ = labelled(twin, True, client=True)
    return "\n".join([
        f"  dry run (in process)     {t_dry:6.2f} s  ({1000 * t_dry / n:.1f} ms a run)",
        (f"  label --write (SQL path) {t_write:6.2f} s  ({1000 * t_write / n:.1f} ms a run)  -> "
        f"{t_write / t_dry:.1f}x the dry run in process"),
        (f"  unchanged pass (median)  {t_again:6.2f} s  ({skipped} skipped; {passes} s)  -> "
        f"{100 * t_again / t_write:.1f} % of the first"),
        (f"  label --write, client    {t_client:6.2f} s  ({1000 * t_client / n:.1f} ms a run)  -> "
        f"the SQL path is {t_client / t_write:.1f}x faster")])


SQL_READ_ANY = """
import sys
import sqlalchemy as sa
with sa.create_engine(sys.argv[1]).connect() as con:
    rows = con.exec_driver_sql("SELECT run_uuid, key, step, value, is_nan FROM metrics WHERE key IN "
                               "('loss','val_loss','accuracy','val_accuracy') "
                               "ORDER BY run_uuid, key, timestamp, step").fetchall()
print(len(rows), PEAK)
""".replace("PEAK", PEAK)


def postgres_side(n: int, steps: int) -> None:
    """The same figures on PostgreSQL (durable commits, as a production server runs)."""
    from pg_server import PostgresServer

    with PostgresServer() as pg:
        uri, twin = pg.create("bench"), pg.create("twin")
        t0 = time.perf_counter()
        build(uri, n, steps)
        build(twin, n, steps)
        print(f"\nbuilt two PostgreSQL stores of {n} runs in {time.perf_counter() - t0:.0f} s")
        t_sql, rows, _ = process(SQL_READ_ANY, uri)
        writes = write_figures(uri, twin, n)
    print(f"PostgreSQL, {n} runs ({rows} points):")
    print(f"  plain SQL read (process) {t_sql:6.2f} s")
    print(writes)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=300)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--no-server", action="store_true")
    p.add_argument("--no-big", action="store_true", help="skip the 10x store")
    p.add_argument("--postgres", action="store_true", help="the same on PostgreSQL (Debian's server, started here)")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-mlflow-")
    base = os.path.join(tmp, "base.db")
    t0 = time.perf_counter()
    build(f"sqlite:///{base}", a.runs, a.steps)
    print(f"built {a.runs} runs x 4 metrics x {a.steps} steps in {time.perf_counter() - t0:.0f} s ({tmp})\n")
    small = os.path.join(tmp, "small.db")
    shutil.copy(base, small)
    s = sqlite_side(small, a.runs, with_naive=True)
    if not a.no_big:
        big = os.path.join(tmp, "big.db")
        clone(base, big, 10)
        b = sqlite_side(big, 10 * a.runs, with_naive=False)
        print(f"\npeak memory, {10 * a.runs} vs {a.runs} runs: {b['rss'] / s['rss']:.2f}x;  "
              f"dry-run time {b['dry'] / s['dry']:.1f}x for 10x the runs")
    if a.postgres:
        postgres_side(a.runs, a.steps)
    if a.no_server:
        return
    srv = os.path.join(tmp, "server.db")
    shutil.copy(base, srv)
    proc, url = start_server(srv)
    try:
        t0 = time.perf_counter()
        naive(url)
        t_naive = time.perf_counter() - t0
        t_write, _ = labelled(url, True)
        t_again, skipped, passes = unchanged_pass(url)
        t_floor = write_floor(url)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
    print(f"\nmlflow server (default workers), {a.runs} runs:")
    print(f"  naive read               {t_naive:6.2f} s  ({a.runs / t_naive:.1f} runs/s)")
    print(f"  label --write            {t_write:6.2f} s  ({a.runs / t_write:.1f} runs/s)  "
          f"-> {t_naive / t_write:.1f}x faster than the naive read alone")
    print(f"  unchanged pass (median)  {t_again:6.2f} s  ({skipped} skipped; {passes} s)  -> "
          f"{100 * t_again / t_write:.1f} % of the first")
    print(f"  write floor: bare log_batch per run, 16 in flight: {t_floor:6.2f} s ({a.runs / t_floor:.1f} runs/s) "
          f"-> no writing client beats {t_naive / t_floor:.1f}x the naive read here")


if __name__ == "__main__":
    main()
