"""The nightly sweep over real MLflow stores (a sqlite file and a real mlflow server)."""

import fcntl
import json

import pytest
from helpers import run_cli
from mlflow.tracking import MlflowClient
from mlflow_helpers import log_run


def config(tmp_path, body: str, name="tracker-diag.toml"):
    path = tmp_path / name
    path.write_text(body)
    return path


def snapshot(uri, exp_name):
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(exp_name).experiment_id
    return {r.info.run_id: dict(r.data.tags) for r in client.search_runs([exp], max_results=1000)}


@pytest.mark.server
def test_sweep_two_stores_then_nothing_to_do(new_store, tmp_path, capsys, server):
    local = new_store("local.db")
    c1 = MlflowClient(local)
    e1 = c1.create_experiment("a")
    ids = {log_run(c1, e1, k): k for k in ("learning", "overfitting", "diverging")}
    c2 = MlflowClient(server)
    e2 = c2.create_experiment("sweep-b")
    ids.update({log_run(c2, e2, k): k for k in ("plateau", "overfitting")})
    capsys.readouterr()
    cfg = config(tmp_path, f"""
write = true
fail-on = ["diverging"]
report = "out/nightly.html"
json = "out/nightly.json"

[[sources]]
name = "local"
type = "mlflow"
tracking-uri = "{local}"
experiments = ["a"]

[[sources]]
name = "server"
type = "mlflow"
tracking-uri = "{server}"
experiments = ["sweep-b"]
""")
    code, out, _ = run_cli(["sweep", "--config", str(cfg)], capsys)
    assert code == 3  # fail-on diverging matched
    rep = json.loads((tmp_path / "out/nightly.json").read_text())
    assert {r["run_id"]: r["regime"] for r in rep["runs"]} == ids
    assert (tmp_path / "out/nightly.html").read_text().count("<tr data-regime=") == 5
    changes = out[out.index("Changed since the last sweep"):].splitlines()[1:6]
    assert changes[0].split()[0] == "diverging" and changes[1].split()[0] == "overfitting"  # alarming first
    before = snapshot(local, "a"), snapshot(server, "sweep-b")
    assert all(t["diag_regime"] == ids[r] for s in before for r, t in s.items())

    code, out, _ = run_cli(["sweep", "--config", str(cfg)], capsys)
    assert code == 3 and "Nothing changed since the last sweep." in out
    rep = json.loads((tmp_path / "out/nightly.json").read_text())
    assert rep["summary"]["skipped"] == 5 and rep["summary"]["actions"] == {"unchanged": 5}
    assert (snapshot(local, "a"), snapshot(server, "sweep-b")) == before  # nothing written


def test_config_errors_name_the_file_and_entry_and_good_sources_still_run(new_store, tmp_path, capsys):
    good = new_store("good.db")
    client = MlflowClient(good)
    log_run(client, client.create_experiment("g"), "learning")
    cfg = config(tmp_path, f"""
write = true

[[sources]]
name = "typo"
type = "mlflow"
tracking-uri = "{good}"
experimnts = ["g"]

[[sources]]
name = "gone"
type = "mlflow"
tracking-uri = "{good}"
experiments = ["no-such-experiment"]

[[sources]]
name = "busy"
type = "wandb"
project = "ent/proj"
workers = "many"

[[sources]]
name = "good"
type = "mlflow"
tracking-uri = "{good}"
experiments = ["g"]
""")
    code, out, err = run_cli(["sweep", "-c", str(cfg)], capsys)
    assert code == 2
    assert any(str(cfg) in x and "'busy'" in x and "workers must be a whole number" in x for x in err.splitlines())
    lines = err.strip().splitlines()
    assert any(str(cfg) in x and "sources[0] (typo)" in x and "experimnts" in x for x in lines)
    assert any(str(cfg) in x and "'gone'" in x and "no-such-experiment" in x for x in lines)
    assert "good: 1 runs, 1 learning" in out
    assert snapshot(good, "g") and all(t["diag_regime"] == "learning" for t in snapshot(good, "g").values())


