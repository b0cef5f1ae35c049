"""Faults, concurrency and hostile input (issue 11), against real MLflow: sqlite stores, and a
real `mlflow server` behind the loopback fault proxy of tests/fault_proxy.py.

scripts/fault_harness.py runs the long version (hundreds of runs, every mode, a table)."""

import json
import math
import time

import numpy as np
import pytest
from fault_proxy import FaultProxy
from helpers import run_cli

pytest.importorskip("mlflow")
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow_helpers import log_run

from tracker_diag.batch import label
from tracker_diag.connectors.mlflow import MlflowBackend
from tracker_diag.locks import exclusive, path_for
from tracker_diag.writeback import BEGIN, END

NOTE = "mlflow.note.content"


def log_gap_run(client, exp, gap: float, n: int = 30, name: str = "gap"):
    """A learning run with train/test accuracy curves `gap` apart at the end (so it has a gap metric)."""
    run = client.create_run(exp, run_name=name, tags={"owner": "me"})
    x = np.arange(n, dtype=float)
    curves = {"train_loss": 2 * np.exp(-x / 20) + 0.1, "val_loss": 2 * np.exp(-x / 22) + 0.2,
              "train_acc": 0.9 - 0.5 * np.exp(-x / 20), "val_acc": 0.9 - gap - 0.5 * np.exp(-x / 22)}
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), 1000 + i, i) for k, vs in curves.items()
                                               for i, v in enumerate(vs)])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def snapshot(client, exp):
    """Everything on the runs that is not tracker-diag's: tags, params, metric histories."""
    out = {}
    for r in client.search_runs([exp], max_results=1000):
        tags = {k: v for k, v in r.data.tags.items() if not k.startswith("diag_") and k != NOTE}
        out[r.info.run_id] = (tags, dict(r.data.params))
    return out


@pytest.fixture
def sqlite_exp(new_store):
    uri = new_store()
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("faults")


@pytest.fixture
def proxied(server, monkeypatch):
    """A fresh experiment on the session's server, reached through a fault proxy. MLflow's
    backoff is off (factor 0) to keep the suite quick; scripts/fault_harness.py keeps
    tracker-diag's defaults and measures the times they give."""
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
    port = int(server.rsplit(":", 1)[1])
    with FaultProxy("127.0.0.1", port, seed=7) as proxy:
        client = MlflowClient(server)
        name = f"faults-{time.monotonic_ns()}"
        yield proxy, client, client.create_experiment(name), name


# -- 3. user text around marker look-alikes, on a real store ---------------------------------------

def test_a_lone_opening_marker_in_a_description_keeps_the_text_after_it(sqlite_exp):
    uri, client, exp = sqlite_exp
    user = f"{BEGIN} my heading\nwhat I wrote after it"
    rid = log_run(client, exp, "learning", description=user)
    for force in (False, True):  # v1 replaced from the user's marker to ours on the second write
        label(MlflowBackend.open(uri, experiments=["faults"]), write=True, force=force)
        note = client.get_run(rid).data.tags[NOTE]
        assert note.startswith(user + "\n\n" + BEGIN) and note.count(END) == 1


# -- 4. a user's edit made while the batch runs is kept ---------------------------------------------

class EditsAfterListing:
    """The backend, with a user editing every description between the listing and the writes."""

    def __init__(self, backend, client):
        self.inner, self.client = backend, client
        self.source = backend.source

    def list_runs(self):
        refs = list(self.inner.list_runs())
        for ref in refs:
            self.client.set_tag(ref.run_id, NOTE, f"edited while labelling {ref.run_id}")
        yield from refs

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_an_edit_made_after_the_listing_is_not_overwritten(sqlite_exp):
    uri, client, exp = sqlite_exp
    ids = [log_run(client, exp, k, description="old text") for k in ("learning", "overfitting", "plateau")]
    batch = label(EditsAfterListing(MlflowBackend.open(uri, experiments=["faults"]), client), write=True)
    assert [r.action for r in batch.results] == ["written"] * 3
    for rid in ids:
        note = client.get_run(rid).data.tags[NOTE]
        assert note.startswith(f"edited while labelling {rid}\n\n{BEGIN}"), note[:80]


# -- 9. two writers -----------------------------------------------------------------------------------

