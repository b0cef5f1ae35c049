"""Label an MLflow experiment of millions of runs on Spark: the same analyzer, the same
write-back plan, the same JSON report as ``tracker-diag label mlflow``.

    spark-submit --jars /usr/share/java/sqlite-jdbc.jar \\
        "$(python -c 'import tracker_diag.__main__ as m; print(m.__file__)')" \\
        spark --tracking-uri sqlite:////data/mlflow.db -e my-exp --write --json labels.json

What runs where:

- **driver**: the run listing, each run's data fingerprint (computed in SQL from
  ``latest_metrics``: the same ``step=…;ts=…;n=…`` the single-process path computes) and its
  ``diag_*`` tags, over JDBC; runs whose fingerprint matches their ``diag_checked`` are
  skipped before any history is read.
- **executors**: the histories, read in parallel (MLflow's ``metrics`` table over JDBC, one
  partition per range of run ids — uuid hex, so the ranges are a hash partitioning —, or a
  Parquet export ``run_id, key, step, value[, timestamp]``), analysed in buckets of runs by
  :func:`tracker_diag.analyze.analyze_runs` (``groupBy(bucket).applyInPandas``; one call per
  run costs several times more), and written back per partition through the MLflow client
  with :func:`tracker_diag.writeback.plan`, a bounded number of writes in flight each.

Nothing of Spark is imported unless this module is used (``pip install 'tracker-diag[spark]'``).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from itertools import pairwise
from urllib.parse import unquote, urlsplit

from tracker_diag import settings
from tracker_diag.analyze import RUNS_DDL, analyze_runs
from tracker_diag.batch import BatchResult, RunResult, Writer, label_config, provisional, triage
from tracker_diag.connectors import mlflow_sql
from tracker_diag.errors import ConfigError, ConnectorError, need
from tracker_diag.model import Diagnosis, RunRef, Thresholds
from tracker_diag.text import redact
from tracker_diag.tracker import Tracker

SPARK_EXTRA = "spark"
RESULT_DDL = RUNS_DDL + ", action string, error string"


def jdbc_of(tracking_uri: str) -> tuple[str, dict[str, str]]:
    """The JDBC URL and connection properties of an MLflow database URI (the password goes
    into the properties, never into the URL that may be printed)."""
    parts = urlsplit(tracking_uri)
    scheme = parts.scheme.split("+")[0]
    if scheme == "sqlite":
        path = tracking_uri.split(":///", 1)[1] if ":///" in tracking_uri else ""
        if not path:
            raise ConfigError(f"not a sqlite file URI: {tracking_uri!r}")
        return f"jdbc:sqlite:{os.path.abspath(path)}", {"driver": "org.sqlite.JDBC"}
    drivers = {"postgresql": ("postgresql", "org.postgresql.Driver"), "mysql": ("mysql", "com.mysql.cj.jdbc.Driver")}
    if scheme not in drivers:
        raise ConfigError(f"the Spark engine reads sqlite, postgresql or mysql stores; {scheme!r} is none of them "
                          "(for a tracking server, export the histories to Parquet and pass --histories)")
    name, driver = drivers[scheme]
    props = {"driver": driver}
    if parts.username:
        props["user"] = unquote(parts.username)
    if parts.password:
        props["password"] = unquote(parts.password)
    port = f":{parts.port}" if parts.port else ""
    return f"jdbc:{name}://{parts.hostname}{port}{parts.path}", props


def id_ranges(n: int) -> list[str]:
    """``n`` predicates that split every run id into disjoint, covering ranges. MLflow run ids
    are uuid4 hex, uniform in their first digits: ranges of them are a hash partitioning
    that every SQL dialect can push down to its primary-key index."""
    n = max(1, min(n, 256))
    bounds = [f"{(256 * i) // n:02x}" for i in range(1, n)]
    if not bounds:
        return ["1 = 1"]
    preds = [f"run_id < '{bounds[0]}'"]
    preds += [f"run_id >= '{a}' AND run_id < '{b}'" for a, b in pairwise(bounds)]
    return preds + [f"run_id >= '{bounds[-1]}'"]


@dataclass
class SparkJob:
    """One labelling pass over an MLflow store on Spark (``run`` returns a BatchResult)."""

    tracking_uri: str
    experiments: list[str]
    write: bool = False
    force: bool = False
    keys: dict[str, str] | None = None
    thresholds: Thresholds = field(default_factory=Thresholds)
    histories: str | None = None          # a Parquet export instead of the metrics table
    jdbc_url: str | None = None           # default: from the tracking URI
    jdbc_properties: dict[str, str] = field(default_factory=dict)
    runs_per_bucket: int = 200            # runs per analyzer call
    per_run: bool = False                 # one analyzer call per run (the slow way; for the benchmark)
    partitions: int = 0                   # history read partitions; 0: Spark's default parallelism
    writes_in_flight: int = 4             # per executor partition
    include_running: bool = False

    def __post_init__(self):
        if self.jdbc_url is None:
            self.jdbc_url, props = jdbc_of(self.tracking_uri)
            self.jdbc_properties = {**props, **self.jdbc_properties}

    # -- driver: listing, fingerprints, skips ---------------------------------------------------

    def _sql(self, spark, query: str, predicates: list[str] | None = None):
        table = f"({query}) t"
        if predicates:
            return spark.read.jdbc(self.jdbc_url, table, predicates=predicates, properties=self.jdbc_properties)
        return spark.read.jdbc(self.jdbc_url, table, properties=self.jdbc_properties)

    def _experiment_ids(self, spark) -> list[int]:
        rows = self._sql(spark, mlflow_sql.EXPERIMENTS).collect()
        by = {str(r["experiment_id"]): int(r["experiment_id"]) for r in rows}
        by.update({r["name"]: int(r["experiment_id"]) for r in rows})
        missing = [e for e in self.experiments if e not in by]
        if missing:
            raise ConfigError(f"no active experiment {', '.join(map(repr, missing))} in {self.jdbc_url}")
        return sorted({by[e] for e in self.experiments})

    def listing(self, spark) -> list[RunRef]:
        """Every run to consider, with its fingerprint, diag_* tags and params: the listing
        query texts and row assembly of the single-process SQL path (connectors.mlflow_sql),
        read over JDBC (small rows: on the driver)."""
        ids = self._experiment_ids(spark)
        statuses = set(mlflow_sql.ENDED) | ({"RUNNING"} if self.include_running else set())
        runs_sql = mlflow_sql.RUNS.format(experiments=", ".join(map(str, ids)))
        of_runs = mlflow_sql.of_runs(ids)

        def rows(query: str) -> list[tuple]:
            return [tuple(r) for r in self._sql(spark, query).collect()]

        listed = mlflow_sql.refs(sorted(rows(runs_sql)), rows(mlflow_sql.LATEST.format(runs=of_runs)),
                                 rows(mlflow_sql.DIAG_TAGS.format(runs=of_runs)),
                                 rows(mlflow_sql.PARAMS.format(runs=of_runs)), statuses)
        config = label_config(self.thresholds, self.keys)
        return [replace(ref, checked=f"{ref.checked};cfg={config}") for ref in listed]

    # -- executors: histories, analysis, write-back ---------------------------------------------

    def _histories(self, spark, todo):
        """The long frame of the runs to label: run_id, key, step, timestamp, value, checked."""
        functions = need("pyspark.sql.functions", SPARK_EXTRA)
        wanted = spark.createDataFrame([(r.run_id, r.checked) for r in todo], "run_id string, checked string")
        if self.histories:
            frame = spark.read.parquet(self.histories)
            if "timestamp" not in frame.columns:
                frame = frame.withColumn("timestamp", functions.lit(0).cast("long"))
            frame = frame.select("run_id", "key", "step", "timestamp", "value")
        else:
            runs = mlflow_sql.of_runs(sorted({int(r.experiment) for r in todo}))
            n = self.partitions or spark.sparkContext.defaultParallelism
            frame = self._sql(spark, mlflow_sql.HISTORIES.format(runs=runs), predicates=id_ranges(n))
            nan = functions.lit(float("nan"))
            frame = frame.select("run_id", "key", functions.col("step").cast("double").alias("step"),
                                 functions.col("timestamp").cast("long").alias("timestamp"),
                                 functions.when(functions.col("is_nan").cast("int") == 1, nan)
                                 .otherwise(functions.col("value").cast("double")).alias("value"))
        return frame.join(functions.broadcast(wanted), "run_id")

    def _analysed(self, frame, whole_runs: bool):
        """One analyzer call per ``runs_per_bucket`` runs, streamed through each partition
        sorted by run (``mapInPandas``): no shuffle where every run's points are in one
        partition already (the JDBC read partitions by run id ranges), one repartition by run
        where they may not be (a Parquet export). A groupBy per bucket costs a shuffle and a
        pandas group each; one call per run several times more (``per_run``, for the benchmark)."""
        keys, th, per = self.keys, self.thresholds, max(1, self.runs_per_bucket)
        if self.per_run:
            return frame.groupBy("run_id").applyInPandas(lambda pdf: analyze_runs(pdf, keys, th), RUNS_DDL)
        if not whole_runs:
            frame = frame.repartition(frame.sparkSession.sparkContext.defaultParallelism * 2, "run_id")
        return frame.sortWithinPartitions("run_id").mapInPandas(
            lambda batches: analyse_sorted(batches, keys, th, per), RUNS_DDL)

    def _written(self, analysed, todo: list[RunRef]):
        """Each partition writes its runs through one MLflow client, ``writes_in_flight`` at a time.
        A task carries only the ids of running runs (few); each row carries its own fingerprint."""
        running = frozenset(r.run_id for r in todo if r.status == "RUNNING")
        uri, write, in_flight = self.tracking_uri, self.write, self.writes_in_flight

        def put(batches: Iterator) -> Iterator:
            for pdf in batches:  # pandas frames of analysed runs
                actions = write_partition(uri, pdf, running, write, in_flight)
                yield pdf.assign(action=[a for a, _ in actions], error=[e for _, e in actions])

        return analysed.mapInPandas(put, RESULT_DDL)

    def run(self, spark) -> BatchResult:
        """Raises ConnectorError for what Spark or the database refused (one line, no password)."""
        failures = (need("pyspark.errors", SPARK_EXTRA).PySparkException, need("py4j.protocol", SPARK_EXTRA).Py4JError)
        try:
            return self._run(spark)
        except failures as exc:
            python = spark.sparkContext.pythonExec or "python3"
            first = worker_problem(exc, python) or next((line for line in str(exc).splitlines() if line.strip()),
                                                        type(exc).__name__)
            raise ConnectorError(f"Spark on {redact(self.jdbc_url or '')}: {redact(first)[:500]}") from exc

    def _run(self, spark) -> BatchResult:
        listed = self.listing(spark)
        todo, _, unchanged = triage(listed, force=self.force, keep_curves=False)
        out = BatchResult(results=unchanged)
        if todo:
            rows = self._written(self._analysed(self._histories(spark, todo), whole_runs=not self.histories),
                                 todo).collect()
            refs = {r.run_id: r for r in todo}
            seen = set()
            for row in rows:
                ref = refs[row["run_id"]]
                seen.add(ref.run_id)
                diag = provisional(ref, Diagnosis.from_dict(json.loads(row["diagnosis"])))
                out.results.append(RunResult(ref, diag, row["action"], error=row["error"] or ""))
            for ref in todo:  # listed, but no point of any metric in the histories read
                if ref.run_id not in seen:
                    out.results.append(RunResult(ref, None, "failed",
                                                 error="the tracker returned no history for this run"))
        order = {r.run_id: i for i, r in enumerate(listed)}
        out.results.sort(key=lambda r: order[r.ref.run_id])
        return out


def analyse_sorted(batches: Iterator, keys, thresholds, per: int) -> Iterator:
    """Pandas batches of one partition sorted by run id -> analysed runs, ``per`` runs a call:
    a run whose points straddle two batches is held back until its last point is in."""
    import pandas as pd

    pending: list = []
    runs = 0
    for pdf in batches:
        if not len(pdf):
            continue
        pending.append(pdf)
        runs += int(pdf["run_id"].nunique())
        if runs > per:
            whole = pd.concat(pending, ignore_index=True)
            last = whole["run_id"].iat[-1]
            tail = whole["run_id"].to_numpy() == last  # sorted: the last run is a suffix
            pending, runs = [whole[tail]], 1
            yield analyze_runs(whole[~tail], keys, thresholds)
    if pending:
        yield analyze_runs(pd.concat(pending, ignore_index=True), keys, thresholds)


def write_partition(tracking_uri: str, pdf, running: frozenset[str], write: bool,
                    in_flight: int) -> list[tuple[str, str]]:
    """(action, error) per row of an analysed partition: planned and applied exactly as
    ``tracker_diag.batch`` does for one machine: on a database the executor reaches, the
    partition's runs in conditional SQL transactions; else through the MLflow client (fresh
    state, plan, apply, re-plan on a transient error), ``in_flight`` at a time. A dry run
    writes nothing."""
    if not write:
        return [("dry-run", "")] * len(pdf)
    from concurrent.futures import ThreadPoolExecutor

    from tracker_diag.connectors.mlflow import MlflowBackend

    backend: Tracker = MlflowBackend.for_writes(tracking_uri)
    try:
        writer = Writer(backend)
        refs = [RunRef(run_id=rid, source="mlflow", status="RUNNING" if rid in running else "FINISHED", checked=fp)
                for rid, fp in zip(pdf["run_id"], pdf["checked"])]
        items: list[tuple[RunRef, Diagnosis, dict]] = [
            (ref, provisional(ref, Diagnosis.from_dict(json.loads(d))), {}) for ref, d in zip(refs, pdf["diagnosis"])]
        results = writer.put_many(items)
        if results is None:
            with ThreadPoolExecutor(max(1, in_flight)) as pool:
                results = list(pool.map(writer.put, items))
    finally:
        backend.close()
    return [(r.action, r.error) for r in results]


def is_local(master: str | None) -> bool:
    """Whether the session runs its Python workers on this machine (not under spark-submit's cluster)."""
    if master:
        return master.startswith("local")
    return not settings.under_spark_submit()  # its master and settings win


@contextlib.contextmanager
def _environ(**values: str):
    """``os.environ`` with ``values`` set (where not set already) while the JVM and the
    SparkContext start, as it was afterwards: the context keeps what it read."""
    added = {k: v for k, v in values.items() if not settings.is_set(k)}
    os.environ.update(added)
    try:
        yield
    finally:
        for k in added:
            os.environ.pop(k, None)


def session(master: str | None = None, jars: list[str] | None = None, app: str = "tracker-diag",
            jvm_log: str | None = None):
    """The SparkSession: spark-submit's when there is one (its master and settings win), else a
    local one bound to 127.0.0.1 with its UI off (``master`` local[*] unless given).

    In local mode the Python workers run this interpreter (``sys.executable``: the venv's, even
    when it is not activated, as from cron) unless ``PYSPARK_PYTHON`` says otherwise; Spark
    itself would start ``python3`` from ``PATH``. ``jvm_log``: a file that takes the JVM's own
    output (log4j, JDK warnings) instead of the terminal, when this call starts the JVM.
    """
    sql = need("pyspark.sql", SPARK_EXTRA)
    pyspark = need("pyspark", SPARK_EXTRA)
    conf = (pyspark.SparkConf().setAppName(app).set("spark.sql.execution.arrow.pyspark.enabled", "true")
            # bigger Arrow batches into the analyzer: about 9 % faster than the default 10,000 (bench_spark.py)
            .set("spark.sql.execution.arrow.maxRecordsPerBatch", "50000"))
    local = is_local(master)
    env = {}
    if local:
        env = {"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}  # the JVM binds nothing else
        conf = (conf.setMaster(master or "local[*]")
                .set("spark.driver.host", "127.0.0.1").set("spark.driver.bindAddress", "127.0.0.1")
                .set("spark.ui.enabled", "false").set("spark.ui.showConsoleProgress", "false")
                .set("spark.sql.shuffle.partitions", "8"))
    elif master:
        conf = conf.setMaster(master)
    if jars:
        conf = conf.set("spark.jars", ",".join(jars))
    with _environ(**env):
        active = pyspark.SparkContext._active_spark_context
        if active is None and jvm_log is not None and not settings.is_set("PYSPARK_GATEWAY_PORT"):
            from pyspark.java_gateway import launch_gateway

            os.makedirs(os.path.dirname(os.path.abspath(jvm_log)), exist_ok=True)
            with open(jvm_log, "wb") as log:  # the JVM keeps its own copy of the descriptor
                gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
            pyspark.SparkContext(conf=conf, gateway=gateway)
        spark = sql.SparkSession.builder.config(conf=conf).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR" if jvm_log is not None else "WARN")
    return spark


def worker_problem(exc: BaseException, python: str) -> str | None:
    """One line for a Python worker that could not import what the analyzer needs (on a
    cluster: a package missing on the executors), else None."""
    import re

    found = re.findall(r"No module named '([\w.]+)'", str(exc))
    if not found:
        return None
    module = found[-1].split(".")[0]
    return (f"the Spark workers' Python ({python}) has no module {module!r}: install tracker-diag[spark] there "
            "(pip install 'tracker-diag[spark]'), or set PYSPARK_PYTHON to a Python that has it")


def default_jars() -> list[str]:
    """The JDBC drivers Debian installs (libxerial-sqlite-jdbc-java, libpostgresql-jdbc-java)."""
    return [p for p in ("/usr/share/java/sqlite-jdbc.jar", "/usr/share/java/postgresql.jar") if os.path.exists(p)]