@pytest.mark.parametrize("setting, expected", [
    ('write = "false"', "write must be true or false, got 'false'"),
    ('force = "no"', "force must be true or false, got 'no'"),
    ('attach-plots = 1', "attach-plots must be true or false, got 1"),
    ('gap-threshold = "0.3"', "gap-threshold must be a number from 0 to 1, got '0.3'"),
    ('gap-threshold = 7', "gap-threshold must be a number from 0 to 1, got 7"),
    ('fail-on = ["overfiting"]', "fail-on: unknown regime(s) overfiting"),
    ('report = 3', "report must be a string, got 3"),
    ('colour = "blue"', "unknown setting 'colour'"),
    ('keys = "loss"', "keys must be a table"),
])
def test_a_wrong_top_level_setting_reads_and_writes_nothing(new_store, tmp_path, capsys, setting, expected):
    """``write = "false"`` once loaded as write=True (bool("false")): a dry run became a write."""
    uri = new_store("strict.db")
    client = MlflowClient(uri)
    log_run(client, client.create_experiment("s"), "overfitting")
    cfg = config(tmp_path, f"""
{setting}
json = "out.json"

[[sources]]
type = "mlflow"
tracking-uri = "{uri}"
experiments = ["s"]
""")
    before = snapshot(uri, "s")
    code, out, err = run_cli(["sweep", "-c", str(cfg)], capsys)
    assert code == 2
    assert any(str(cfg) in line and expected in line and line.startswith("error: ") for line in err.splitlines()), err
    assert snapshot(uri, "s") == before  # nothing written
    assert not (tmp_path / "out.json").exists() and not (tmp_path / ".tracker-diag-state.json").exists()
    assert "runs" not in out