def test_a_second_writer_on_the_same_store_is_refused_while_the_first_holds_the_lock(sqlite_exp, capsys):
    uri, client, exp = sqlite_exp
    rid = log_run(client, exp, "learning")
    where = MlflowBackend.open(uri, experiments=["faults"]).describe()
    with exclusive(path_for(f"mlflow:{where}"), "test"):
        code, _, err = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", "faults", "--write"], capsys)
    assert code == 2 and "another tracker-diag --write is labelling" in err
    assert "diag_regime" not in client.get_run(rid).data.tags
    assert run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", "faults"], capsys)[0] == 0  # a dry run needs none


class WriterInBetween:
    """Lists first, then another tracker-diag labels the store, then this batch goes on."""

    def __init__(self, backend, other):
        self.inner, self.other, self.source = backend, other, backend.source

    def list_runs(self):
        refs = list(self.inner.list_runs())
        label(self.other, write=True)
        yield from refs

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_writer_with_a_stale_listing_writes_nothing_another_writer_already_wrote(sqlite_exp):
    uri, client, exp = sqlite_exp
    ids = [log_gap_run(client, exp, 0.3, name=f"g{i}") for i in range(3)]
    batch = label(WriterInBetween(MlflowBackend.open(uri, experiments=["faults"]),
                                  MlflowBackend.open(uri, experiments=["faults"])), write=True)
    assert [r.action for r in batch.results] == ["unchanged"] * 3
    for rid in ids:  # one gap point per run, not one per writer
        assert len(client.get_metric_history(rid, "diag_acc_gap")) == 1


# -- 12. the gap metric says "unknown" when the gap is ---------------------------------------------

def test_a_gap_that_became_unknown_no_longer_matches_the_metric_filter(sqlite_exp):
    uri, client, exp = sqlite_exp
    rid = log_run(client, exp, "learning")  # no accuracy curves: the gap is unknown
    client.set_tag(rid, "diag_acc_gap", "0.300")  # as an earlier label with accuracy curves left it
    client.log_metric(rid, "diag_acc_gap", 0.3, step=0)
    assert client.search_runs([exp], "metrics.diag_acc_gap > 0.2")
    label(MlflowBackend.open(uri, experiments=["faults"]), write=True)
    run = client.get_run(rid)
    assert "diag_acc_gap" not in run.data.tags and math.isnan(run.data.metrics["diag_acc_gap"])
    assert not client.search_runs([exp], "metrics.diag_acc_gap > 0.2")


# -- 1, 2. run names and keys that are markup or terminal control sequences ---------------------------

HOSTILE = ["bad[/]name", "[link=https://evil.example]click[/link]", "\x1b[2Jcleared", "\x1b]0;title\x07x",
           "\x1b]8;;https://evil.example\x07link\x1b]8;;\x07", "cr\rover", "bidi\u202eevil"]


