"""The SQL write path on a database URI (sqlite and a real PostgreSQL): what lands equals, field
by field, what MLflow's client writes for the same batch, and a user's edit in flight is never
written over (compare-and-set)."""

import shutil
import sqlite3
import threading

import pytest
import sqlalchemy as sa
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from mlflow_helpers import log_run

from tracker_diag.batch import label
from tracker_diag.connectors.mlflow import MlflowBackend
from tracker_diag.connectors.mlflow_sql import SqlReader

KINDS = ["learning", "overfitting", "plateau", "diverging"]
NOTE = "mlflow.note.content"


class Sqlite:
    def __init__(self, new_store, tmp_path):
        self.new_store, self.tmp = new_store, tmp_path

    def new(self) -> str:
        return self.new_store("seed.db")

    def copy(self, uri: str, name: str) -> str:
        target = self.tmp / f"{name}.db"
        shutil.copyfile(uri.removeprefix("sqlite:///"), target)
        return f"sqlite:///{target}"

    def user(self, uri: str):
        """A user's connection whose statements wait in one transaction until commit()."""
        con = sqlite3.connect(uri.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        con.execute("BEGIN IMMEDIATE")  # sqlite: the user holds the write lock
        return con


class Postgres:
    def __init__(self, make):
        self.make = make

    def new(self) -> str:
        return self.make("seed")

    def copy(self, uri: str, name: str) -> str:
        return self.make(name, template=uri.rsplit("/", 1)[1])

    def user(self, uri: str):
        """The driver's own connection (psycopg or psycopg2, as SQLAlchemy picks): a transaction
        begins with the first statement, and the row it updates stays locked until commit()."""
        return sa.create_engine(uri, poolclass=sa.pool.NullPool).raw_connection()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, new_store, tmp_path):
    if request.param == "sqlite":
        return Sqlite(new_store, tmp_path)
    return Postgres(request.getfixturevalue("postgres"))


def _tables(uri: str) -> dict:
    """Every tag, metric and latest metric of the store, the timestamps of tracker-diag's own
    metric aside (the two paths write at different moments)."""
    engine = sa.create_engine(uri)
    ts = "CASE WHEN key = 'diag_acc_gap' THEN 0 ELSE timestamp END"
    try:
        with engine.connect() as con:
            return {"tags": sorted(map(tuple, con.exec_driver_sql("SELECT run_uuid, key, value FROM tags"))),
                    "metrics": sorted(map(tuple, con.exec_driver_sql(
                        f"SELECT run_uuid, key, value, {ts}, step, is_nan FROM metrics"))),
                    "latest": sorted(map(tuple, con.exec_driver_sql(
                        f"SELECT run_uuid, key, value, {ts}, step, is_nan FROM latest_metrics"))),
                    "runs": sorted(map(tuple, con.exec_driver_sql(
                        "SELECT run_uuid, status, lifecycle_stage FROM runs")))}
    finally:
        engine.dispose()


def _seed(uri: str) -> list[str]:
    """User descriptions (some with a lone marker), a user tag, stale labels to remove (a gap tag
    and metric the new diagnosis no longer has), a running run."""
    client = MlflowClient(uri)
    exp = client.create_experiment("eq")
    ids = [log_run(client, exp, KINDS[i % 4], name=f"r{i}",
                   description=None if i % 3 else f"notes {i}\n<!-- tracker-diag --> a lone marker of mine",
                   tags={"team": "a"} if i % 5 == 0 else None) for i in range(16)]
    client.set_tag(ids[2], "diag_acc_gap", "0.500")
    client.set_tag(ids[2], "diag_best_step", "7")
    client.log_batch(ids[2], metrics=[Metric("diag_acc_gap", 0.5, 5, 0)])
    ids.append(log_run(client, exp, "learning", name="running", finish=False))
    return ids


def test_the_sql_path_writes_what_the_client_writes_field_by_field(db):
    seed = db.new()
    ids = _seed(seed)
    out = {}
    for path in ("sql", "client"):
        uri = db.copy(seed, path)
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
        out[path] = _tables(uri)
    assert out["sql"] == out["client"]
    tags = {(r, k): v for r, k, v in out["sql"]["tags"]}
    assert (ids[2], "diag_acc_gap") not in tags and tags[(ids[2], "diag_best_step")] != "7"  # stale labels gone
    assert [(v, bool(n)) for r, k, v, _, _, n in out["sql"]["latest"] if (r, k) == (ids[2], "diag_acc_gap")] == \
        [(0, True)]  # the gap became unknown: NaN, as MLflow stores it
    assert tags[(ids[0], NOTE)].startswith("notes 0\n<!-- tracker-diag --> a lone marker of mine")
    assert not any(r == ids[5] and k.startswith("diag_") for r, k in tags)  # the deleted run is untouched
    assert "provisional" in tags[(ids[16], "diag_flags")]


def test_an_unchanged_second_pass_writes_nothing_and_an_edit_in_flight_is_kept(db):
    uri = db.new()
    ids = _seed(uri)
    assert label(MlflowBackend.open(uri, experiments=["eq"]), write=True).failed == 0
    before = _tables(uri)
    again = label(MlflowBackend.open(uri, experiments=["eq"]), write=True, force=True)
    assert {r.action for r in again.results} == {"unchanged"} and _tables(uri) == before

    # A user's edit in flight (their transaction holds the lock: sqlite's write lock, PostgreSQL's
    # row lock) while a pass rewrites the run's section. The SQL path either reads after the edit
    # commits (sqlite) or finds the value changed under its compare-and-set and plans again from a
    # fresh read (PostgreSQL): the edit is kept. Through the client, the state is read before the
    # edit commits and the write lands after it: the edit is lost.
    rid = ids[0]
    client = MlflowClient(uri)
    note = client.get_run(rid).data.tags[NOTE]
    start = note.index("<!-- tracker-diag -->\n")
    assert "over the last" in note[start:]
    client.set_tag(rid, NOTE, note[:start] + note[start:].replace("over the last", "over the LAST"))  # stale
    user = db.user(uri)
    user.cursor().execute(f"UPDATE tags SET value = 'my edit. ' || value WHERE run_uuid = '{rid}' AND key = '{NOTE}'")
    done = {}
    writer = threading.Thread(target=lambda: done.setdefault(
        "batch", label(MlflowBackend.open(uri, experiments=["eq"]), write=True, force=True)))
    writer.start()
    writer.join(2)  # the pass is waiting for the lock
    user.commit()
    user.close()
    writer.join(60)
    assert done["batch"].failed == 0, [r.error for r in done["batch"].results if r.error]
    after = client.get_run(rid).data.tags[NOTE]
    assert after.startswith("my edit. notes 0") and "LAST" not in after  # the edit kept, our section rewritten
