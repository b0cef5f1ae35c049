"""The analyzer on one process and on Spark, side by side; and what 1,000,000 runs would cost.

    python scripts/bench_spark.py [--runs 20000] [--steps 100] [--cores 2]

N runs x 4 keys x S steps (scripts/bench_analyzer.make_frame), as a Parquet file:

- single process: split_runs + analyze per run (the `label` path without a tracker);
- Spark local[cores], one analyzer call per run: ``groupBy("run_id").applyInPandas``;
- Spark local[cores], buckets of runs per call: ``groupBy(bucket).applyInPandas(analyze_runs)``
  (the engine's way until issue 21: a shuffle and a pandas group per bucket);
- Spark local[cores], the engine's way: each partition (whole runs) sorted by run and streamed
  through ``mapInPandas(analyse_sorted)``, ``--runs-per-bucket`` runs a call, no shuffle;
- the floor of that: the same sort and Arrow round trip to Python with no analysis;
- the JDBC read rate: MLflow's ``metrics`` table of a sqlite store holding the same number of
  points, read through Debian's sqlite JDBC driver in ``cores`` partitions (rows/s).

Runs/s per core for each, then on paper: the wall time for 1,000,000 runs on 32 cores.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_analyzer import make_frame

from tracker_diag.analyze import RUNS_DDL, analyze, analyze_runs
from tracker_diag.frames import split_runs
from tracker_diag.spark import analyse_sorted


def sqlite_store(path: str, frame) -> None:
    """A metrics table as MLflow lays it out (its columns and its run/key/step index)."""
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE metrics (key VARCHAR(250), value FLOAT, timestamp BIGINT, run_uuid VARCHAR(32), "
                "step BIGINT, is_nan BOOLEAN, PRIMARY KEY (key, timestamp, step, run_uuid, value, is_nan))")
    con.execute("CREATE INDEX index_metrics_run_uuid_key_step ON metrics (run_uuid, key, step)")
    con.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?, 0)",
                    zip(frame["key"], frame["value"], frame["step"].astype(int) + 1000, frame["run_id"],
                        frame["step"].astype(int)))
    con.commit()
    con.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=20_000)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--runs-per-bucket", type=int, default=200)
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-spark-")
    frame = make_frame(a.runs, a.steps)
    parquet = os.path.join(tmp, "histories.parquet")
    frame.to_parquet(parquet)
    points = len(frame)

    t0 = time.perf_counter()
    single = {rid: analyze(h).regime for rid, h in split_runs(frame)}
    t_single = time.perf_counter() - t0

    from pyspark.sql import functions as F

    from tracker_diag.spark import default_jars, session

    spark = session(f"local[{a.cores}]", jars=default_jars(), app="bench")
    df = spark.read.parquet(parquet).repartition(a.cores * 4, "run_id").cache()
    df.count()

    def per_call(pdf):
        return analyze_runs(pdf.drop(columns=["bucket"], errors="ignore"))

    t0 = time.perf_counter()
    per_run = dict(df.groupBy("run_id").applyInPandas(per_call, RUNS_DDL).select("run_id", "regime").collect())
    t_per_run = time.perf_counter() - t0
    buckets = max(1, a.runs // a.runs_per_bucket)
    t0 = time.perf_counter()
    bucketed = dict(df.withColumn("bucket", F.abs(F.hash("run_id")) % buckets).groupBy("bucket")
                    .applyInPandas(per_call, RUNS_DDL).select("run_id", "regime").collect())
    t_bucketed = time.perf_counter() - t0
    t0 = time.perf_counter()
    per = a.runs_per_bucket
    streamed = dict(df.sortWithinPartitions("run_id").mapInPandas(lambda b: analyse_sorted(b, None, None, per),
                                                                  RUNS_DDL).select("run_id", "regime").collect())
    t_streamed = time.perf_counter() - t0
    assert single == per_run == bucketed == streamed, "the four ways disagree"
    t0 = time.perf_counter()
    df.sortWithinPartitions("run_id").mapInPandas(lambda b: (x.head(0) for x in b), df.schema).count()
    t_floor = time.perf_counter() - t0

    jdbc_rate = None
    if any(j.endswith("sqlite-jdbc.jar") for j in default_jars()):
        db = os.path.join(tmp, "mlflow.db")
        sqlite_store(db, frame)
        from tracker_diag.spark import id_ranges

        t0 = time.perf_counter()
        n = spark.read.jdbc(f"jdbc:sqlite:{db}", "(SELECT run_uuid AS run_id, key, step, timestamp, value, is_nan "
                            "FROM metrics) t", predicates=id_ranges(a.cores * 4),
                            properties={"driver": "org.sqlite.JDBC"}).count()
        jdbc_rate = n / (time.perf_counter() - t0)
        assert n == points
    spark.stop()

    rate = {"single process (1 core)": a.runs / t_single,
            f"Spark per-run ({a.cores} cores)": a.runs / t_per_run / a.cores,
            f"Spark groupBy(bucket), {a.runs_per_bucket} runs/call ({a.cores} cores)": a.runs / t_bucketed / a.cores,
            f"Spark sorted stream, {a.runs_per_bucket} runs/call ({a.cores} cores)": a.runs / t_streamed / a.cores}
    print(f"{a.runs} runs x 4 keys x {a.steps} steps ({points:,} points); same regimes all four ways")
    for (name, r), t in zip(rate.items(), (t_single, t_per_run, t_bucketed, t_streamed)):
        print(f"  {name:52s} {t:7.1f} s   {r:7.0f} runs/s per core  ({r / rate['single process (1 core)']:.2f}x "
              "one process)")
    print(f"  {'floor: the sort and Arrow round trip alone':52s} {t_floor:7.1f} s   "
          f"({100 * t_floor / t_streamed:.0f} % of the sorted stream's time; the JVM shares the {a.cores} cores)")
    per_core = list(rate.values())[-1]
    analysis = 1_000_000 / (per_core * 32)
    print("\nOn paper, 1,000,000 runs of 400 points on 32 cores:")
    print(f"  analysis, bucketed: 1e6 / ({per_core:.0f} runs/s/core x 32) = {analysis / 60:.1f} min")
    if jdbc_rate:
        read = 4e8 / jdbc_rate
        print(f"  JDBC read of 4e8 points at the rate measured here ({jdbc_rate / 1e6:.2f} M rows/s, sqlite, "
              f"{a.cores} partitions): {read / 60:.1f} min; a database server serving N partitions in parallel "
              f"divides this by up to N/{a.cores}")
        print(f"  total, read and analysis not overlapped: {(analysis + read) / 60:.1f} min (upper bound)")


if __name__ == "__main__":
    main()