def test_markup_and_control_sequences_in_names_and_keys_print_inert(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no name is cut in the middle
    x = np.arange(20, dtype=float)
    rows = ["run_id,key,step,value"]
    for i, name in enumerate(HOSTILE):
        key = "\x1b[31mloss" if i == 0 else "loss"
        rows += [f'"{name}",{key},{s},{2 * math.exp(-s / 9)}' for s in x] + \
                [f'"{name}",val_loss,{s},{2 * math.exp(-s / 10) + 0.1}' for s in x]
    path = tmp_path / "hostile.csv"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    code, out, err = run_cli(["diagnose", str(path)], capsys)
    assert code == 0, err
    for text in (out, err):
        assert not any(c in text for c in ("\x1b", "\x07", "\r", "\u202e"))
    assert "bad[/]name" in out and "[link=https://evil.example]click[/link]" in out  # printed, not interpreted
    assert "\\x1b[2Jcleared" in out


# -- 8. blank run ids and keys ----------------------------------------------------------------------

def test_rows_with_blank_run_ids_or_keys_are_skipped_with_a_warning(tmp_path, capsys):
    path = tmp_path / "blank.csv"
    path.write_text("run_id,key,step,value\nr1,loss,0,1\nr1,loss,1,0.5\n,loss,0,1\nr2,,0,1\n r3 ,val_loss,0,1\n")
    code, out, err = run_cli(["diagnose", str(path), "--json", "-"], capsys)
    assert code == 0 and "2 row(s) with an empty run id or key skipped" in err
    assert sorted(r["run_id"] for r in json.loads(out)["runs"]) == [" r3 ", "r1"]
    path.write_text("run_id,key,step,value\n,loss,0,1\n")
    code, _, err = run_cli(["diagnose", str(path)], capsys)
    assert code == 2 and "empty run id or key" in err
    assert run_cli(["diagnose", ""], capsys)[0] == 2


# -- 13. non-finite and absurd losses ---------------------------------------------------------------

def test_losses_inf_throughout_or_rising_from_1e300_are_diverging(tmp_path, capsys):
    rows = ["run_id,key,step,value"]
    for s in range(20):
        rows += [f"inf,loss,{s},inf", f"inf,val_loss,{s},inf",
                 f"huge,loss,{s},{1e300 * (1 + s / 10)!r}", f"huge,val_loss,{s},{1e300 * (1 + s / 5)!r}"]
    path = tmp_path / "absurd.csv"
    path.write_text("\n".join(rows) + "\n")
    code, out, _ = run_cli(["diagnose", str(path), "--json", "-"], capsys)
    assert code == 0 and {r["run_id"]: r["regime"] for r in json.loads(out)["runs"]} == {"inf": "diverging",
                                                                                         "huge": "diverging"}


# -- against a real server behind the fault proxy ----------------------------------------------------

@pytest.mark.server
@pytest.mark.parametrize("mode, rate", [("cut", 0.3), ("503", 0.3)])
def test_cut_and_refused_answers_are_retried_without_a_duplicate_write(proxied, mode, rate):
    proxy, client, exp, name = proxied
    ids = [log_gap_run(client, exp, 0.3, name=f"g{i}") for i in range(8)] + \
          [log_run(client, exp, k, description="mine") for k in ("learning", "overfitting", "plateau", "diverging")]
    before = snapshot(client, exp)
    proxy.mode, proxy.rate = mode, rate
    batch = label(MlflowBackend.open(proxy.url, experiments=[name]), write=True)
    proxy.mode = "ok"
    assert proxy.counts.get(mode, 0) >= 3  # the fault did hit
    assert batch.failed == 0 and not batch.stopped, [r.error for r in batch.results if r.error]
    assert snapshot(client, exp) == before  # user data byte-identical
    for rid in ids:
        run = client.get_run(rid)
        assert run.data.tags["diag_checked"] != "pending"
        if "diag_acc_gap" in run.data.tags:
            assert len(client.get_metric_history(rid, "diag_acc_gap")) == 1  # no duplicate write
    assert label(MlflowBackend.open(proxy.url, experiments=[name]), write=True).skipped == len(ids)


@pytest.mark.server
def test_a_429_storm_is_waited_out_and_every_run_is_labelled(proxied, monkeypatch):
    """Every request answered 429 (Retry-After 1) for 8 s, then a third of them: the client's
    own retries give up inside the storm; tracker-diag retries within its time budget
    (TRACKER_DIAG_RETRY_BUDGET), never counts a rate limit as a dead server, and loses no run."""
    import threading

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # what a client's own retries can take
    proxy, client, exp, name = proxied
    ids = [log_run(client, exp, k, name=f"s{i}", description="mine")
           for i, k in enumerate(["learning", "overfitting", "plateau", "diverging"] * 3)]
    before = snapshot(client, exp)
    backend = MlflowBackend.open(proxy.url, experiments=[name])
    proxy.mode, proxy.rate = "429", 1.0
    calm = threading.Timer(8, lambda: setattr(proxy, "rate", 0.3))
    calm.start()
    try:
        batch = label(backend, write=True)
    finally:
        calm.cancel()
        proxy.mode = "ok"
    assert proxy.counts.get("429", 0) >= 10  # the storm did hit
    assert not batch.stopped and batch.failed == 0, (batch.stopped, [r.error for r in batch.results if r.error])
    assert {r.action for r in batch.results} == {"written"} and len(batch.results) == len(ids)
    assert snapshot(client, exp) == before
    assert all(client.get_run(rid).data.tags["diag_checked"] != "pending" for rid in ids)


@pytest.mark.server
def test_a_server_that_dies_mid_batch_stops_it_in_seconds_with_exit_2(proxied, capsys, monkeypatch):
    proxy, client, exp, name = proxied
    for i in range(24):
        log_run(client, exp, "learning", name=f"r{i}")
    seen = []

    def kill_after_six(result):
        seen.append(result)
        if len(seen) == 6:
            proxy.kill()

    t0 = time.monotonic()
    batch = label(MlflowBackend.open(proxy.url, experiments=[name]), write=True, page_size=8, progress=kill_after_six)
    elapsed = time.monotonic() - t0
    written = sum(r.action == "written" for r in batch.results)
    assert batch.stopped and elapsed < 60, (batch.stopped, elapsed)
    assert written >= 6 and written + batch.failed == len(batch.results)
    assert all(r.error.startswith("not attempted") or "failed" in r.error for r in batch.results if r.error)
    # a rerun after the server is back finishes exactly what is missing, nothing twice
    proxy.revive()
    again = label(MlflowBackend.open(proxy.url, experiments=[name]), write=True)
    assert again.failed == 0 and again.skipped == written and len(again.results) == 24
    # and the CLI: a server that is not there at all is exit 2, fast, saying where it looked
    proxy.kill()
    t0 = time.monotonic()
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", proxy.url, "-e", name, "--write"], capsys)
    assert code == 2 and "cannot reach the MLflow server" in err and time.monotonic() - t0 < 30


@pytest.mark.server
def test_the_deadline_stops_a_slow_batch_with_exit_2_and_a_count(proxied, capsys):
    proxy, client, exp, name = proxied
    for i in range(12):
        log_run(client, exp, "learning", name=f"r{i}")
    proxy.mode, proxy.rate, proxy.delay = "slow", 1.0, 0.5
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", proxy.url, "-e", name, "--write", "--deadline", "2",
                            "--workers", "1", "-q"], capsys)
    assert code == 2 and "the --deadline passed" in err and "rerun to finish" in err


