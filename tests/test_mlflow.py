"""tracker-diag against real MLflow: sqlite stores in tmp_path and a real `mlflow server`."""

import json
import math
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
from helpers import run_cli

mlflow = pytest.importorskip("mlflow")
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow_helpers import curves, log_run

from tracker_diag.batch import label
from tracker_diag.connectors.mlflow import MlflowBackend, _note_limit
from tracker_diag.model import Thresholds

EXP = "diag-test"




@pytest.fixture
def store(new_store):
    uri = new_store()
    client = MlflowClient(uri)
    return uri, client, client.create_experiment(EXP)


def snapshot(client, exp_id):
    runs = client.search_runs([exp_id], max_results=1000)
    return {r.info.run_id: (dict(r.data.tags), dict(r.data.params)) for r in runs}


def test_round_trip_tags_description_and_ui_filter(store, capsys):
    uri, client, exp = store
    kinds = ["learning", "overfitting", "plateau", "diverging", "overfitting"]
    ids = {log_run(client, exp, k, name=f"{k}-{i}", tags={"team": "vision"},
                   description="My notes.\nDo not touch." if i == 1 else None): k for i, k in enumerate(kinds)}
    code, out, _ = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", EXP, "--write", "--json",
                            str(os.path.join(os.path.dirname(uri[10:]), "r.json"))], capsys)
    assert code == 0, out
    for rid, kind in ids.items():
        run = client.get_run(rid)
        tags = run.data.tags
        assert tags["diag_regime"] == kind
        assert tags["diag_version"] and tags["diag_checked"]
        assert tags["team"] == "vision"
        note = tags["mlflow.note.content"]
        assert "<!-- tracker-diag -->" in note and f"tracker-diag: {kind}" in note
    # the user's own description is kept byte for byte, our section after it
    noted = next(r for r, k in ids.items() if client.get_run(r).data.tags["mlflow.note.content"].startswith("My"))
    assert client.get_run(noted).data.tags["mlflow.note.content"].startswith("My notes.\nDo not touch.\n\n<!--")
    # the UI filter users paste returns exactly the overfitting runs
    found = client.search_runs([exp], "tags.diag_regime = 'overfitting'")
    assert {r.info.run_id for r in found} == {r for r, k in ids.items() if k == "overfitting"}
    assert "filter with:  tags.diag_regime = 'diverging'" in out  # the most severe regime found
    # ... and with the confidence, the filter the README shows
    sure = client.search_runs([exp], "tags.diag_regime = 'overfitting' and tags.diag_confidence = 'high'")
    with open(os.path.join(os.path.dirname(uri[10:]), "r.json")) as fh:
        report = json.load(fh)
    expect = {r["run_id"] for r in report["runs"] if r["regime"] == "overfitting" and r["confidence"] == "high"}
    assert {r.info.run_id for r in sure} == expect
    assert all(client.get_run(r).data.tags["diag_confidence"] in ("high", "medium", "low") for r in ids)


def test_new_thresholds_relabel_instead_of_reporting_every_run_unchanged(store):
    uri, client, exp = store
    rid = log_run(client, exp, "overfitting")
    label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    checked = client.get_run(rid).data.tags["diag_checked"]
    same = label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    assert same.skipped == 1
    looser = label(MlflowBackend.open(uri, experiments=[EXP]), write=True, thresholds=Thresholds(acc_gap=0.3))
    assert looser.skipped == 0 and looser.results[0].action == "written"
    assert client.get_run(rid).data.tags["diag_checked"] != checked
    again = label(MlflowBackend.open(uri, experiments=[EXP]), write=True, thresholds=Thresholds(acc_gap=0.3))
    assert again.skipped == 1


def test_second_write_writes_nothing_and_skips_without_reading(store, capsys):
    uri, client, exp = store
    for k in ("learning", "overfitting"):
        log_run(client, exp, k)
    backend = MlflowBackend.open(uri, experiments=[EXP])
    first = label(backend, write=True)
    assert {r.action for r in first.results} == {"written"}
    before = snapshot(client, exp)
    second = label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    assert {r.action for r in second.results} == {"unchanged"} and second.skipped == 2
    assert snapshot(client, exp) == before

    def figures(batch):  # a skipped run keeps what its tags hold (3 decimals there)
        return {r.ref.run_id: (r.diagnosis.regime, r.diagnosis.confidence, None if r.diagnosis.acc_gap is None
                               else round(r.diagnosis.acc_gap, 3), r.diagnosis.best_step) for r in batch.results}
    assert figures(second) == figures(first) and all(f[3] is not None for f in figures(second).values())
    forced = label(MlflowBackend.open(uri, experiments=[EXP]), write=True, force=True)
    assert {r.action for r in forced.results} == {"unchanged"} and forced.skipped == 0
    assert snapshot(client, exp) == before


