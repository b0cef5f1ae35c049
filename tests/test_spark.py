"""The Spark engine (issue 13): the same labels and the same writes as the single process.

SparkSession local[2] on 127.0.0.1, UI off; a real MLflow sqlite store read through Debian's
sqlite JDBC driver, and the same histories from a Parquet export."""

import json
import os
import shutil
import sqlite3

import pytest
from helpers import run_cli

pytestmark = pytest.mark.spark
pytest.importorskip("pyspark")
from mlflow.tracking import MlflowClient
from mlflow_helpers import log_run

from tracker_diag.spark import SparkJob, default_jars, session

KINDS = ["learning", "overfitting", "plateau", "diverging"]


@pytest.fixture(scope="module")
def spark():
    jars = default_jars()
    if not any(j.endswith("sqlite-jdbc.jar") for j in jars):
        if os.environ.get("CI"):
            pytest.fail("the sqlite JDBC driver is required here (apt install libxerial-sqlite-jdbc-java)")
        pytest.skip("no sqlite JDBC driver (apt install libxerial-sqlite-jdbc-java)")
    s = session("local[2]", jars=jars, app="tracker-diag-test")
    assert s.conf.get("spark.driver.bindAddress") == "127.0.0.1" and s.conf.get("spark.ui.enabled") == "false"
    yield s
    s.stop()