@pytest.mark.server
def test_a_failed_delete_leaves_the_run_not_current_and_the_rerun_finishes_it(proxied):
    proxy, client, exp, name = proxied
    rid = log_run(client, exp, "learning")
    client.set_tag(rid, "diag_acc_gap", "0.300")  # stale: this run has no accuracy curves
    proxy.mode, proxy.rate = "fail:delete-tag", 1.0
    batch = label(MlflowBackend.open(proxy.url, experiments=[name]), write=True)
    assert batch.failed == 1
    tags = client.get_run(rid).data.tags
    assert tags["diag_checked"] == "pending" and tags["diag_acc_gap"] == "0.300"  # not current: redone next time
    proxy.mode = "ok"
    again = label(MlflowBackend.open(proxy.url, experiments=[name]), write=True)
    tags = client.get_run(rid).data.tags
    assert again.results[0].action == "written" and "diag_acc_gap" not in tags and tags["diag_checked"] != "pending"


@pytest.mark.server
def test_one_run_with_a_history_longer_than_a_bulk_answer_fails_nobody(proxied, monkeypatch):
    import tracker_diag.connectors.mlflow as conn

    proxy, client, exp, name = proxied
    ids = [log_run(client, exp, "learning", name=f"r{i}") for i in range(4)]
    long = client.create_run(exp, run_name="long")
    x = np.arange(300, dtype=float)
    client.log_batch(long.info.run_id, metrics=[Metric(k, float(v), 1000 + i, i) for k, vs in
                                                 (("loss", np.exp(-x / 200)), ("val_loss", np.exp(-x / 220) + 0.1))
                                                 for i, v in enumerate(vs)])
    client.set_terminated(long.info.run_id, "FINISHED")
    monkeypatch.setattr(conn, "BULK_ROWS", 200)  # the long run alone holds more points of a key than one answer
    batch = label(MlflowBackend.open(proxy.url, experiments=[name]))
    assert batch.failed == 0 and {r.ref.run_id for r in batch.results} == {*ids, long.info.run_id}
    assert {r.diagnosis.regime for r in batch.results if r.ref.run_id == long.info.run_id} == {"learning"}


@pytest.mark.server
def test_a_password_in_the_tracking_uri_is_never_printed_or_written(proxied, tmp_path, capsys):
    proxy, client, exp, name = proxied
    log_run(client, exp, "learning")
    log_run(client, exp, "overfitting")
    uri = proxy.url.replace("http://", "http://alice:s3cret-pw@")
    proxy.mode, proxy.rate = "fail:get-history-bulk", 1.0  # errors quote the request URL
    out_json, html = tmp_path / "r.json", tmp_path / "r.html"
    code, out, err = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", name, "--json", str(out_json),
                              "--report", str(html)], capsys)
    assert code in (1, 2) and "get-history-bulk" in err  # runs failed, or the breaker stopped the batch
    proxy.mode = "ok"
    code2, out2, err2 = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", name, "--json", "-"], capsys)
    assert code2 == 0
    for text in (out, err, out2, err2, out_json.read_text(), html.read_text()):
        assert "s3cret-pw" not in text and "alice" not in text
    assert all(r["url"].startswith(proxy.url) for r in json.loads(out2)["runs"])