def test_new_data_makes_a_run_relabelled(store):
    uri, client, exp = store
    rid = log_run(client, exp, "learning")
    label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    client.log_batch(rid, metrics=[Metric("val_loss", 5.0 + i, 10_000 + i, 100 + i) for i in range(30)])
    again = label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    assert again.skipped == 0 and again.results[0].action == "written"


def test_user_data_identical_and_other_experiments_untouched(store):
    uri, client, exp = store
    other = client.create_experiment("other")
    for k in ("learning", "overfitting", "diverging"):
        log_run(client, exp, k, tags={"owner": "me", "diag_custom_user_tag": "x"})
    log_run(client, other, "overfitting", tags={"owner": "you"})
    user_before = {rid: ({k: v for k, v in t.items() if not k.startswith("diag_regime")}, p)
                   for rid, (t, p) in snapshot(client, exp).items()}
    other_before = snapshot(client, other)
    label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    after = snapshot(client, exp)
    for rid, (tags, params) in user_before.items():
        new_tags, new_params = after[rid]
        assert new_params == params
        for k, v in tags.items():
            assert new_tags[k] == v  # every user tag as it was
        assert set(new_tags) - set(tags) <= {"diag_regime", "diag_acc_gap", "diag_best_step", "diag_flags",
                                             "diag_confidence", "diag_version", "diag_checked",
                                             "mlflow.note.content"}
    assert snapshot(client, other) == other_before


def test_long_user_description_is_never_pushed_past_the_limit(store):
    uri, client, exp = store
    long_text = "x" * (_note_limit() - 100)
    rid = log_run(client, exp, "overfitting", description=long_text)
    label(MlflowBackend.open(uri, experiments=[EXP]), write=True)
    note = client.get_run(rid).data.tags["mlflow.note.content"]
    limit = _note_limit()  # MLflow 3: 8000, MLflow 2: 5000
    assert note.startswith(long_text) and len(note) <= limit
    assert client.get_run(rid).data.tags["diag_regime"] == "overfitting"


def test_nan_inf_no_metrics_deleted_and_running_runs(store):
    uri, client, exp = store
    nan_run = log_run(client, exp, "diverging")
    inf_run = client.create_run(exp, run_name="inf").info.run_id
    client.log_batch(inf_run, metrics=[Metric("loss", math.inf if i > 20 else 2 - i / 20, 1000 + i, i)
                                       for i in range(30)] +
                     [Metric("val_loss", 2 - i / 25, 1000 + i, i) for i in range(30)])
    client.set_terminated(inf_run, "FINISHED")
    empty = client.create_run(exp, run_name="empty").info.run_id
    client.set_terminated(empty, "FINISHED")
    deleted = log_run(client, exp, "learning")
    client.delete_run(deleted)
    running = log_run(client, exp, "learning", finish=False)
    blew_up = log_run(client, exp, "diverging", finish=False)
    client.set_terminated(blew_up, "FAILED")  # what `with mlflow.start_run()` does when training raises
    res = {r.ref.run_id: r for r in label(MlflowBackend.open(uri, experiments=[EXP]), write=True).results}
    assert res[blew_up].diagnosis.regime == "diverging" and client.get_run(blew_up).data.tags["diag_regime"] == "diverging"
    assert res[nan_run].diagnosis.regime == "diverging" and "nonfinite" in res[nan_run].diagnosis.flags
    assert res[inf_run].diagnosis.regime == "diverging"
    assert res[empty].diagnosis.regime == "insufficient_data"
    assert deleted not in res and running not in res
    assert "diag_regime" not in client.get_run(deleted).data.tags
    res = {r.ref.run_id: r for r in label(MlflowBackend.open(uri, experiments=[EXP], include_running=True),
                                          write=True).results}
    assert "provisional" in res[running].diagnosis.flags
    assert "provisional" in client.get_run(running).data.tags["diag_flags"]
    client.set_terminated(running, "FINISHED")  # finished without new metrics: relabelled, no longer provisional
    res = {r.ref.run_id: r for r in label(MlflowBackend.open(uri, experiments=[EXP]), write=True).results}
    assert not res[running].skipped and res[running].action == "written"
    assert "provisional" not in client.get_run(running).data.tags["diag_flags"]