@pytest.fixture
def stores(new_store, tmp_path):
    """Three copies of one store of 50 runs (every regime, a NaN, a user tag, a description, a
    running run): one for the single process, one for Spark over JDBC, one for Spark over Parquet."""
    uri = new_store("base.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("many")
    for i in range(48):
        log_run(client, exp, KINDS[i % 4], name=f"run-{i:02d}", tags={"team": "a"} if i % 5 == 0 else None,
                description="my notes" if i % 7 == 0 else None)
    nan_run = log_run(client, exp, "diverging", name="nan-run")
    from mlflow.entities import Metric
    client.log_batch(nan_run, metrics=[Metric("val_loss", float("nan"), 9999, 200)])
    log_run(client, exp, "learning", name="still-running", finish=False)
    base = tmp_path / "base.db"
    out = {}
    for name in ("single", "jdbc", "parquet"):
        shutil.copyfile(base, tmp_path / f"{name}.db")
        out[name] = f"sqlite:///{tmp_path / name}.db"
    return out


def _everything(uri: str) -> dict:
    """Every run's tags and metrics as stored (the write-back is compared field by field)."""
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("many").experiment_id
    return {r.info.run_name: ({k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.") or k == "mlflow.note.content"},
                              {k: repr(v) for k, v in r.data.metrics.items()})  # NaN == NaN as text
            for r in client.search_runs([exp], max_results=1000)}


def _export_parquet(db: str, path: str) -> None:
    import pandas as pd

    with sqlite3.connect(db) as con:
        frame = pd.read_sql("SELECT run_uuid AS run_id, key, step, timestamp, "
                            "CASE WHEN is_nan THEN 'NaN' ELSE value END AS value FROM metrics", con)
    frame["value"] = frame["value"].astype(float)
    frame.to_parquet(path)


def test_spark_writes_what_the_single_process_writes_and_a_second_pass_writes_nothing(spark, stores, tmp_path, capsys):
    code, _, _ = run_cli(["label", "mlflow", "--tracking-uri", stores["single"], "-e", "many", "--write", "-q",
                          "--json", str(tmp_path / "single.json")], capsys)
    assert code == 0
    single = json.loads((tmp_path / "single.json").read_text())
    _export_parquet(stores["parquet"].removeprefix("sqlite:///"), str(tmp_path / "histories.parquet"))
    for name, histories in (("jdbc", None), ("parquet", str(tmp_path / "histories.parquet"))):
        result = SparkJob(stores[name], ["many"], write=True, histories=histories, runs_per_bucket=7).run(spark)
        assert {r.action for r in result.results} == {"written"}, [(r.ref.run_name, r.error) for r in result.results]
        assert _everything(stores[name]) == _everything(stores["single"]), name  # every tag and metric, field by field
        by_id = {r.ref.run_id: r.diagnosis.to_dict() for r in result.results}
        for run in single["runs"]:
            d = by_id[run["run_id"]]
            assert (d["regime"], d["confidence"], d["acc_gap"], d["best_step"], d["flags"], d["reasons"]) == \
                (run["regime"], run["confidence"], run["acc_gap"], run["best_step"], run["flags"], run["reasons"])
        assert len(by_id) == len(single["runs"]) == 49  # the running run is left out by both
        again = SparkJob(stores[name], ["many"], write=True, histories=histories).run(spark)
        assert {r.action for r in again.results} == {"unchanged"} and all(r.skipped for r in again.results)
        assert _everything(stores[name]) == _everything(stores["single"])


def test_the_spark_command_returns_the_same_json_report(spark, stores, tmp_path, capsys):
    single, on_spark = tmp_path / "single.json", tmp_path / "spark.json"
    assert run_cli(["label", "mlflow", "--tracking-uri", stores["single"], "-e", "many", "-q", "--write",
                    "--include-running", "--json", str(single)], capsys)[0] == 0
    code, out, err = run_cli(["spark", "--tracking-uri", stores["jdbc"], "-e", "many", "--write", "--include-running",
                              "--json", str(on_spark), "--runs-per-bucket", "9"], capsys)
    assert code == 0, err
    assert "50 runs" in out and "50 written" in out
    a, b = (json.loads(p.read_text()) for p in (single, on_spark))
    assert sorted(a["runs"], key=lambda r: r["run_id"]) == sorted(b["runs"], key=lambda r: r["run_id"])
    assert a["summary"] == b["summary"] and a["hyperparameters"] == b["hyperparameters"]
    (running,) = [r for r in b["runs"] if r["run_name"] == "still-running"]
    assert "provisional" in running["flags"]
    assert _everything(stores["jdbc"]) == _everything(stores["single"])
    assert run_cli(["spark", "--tracking-uri", stores["jdbc"], "-e", "nope"], capsys)[0] == 2
    assert run_cli(["spark", "--tracking-uri", stores["jdbc"], "-e", "many", "--report", "x.html"], capsys)[0] == 2
    code, _, _ = run_cli(["report", str(on_spark), "--tracking-uri", stores["jdbc"], "-o", str(tmp_path / "s.html")], capsys)
    assert code == 0 and (tmp_path / "s.html").read_text().count('<svg class="mini"') == 50  # the page, afterwards


def test_per_run_and_bucketed_analysis_agree_and_a_dry_run_writes_nothing(spark, stores):
    before = _everything(stores["jdbc"])
    bucketed = SparkJob(stores["jdbc"], ["many"], runs_per_bucket=10).run(spark)
    per_run = SparkJob(stores["jdbc"], ["many"], per_run=True).run(spark)
    assert [r.diagnosis for r in bucketed.results] == [r.diagnosis for r in per_run.results]
    assert {r.action for r in bucketed.results} == {"dry-run"} and _everything(stores["jdbc"]) == before


def test_the_jdbc_url_never_carries_the_password():
    from tracker_diag.spark import id_ranges, jdbc_of

    url, props = jdbc_of("postgresql://ml:s3cret@db.example:5432/mlflow")
    assert url == "jdbc:postgresql://db.example:5432/mlflow" and props["password"] == "s3cret" and "s3cret" not in url
    # the run-id ranges cover every id exactly once, whatever it looks like
    preds = id_ranges(8)
    ids = ["00", "3f", "7fffff", "80", "ff", "zz", "A1", "", "f" * 32]
    for rid in ids:
        hits = [p for p in preds if all(_holds(c.strip(), rid) for c in p.split(" AND "))]
        assert len(hits) == 1, (rid, hits)


def _holds(cond: str, rid: str) -> bool:
    op, bound = cond.split(" ")[1], cond.split("'")[1]
    return rid < bound if op == "<" else rid >= bound


def _no_pyarrow_python(tmp_path):
    """A ``python3`` first on PATH that has no site-packages (so no pyarrow): what cron finds
    when the venv is not activated."""
    import stat
    import sys

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "python3"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys._base_executable}" -S "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper


@pytest.mark.skipif(not any(j.endswith("sqlite-jdbc.jar") for j in default_jars()), reason="no sqlite JDBC driver")
def test_spark_from_an_unactivated_venv_uses_its_own_python_and_keeps_the_terminal_clean(stores, tmp_path):
    """``/opt/venv/bin/tracker-diag spark …`` from cron: Spark started its workers with
    ``python3`` from PATH (no pyarrow there) and printed a Java stack trace."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "tracker-diag"
    wrapper = _no_pyarrow_python(tmp_path)
    env = {"PATH": f"{wrapper.parent}:/usr/bin:/bin", "HOME": str(tmp_path), "LANG": "C.UTF-8",
           **({"JAVA_HOME": os.environ["JAVA_HOME"]} if os.environ.get("JAVA_HOME") else {})}
    cmd = [str(exe), "spark", "--tracking-uri", stores["jdbc"], "-e", "many", "--master", "local[2]", "--json", "-"]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    rep = json.loads(out.stdout)
    assert len(rep["runs"]) == 49 and {r["action"] for r in rep["runs"]} == {"dry-run"}
    noise = [line for line in out.stderr.splitlines()
             if any(w in line for w in ("WARN", "log4j", "Exception", "Warning", "\tat ", "py4j"))]
    assert not noise, out.stderr[-3000:]
    assert (tmp_path / ".cache/tracker-diag/spark.log").stat().st_size > 0  # the JVM's lines went here

    # the user's PYSPARK_PYTHON wins; one lacking the analyzer's packages is one clear line
    out = subprocess.run(cmd, env={**env, "PYSPARK_PYTHON": str(wrapper)}, capture_output=True, text=True,
                         timeout=300, cwd=tmp_path, check=False)
    assert out.returncode == 2
    errors = [line for line in out.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "has no module" in errors[0] and "PYSPARK_PYTHON" in errors[0], out.stderr[-3000:]
    assert str(wrapper) in errors[0] and "\tat " not in out.stderr and "Traceback" not in out.stderr


def test_a_run_split_across_batches_is_analysed_whole():
    """analyse_sorted streams a partition's batches: a run whose points straddle two batches is
    held back until its last point is in, so every call sees whole runs."""
    import pandas as pd

    from tracker_diag.analyze import analyze_runs
    from tracker_diag.spark import analyse_sorted

    rows = []
    for i, kind in enumerate(KINDS * 3):
        from mlflow_helpers import curves

        for key, values in curves(kind).items():
            rows += [(f"run{i:02d}", key, float(s), 1000 + s, float(v)) for s, v in enumerate(values)]
    frame = pd.DataFrame(rows, columns=["run_id", "key", "step", "timestamp", "value"]).sort_values("run_id")
    batches = [frame.iloc[a:a + 37] for a in range(0, len(frame), 37)]  # cuts runs mid-way
    streamed = pd.concat(list(analyse_sorted(iter(batches), None, None, per=2)), ignore_index=True)
    whole = analyze_runs(frame)
    assert sorted(streamed["run_id"]) == sorted(whole["run_id"]) and len(streamed) == 12
    assert dict(zip(streamed["run_id"], streamed["diagnosis"])) == dict(zip(whole["run_id"], whole["diagnosis"]))
