"""The SQL write path on a database URI: what lands equals, field by field, what MLflow's
client writes for the same batch, and a user's edit is never written over (compare-and-set)."""

import shutil
import sqlite3
import threading

import pytest
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow_helpers import log_run

from tracker_diag.batch import label
from tracker_diag.connectors.mlflow import MlflowBackend
from tracker_diag.connectors.mlflow_sql import SqlReader

KINDS = ["learning", "overfitting", "plateau", "diverging"]


def _tables(path) -> dict:
    """Every tag, metric and latest metric of the store, timestamps of tracker-diag's own
    metric aside (the two paths write at different moments)."""
    with sqlite3.connect(path) as con:
        tags = sorted(con.execute("SELECT run_uuid, key, value FROM tags"))
        metrics = sorted(con.execute("SELECT run_uuid, key, value, CASE WHEN key = 'diag_acc_gap' THEN 0 ELSE "
                                     "timestamp END, step, is_nan FROM metrics"))
        latest = sorted(con.execute("SELECT run_uuid, key, value, CASE WHEN key = 'diag_acc_gap' THEN 0 ELSE "
                                    "timestamp END, step, is_nan FROM latest_metrics"))
        runs = sorted(con.execute("SELECT run_uuid, status, lifecycle_stage FROM runs"))
    return {"tags": tags, "metrics": metrics, "latest": latest, "runs": runs}


@pytest.fixture
def seeded(new_store, tmp_path):
    """A store with user descriptions (one with a lone marker), stale labels to remove, a gap
    metric that becomes unknown, a running run and a run deleted after the listing."""
    uri = new_store("seed.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("eq")
    ids = []
    for i in range(16):
        rid = log_run(client, exp, KINDS[i % 4], name=f"r{i}",
                      description=None if i % 3 else f"notes {i}\n<!-- tracker-diag --> a lone marker of mine",
                      tags={"team": "a"} if i % 5 == 0 else None)
        ids.append(rid)
    # stale labels of an older pass: a gap tag and metric the new diagnosis no longer has
    client.set_tag(ids[2], "diag_acc_gap", "0.500")
    client.set_tag(ids[2], "diag_best_step", "7")
    client.log_batch(ids[2], metrics=[Metric("diag_acc_gap", 0.5, 5, 0)])
    ids.append(log_run(client, exp, "learning", name="running", finish=False))
    return tmp_path / "seed.db", ids


def test_the_sql_path_writes_what_the_client_writes_field_by_field(seeded, tmp_path):
    seed, ids = seeded
    out = {}
    for path in ("sql", "client"):
        db = tmp_path / f"{path}.db"
        shutil.copyfile(seed, db)
        uri = f"sqlite:///{db}"
        opened = MlflowBackend.open(uri, experiments=["eq"], include_running=True)
        assert isinstance(opened.reader, SqlReader)
        backend = opened if path == "sql" else MlflowBackend(uri, opened.experiment_ids, statuses=opened.statuses)
        refs = list(backend.list_runs())
        MlflowClient(uri).delete_run(ids[5])  # deleted after the listing: never touched

        class Listed(type(backend)):
            def list_runs(self, refs=refs):
                return refs

        backend.__class__ = Listed
        batch = label(backend, write=True)
        res = {r.ref.run_id: r for r in batch.results}
        assert res[ids[5]].action == "failed", res[ids[5]]
        assert {r.action for rid, r in res.items() if rid != ids[5]} == {"written"}, \
            [(r.ref.run_name, r.action, r.error) for r in batch.results]
        out[path] = _tables(db)
    assert out["sql"] == out["client"]
    tags = {(r, k): v for r, k, v in out["sql"]["tags"]}
    assert (ids[2], "diag_acc_gap") not in tags and tags[(ids[2], "diag_best_step")] != "7"  # stale labels gone
    assert [(v, n) for r, k, v, _, _, n in out["sql"]["latest"] if r == ids[2] and k == "diag_acc_gap"] == [(0, 1)]
    assert tags[(ids[0], "mlflow.note.content")].startswith("notes 0\n<!-- tracker-diag --> a lone marker of mine")
    assert not any(r == ids[5] and k.startswith("diag_") for r, k in tags)  # the deleted run is untouched


def test_an_unchanged_second_pass_writes_nothing_and_an_edit_in_flight_is_kept(seeded, tmp_path):
    seed, ids = seeded
    uri = f"sqlite:///{seed}"
    first = label(MlflowBackend.open(uri, experiments=["eq"]), write=True)
    assert first.failed == 0
    before = _tables(seed)
    again = label(MlflowBackend.open(uri, experiments=["eq"]), write=True, force=True)
    assert {r.action for r in again.results} == {"unchanged"} and _tables(seed) == before

    # a user's edit in flight (their transaction holds sqlite's write lock) while a pass rewrites
    # the run's section: the pass reads after the edit commits, and keeps it. (Through the
    # client, the state is read before the edit commits and the write lands after it: lost.)
    rid = ids[0]
    with sqlite3.connect(seed) as con:  # our section made stale, so that the pass rewrites the description
        note = con.execute("SELECT value FROM tags WHERE run_uuid = ? AND key = 'mlflow.note.content'",
                           (rid,)).fetchone()[0]
        start = note.index("<!-- tracker-diag -->\n")
        assert "over the last" in note[start:]
        con.execute("UPDATE tags SET value = ? WHERE run_uuid = ? AND key = 'mlflow.note.content'",
                    (note[:start] + note[start:].replace("over the last", "over the LAST"), rid))
    user = sqlite3.connect(seed, isolation_level=None, timeout=30)
    user.execute("BEGIN IMMEDIATE")
    user.execute("UPDATE tags SET value = 'my edit. ' || value WHERE run_uuid = ? AND key = 'mlflow.note.content'",
                 (rid,))
    done = {}
    writer = threading.Thread(target=lambda: done.setdefault(
        "batch", label(MlflowBackend.open(uri, experiments=["eq"]), write=True, force=True)))
    writer.start()
    writer.join(2)  # the pass is waiting for the lock
    user.execute("COMMIT")
    user.close()
    writer.join(60)
    assert done["batch"].failed == 0, [r.error for r in done["batch"].results if r.error]
    after = MlflowClient(uri).get_run(rid).data.tags["mlflow.note.content"]
    assert after.startswith("my edit. notes 0") and "LAST" not in after  # the edit kept, our section rewritten