def test_write_to_a_run_deleted_mid_batch_fails_alone(store):
    uri, client, exp = store
    ids = [log_run(client, exp, "learning") for _ in range(3)]
    backend = MlflowBackend.open(uri, experiments=[EXP])
    refs = list(backend.list_runs())
    client.delete_run(ids[1])  # deleted after listing, before writing

    class Listed(MlflowBackend):
        def list_runs(self):
            return refs

    listed = Listed.open(uri, experiments=[EXP])
    res = {r.ref.run_id: r for r in label(listed, write=True).results}
    assert res[ids[1]].action == "failed" and "deleted" in res[ids[1]].error
    assert res[ids[0]].action == res[ids[2]].action == "written"


def test_every_run_is_listed_across_pages(new_store, monkeypatch):
    """Paging on both listing paths (keyset SQL and the client's page tokens) and the batch's
    own pages, with pages of 7 runs instead of MLflow's 1,000 (same code, 30 runs)."""
    import tracker_diag.connectors.mlflow as connector
    import tracker_diag.connectors.mlflow_sql as sql_path

    monkeypatch.setattr(connector, "PAGE", 7)
    monkeypatch.setattr(sql_path, "PAGE", 7)
    uri = new_store("big.db")
    client = MlflowClient(uri)
    exp = client.create_experiment(EXP)
    for i in range(30):
        run = client.create_run(exp, run_name=f"r{i}")
        client.log_batch(run.info.run_id, metrics=[Metric("loss", 1.0, 1, 0)])
        client.set_terminated(run.info.run_id, "FINISHED")
    sql = list(MlflowBackend.open(uri, experiments=[EXP]).list_runs())
    paged = list(MlflowBackend.open(uri, experiments=[EXP], filter_string="attributes.status = 'FINISHED'").list_runs())
    assert len(sql) == len(paged) == 30 == len({r.run_id for r in paged}) == len({r.run_id for r in sql})
    res = label(MlflowBackend.open(uri, experiments=[EXP], filter_string="attributes.status = 'FINISHED'"), page_size=4)
    assert len(res.results) == 30 and not res.failed and len({r.ref.run_id for r in res.results}) == 30


def test_filter_is_passed_through(store):
    uri, client, exp = store
    keep = log_run(client, exp, "learning", tags={"team": "vision"})
    log_run(client, exp, "learning", tags={"team": "nlp"})
    res = label(MlflowBackend.open(uri, experiments=[EXP], filter_string="tags.team = 'vision'"), write=True)
    assert [r.ref.run_id for r in res.results] == [keep]


def test_sql_and_client_reads_agree(store):
    uri, client, exp = store
    for k in ("learning", "overfitting", "diverging"):
        log_run(client, exp, k)
    from tracker_diag.connectors.mlflow_sql import SqlReader

    sql = MlflowBackend.open(uri, experiments=[EXP])
    assert isinstance(sql.reader, SqlReader)
    plain = MlflowBackend(uri, sql.experiment_ids)  # no SQL reader: the client path, as for an unknown schema
    assert type(plain.reader).__name__ == "_ClientReader"
    refs = list(plain.list_runs())
    keys = {r.run_id: list(r.metric_keys) for r in refs}
    a = {ref.run_id: h for ref, h in sql.fetch(refs, keys)}
    b = {ref.run_id: h for ref, h in plain.fetch(refs, keys)}
    for ref in refs:
        ha, hb = a[ref.run_id], b[ref.run_id]
        assert ha.keys() == hb.keys()
        for k in ha:
            np.testing.assert_array_equal(ha[k][0], hb[k][0])
            np.testing.assert_array_equal(np.isnan(ha[k][1]), np.isnan(hb[k][1]))


def test_unknown_experiment_and_unreachable_server_exit_2(store, capsys):
    uri, _, _ = store
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", "nope"], capsys)
    assert code == 2 and "no experiment named" in err and EXP in err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", f"http://127.0.0.1:{port}", "-e", "x"], capsys)
    assert code == 2 and "error:" in err


def test_password_in_uri_is_never_printed(capsys):
    code, out, err = run_cli(["label", "mlflow", "--tracking-uri",
                              "postgresql://bob:s3cret@127.0.0.1:1/db", "-e", "x"], capsys)
    assert code == 2 and "s3cret" not in out + err
    # with a driver installed (the dev extra has PostgreSQL's): one line saying where it looked
    assert "cannot reach the MLflow database postgresql://***@127.0.0.1:1/db" in err or "not installed" in err