def test_pyproject_table_and_lock(new_store, tmp_path, capsys):
    uri = new_store("x.db")
    client = MlflowClient(uri)
    log_run(client, client.create_experiment("x"), "learning")
    cfg = config(tmp_path, f"""
[project]
name = "whatever"

[tool.tracker-diag]
state = "state.json"

[[tool.tracker-diag.sources]]
type = "mlflow"
tracking-uri = "{uri}"
experiments = ["x"]
""", name="pyproject.toml")
    with open(tmp_path / "state.json.lock", "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        code, _, err = run_cli(["sweep", "-c", str(cfg)], capsys)
        assert code == 2 and "another sweep is running" in err
    code, out, _ = run_cli(["sweep", "-c", str(cfg)], capsys)
    assert code == 0 and "dry run" in out and "1 learning" in out
    assert json.loads((tmp_path / "state.json").read_text())["runs"]
    assert "diag_regime" not in next(iter(snapshot(uri, "x").values()))  # dry run by default


def test_missing_and_broken_configuration(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["sweep"], capsys)[0] == 2
    bad = config(tmp_path, "write = [")
    code, _, err = run_cli(["sweep", "-c", str(bad)], capsys)
    assert code == 2 and str(bad) in err and "TOML" in err


def test_shipped_example_configuration_is_valid():
    from pathlib import Path

    from tracker_diag.sweep import load

    cfg = load(Path(__file__).resolve().parents[1] / "scripts" / "tracker-diag.example.toml")
    assert cfg.errors == [] and [s.name for s in cfg.sources] == ["local", "team-server", "wandb-team"]
    assert cfg.sources[1].keys == {"test_loss": "val/loss"} and cfg.fail_on == ("diverging",)


def test_sweep_over_mlflow_and_wandb(new_store, tmp_path, capsys, wb):
    from wandb_server import StoredRun

    local = new_store("local.db")
    client = MlflowClient(local)
    exp = client.create_experiment("a")
    log_run(client, exp, "learning")
    x = [float(i) for i in range(40)]
    for name, test in (("wb-learning", [2.0 / (1 + i / 8) + 0.2 for i in x]),
                       ("wb-overfit", [0.6 + 0.001 * (i - 10) ** 2 for i in x]),
                       ("wb-flat-val", [1.0] * 40)):
        rows = [{"_step": int(i), "loss": 2.0 / (1 + i / 5) + 0.01, "val_loss": t} for i, t in zip(x, test)]
        wb.runs.setdefault(("ent", "proj"), []).append(
            StoredRun(name, history=rows, summary={"loss": 0.0, "val_loss": 0.0}, config={"team": name[-1]}))
    cfg = config(tmp_path, f"""
write = true
json = "out/nightly.json"

[[sources]]
name = "local"
type = "mlflow"
tracking-uri = "{local}"
experiments = ["a"]

[[sources]]
name = "wandb"
type = "wandb"
project = "ent/proj"
filter = {{ "config.team" = {{ "$ne" = "d" }} }}
workers = 2
""")
    code, out, err = run_cli(["sweep", "--config", str(cfg)], capsys)
    assert code == 0, err
    rep = json.loads((tmp_path / "out/nightly.json").read_text())
    got = {r["run_id"]: r["regime"] for r in rep["runs"] if r["source"] == "wandb"}
    assert got == {"wb-learning": "learning", "wb-overfit": "overfitting", "wb-flat-val": "overfitting"}  # train falls, test flat
    sent = [json.loads(q["variables"]["filters"]) for q in wb.requests if q["operation"] == "Runs"]
    assert sent == [{"config.team": {"$ne": "d"}}]  # the TOML table went through as the W&B filter
    stored = {r.name: (list(r.tags), r.summary.get("diag_regime")) for r in wb.runs[("ent", "proj")]}
    assert stored["wb-overfit"] == (["overfitting"], "overfitting")

    wb.requests.clear()
    code, out, _ = run_cli(["sweep", "--config", str(cfg)], capsys)
    ops = [q["operation"] for q in wb.requests]
    assert code == 0 and "Nothing changed since the last sweep." in out
    assert "RunSampledHistory" not in ops and "UpsertBucket" not in ops


def test_a_writing_sweep_takes_the_label_lock(new_store, tmp_path, capsys):
    """A sweep and a ``label --write`` on the same store never write at once: the sweep takes
    the lock ``label --write`` holds; a dry-run sweep needs none."""
    from tracker_diag.connectors import build
    from tracker_diag.locks import labelling

    uri = new_store("locked.db")
    client = MlflowClient(uri)
    log_run(client, client.create_experiment("l"), "overfitting")
    other = new_store("free.db")
    c2 = MlflowClient(other)
    log_run(c2, c2.create_experiment("f"), "learning")
    cfg = config(tmp_path, f"""
write = true

[[sources]]
name = "locked"
type = "mlflow"
tracking-uri = "{uri}"
experiments = ["l"]

[[sources]]
name = "free"
type = "mlflow"
tracking-uri = "{other}"
experiments = ["f"]
""")
    import contextlib

    with contextlib.closing(build("mlflow", {"tracking_uri": uri, "experiments": ["l"]})) as backend:
        where = backend.describe()
    with labelling("mlflow", where):  # what `label mlflow --write` holds while it writes
        code, _, err = run_cli(["sweep", "-c", str(cfg)], capsys)
    assert code == 2
    assert any("'locked'" in line and "another tracker-diag --write is labelling" in line for line in err.splitlines())
    assert all("diag_regime" not in t for t in snapshot(uri, "l").values())  # nothing written under the lock
    assert all(t["diag_regime"] == "learning" for t in snapshot(other, "f").values())  # the other source went on
    code, _, _ = run_cli(["sweep", "-c", str(cfg)], capsys)
    assert code == 0 and all(t["diag_regime"] == "overfitting" for t in snapshot(uri, "l").values())