def test_demo_covers_every_regime(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # the embedded default: ./mlflow.db
    code, out, _ = run_cli(["demo", "--runs", "16"], capsys)
    assert code == 0
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")  # the store the demo made
    exp = client.get_experiment_by_name("tracker-diag-demo")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    assert len(runs) == 16 and all("diag_regime" in r.data.tags for r in runs)
    assert {r.data.tags["diag_regime"] for r in runs} >= {"learning", "overfitting", "plateau", "diverging",
                                                          "data_issue", "insufficient_data"}
    assert "mlflow ui --backend-store-uri" in out


# --- a real mlflow server on 127.0.0.1 ------------------------------------------------------------

@pytest.mark.server
def test_label_through_a_real_server_with_the_bulk_endpoint(server, capsys):
    client = MlflowClient(server)
    exp = client.create_experiment("srv")
    kinds = ["learning", "overfitting", "plateau", "diverging"] * 3
    ids = {log_run(client, exp, k, name=f"{k}-{i}", tags={"keep": "me"}): k for i, k in enumerate(kinds)}
    backend = MlflowBackend.open(server, experiments=["srv"])
    assert type(backend.reader).__name__ == "_BulkReader"
    capsys.readouterr()  # mlflow prints "View run ..." when the test's runs end
    code, out, _ = run_cli(["label", "mlflow", "--tracking-uri", server, "-e", "srv", "--write", "--json", "-"],
                           capsys)
    rep = json.loads(out)
    assert code == 0 and rep["summary"]["runs"] == len(kinds)
    for r in rep["runs"]:
        assert r["regime"] == ids[r["run_id"]] and r["action"] == "written"
        assert r["url"].startswith(server)
    for rid, kind in ids.items():
        tags = client.get_run(rid).data.tags
        assert tags["diag_regime"] == kind and tags["keep"] == "me"
    again = label(MlflowBackend.open(server, experiments=["srv"]), write=True)
    assert again.skipped == len(kinds)


@pytest.mark.server
def test_bulk_reads_split_a_page_the_server_would_cut(server, monkeypatch):
    import tracker_diag.connectors.mlflow as conn

    client = MlflowClient(server)
    exp = client.create_experiment("cut")
    ids = [log_run(client, exp, "learning") for _ in range(6)]
    monkeypatch.setattr(conn, "BULK_ROWS", 50)  # 6 runs x 40 points would be cut at 50 rows
    backend = MlflowBackend.open(server, experiments=["cut"])
    refs = list(backend.list_runs())
    hist = {ref.run_id: h for ref, h in backend.fetch(refs, {r.run_id: ["loss", "val_loss"] for r in refs})}
    assert len(hist) == 6 and all(len(h["loss"][0]) == 40 and len(h["val_loss"][0]) == 40 for h in hist.values())
    assert {r.run_id for r in refs} == set(ids)


def test_schema_head_read_from_files_matches_mlflows_own():
    from mlflow.store.db.utils import _get_latest_schema_revision

    from tracker_diag.connectors.mlflow_sql import schema_head

    assert schema_head() == _get_latest_schema_revision()


def test_dry_run_on_sqlite_never_imports_the_mlflow_client(store, tmp_path):
    uri, client, exp = store
    log_run(client, exp, "learning")
    code = (f"import sys\nfrom tracker_diag.batch import label\nfrom tracker_diag.connectors.mlflow import MlflowBackend, _note_limit\n"
            f"r = label(MlflowBackend.open({uri!r}, experiments=[{EXP!r}]))\n"
            "assert r.results[0].diagnosis.regime == 'learning'\n"
            "print('mlflow.tracking' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("filtered", [False, True])  # SQL listing and search_runs listing
def test_hyperparameters_reach_the_report(store, capsys, tmp_path, filtered):
    uri, client, exp = store
    for i in range(4):
        rid = log_run(client, exp, "diverging")
        client.log_param(rid, "lr", "3.0")
        rid = log_run(client, exp, "learning")
        client.log_param(rid, "lr", "0.001")
    argv = ["label", "mlflow", "--tracking-uri", uri, "-e", EXP, "--json", str(tmp_path / "r.json")]
    if filtered:
        argv += ["--filter", "attributes.status = 'FINISHED'"]
    code, out, _ = run_cli(argv, capsys)
    hp = json.loads((tmp_path / "r.json").read_text())["hyperparameters"]
    assert code == 0 and "lr = 3: 4 of 4 runs diverging" in out
    assert {f["text"] for f in hp["findings"]} >= {"lr = 3: 4 of 4 runs diverging", "lr = 0.001: 4 of 4 runs learning"}


def test_attach_plots_uploads_only_when_the_diagnosis_changed(new_store, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # the sqlite store's artifacts go to ./mlruns
    uri = new_store("a.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("plots")
    ids = [log_run(client, exp, k) for k in ("learning", "overfitting")]
    argv = ["label", "mlflow", "--tracking-uri", uri, "-e", "plots", "--write", "--attach-plots", "-q"]
    assert run_cli(argv, capsys)[0] == 0
    for rid in ids:
        arts = [a.path for a in client.list_artifacts(rid, "tracker_diag")]
        assert arts == ["tracker_diag/diagnosis.png"]
        (tmp_path / rid).mkdir(exist_ok=True)  # MLflow 2 wants the destination to exist
        local = client.download_artifacts(rid, "tracker_diag/diagnosis.png", str(tmp_path / rid))
        with open(local, "rb") as fh:
            data = fh.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000
    # unchanged runs: no upload (the stored PNG is byte-identical and no second file appears)
    assert run_cli(argv, capsys)[0] == 0
    for rid in ids:
        assert [a.path for a in client.list_artifacts(rid, "tracker_diag")] == ["tracker_diag/diagnosis.png"]
    # new data changes the diagnosis of one run: only that plot is uploaded again
    client.log_batch(ids[0], metrics=[Metric("val_loss", 3.0 + i, 10_000 + i, 100 + i) for i in range(30)])
    before = {rid: os.stat(next((tmp_path / "mlruns").rglob(f"{rid}/artifacts/tracker_diag/diagnosis.png"))).st_mtime_ns
              for rid in ids}
    assert run_cli(argv, capsys)[0] == 0
    after = {rid: os.stat(next((tmp_path / "mlruns").rglob(f"{rid}/artifacts/tracker_diag/diagnosis.png"))).st_mtime_ns
             for rid in ids}
    assert after[ids[0]] != before[ids[0]] and after[ids[1]] == before[ids[1]]


def test_the_numeric_sqlite_read_equals_the_general_one_with_ties_nan_and_numpy_ints(store):
    """Points of one step logged out of time order come back in (step, timestamp) order, NaN as
    NaN, and a run whose steps were logged as numpy ints (8-byte blobs) still reads."""
    import sqlite3

    from mlflow.entities import Metric

    from tracker_diag.connectors import mlflow_sql as m

    uri, client, exp = store
    rid = log_run(client, exp, "learning")
    client.log_batch(rid, metrics=[Metric("loss", 7.0, 5000, 3), Metric("loss", 6.0, 4000, 3),
                                   Metric("val_loss", float("nan"), 5000, 41)])
    blob = log_run(client, exp, "overfitting")
    with sqlite3.connect(uri.removeprefix("sqlite:///")) as con:  # as sqlite stores a numpy int64 step
        con.execute("UPDATE metrics SET step = ? WHERE run_uuid = ? AND step = 3", (np.int64(3).tobytes(), blob))
    backend = MlflowBackend.open(uri, experiments=[EXP])
    refs = list(backend.list_runs())
    wanted = {r.run_id: set(r.metric_keys) for r in refs}
    raw = backend.reader.engine.raw_connection()
    try:
        cur = raw.cursor()
        where = f"WHERE run_uuid IN ({', '.join('?' * len(refs))}) AND +key IN ({', '.join('?' * 4)}) "
        params = (*wanted, "loss", "val_loss", "train_loss", "test_loss")
        fast: dict = m.defaultdict(dict)
        assert not m.collect_numeric(fast, cur, where, params, wanted)  # the blob: the general way
        cur.execute(f"DELETE FROM metrics WHERE run_uuid = '{blob}'")
        raw.commit()
        assert m.collect_numeric(fast, cur, where, params, wanted)
        cur.execute(f"SELECT run_uuid, key, step, value, is_nan FROM metrics {where}ORDER BY run_uuid, key, step, "
                    "timestamp", params)
        general: dict = m.defaultdict(dict)
        m.collect(general, cur.fetchall(), wanted)
    finally:
        raw.close()
    assert fast.keys() == general.keys() and fast[rid].keys() == general[rid].keys() == {"loss", "val_loss"}
    for k in fast[rid]:
        np.testing.assert_array_equal(fast[rid][k][0], general[rid][k][0])
        np.testing.assert_array_equal(fast[rid][k][1], general[rid][k][1])  # NaN in the same places
    steps, values = fast[rid]["loss"]
    at = np.flatnonzero(steps == 3)
    assert list(values[at]) == [float(curves("learning")["loss"][3]), 6.0, 7.0]  # by timestamp: 1003, 4000, 5000
    assert np.isnan(fast[rid]["val_loss"][1][-1])  # the NaN logged last, at step 41
