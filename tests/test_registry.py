"""The backend registry: one declaration of each tracker's options for the command line and
the sweep's TOML, and one place that builds backends."""

import pytest
from helpers import run_cli

from tracker_diag.connectors import REGISTRY, build
from tracker_diag.errors import ConfigError
from tracker_diag.sweep import load


@pytest.mark.parametrize("tracker", [k for k in REGISTRY if k != "file"])
def test_every_declared_option_is_a_flag_of_label_and_a_key_of_the_sweep(tracker, capsys, tmp_path):
    code, out, _ = run_cli(["label", tracker, "--help"], capsys)
    assert code == 0
    for o in REGISTRY[tracker].options:
        assert (o.metavar if o.positional else o.cli or f"--{o.name}") in out, o.name
    cfg = tmp_path / "s.toml"
    values = {"mlflow": 'experiments = ["x"]', "wandb": 'project = "e/p"'}[tracker]
    every = "\n".join(f"{o.name} = {_toml(o)}" for o in REGISTRY[tracker].options if o.name not in values)
    cfg.write_text(f'[[sources]]\nname = "s"\ntype = "{tracker}"\n{values}\n{every}\n')
    loaded = load(cfg)
    assert loaded.errors == [] and set(loaded.sources[0].options) == {o.dest for o in REGISTRY[tracker].options}


def _toml(o) -> str:
    if o.kind == "int":
        return str(o.bounds[0])
    return {"flag": "true", "list": '["a"]', "json": '{ "state" = "finished" }'}.get(o.kind, '"x"')


def test_the_same_bounds_hold_on_the_command_line_and_in_a_sweep(tmp_path, capsys):
    hi = next(o for o in REGISTRY["wandb"].options if o.name == "workers").bounds[1]
    code, _, err = run_cli(["label", "wandb", "e/p", "--workers", str(hi + 1)], capsys)
    assert code == 2 and f"1<=x<={hi}" in err
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'[[sources]]\nname = "busy"\ntype = "wandb"\nproject = "e/p"\nworkers = {hi + 1}\n')
    assert any("'busy'" in e and f"from 1 to {hi}" in e for e in load(cfg).errors)


def test_build_says_what_is_wrong():
    with pytest.raises(ConfigError, match="unknown tracker 'neptune'"):
        build("neptune", {})
    with pytest.raises(ConfigError, match="filter is not JSON"):
        build("wandb", {"project": "e/p", "filter": "{oops"})
    with pytest.raises(ConfigError, match="ENTITY/PROJECT"):
        build("wandb", {"project": "no-slash"})


def test_a_file_backend_is_built_like_any_other(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("run_id,key,step,value\nr,loss,0,1.0\nr,loss,1,0.5\n")
    backend = build("file", {"paths": [str(p)]})
    assert [r.run_id for r in backend.list_runs()] == ["r"]


def test_every_backend_can_be_closed(new_store, tmp_path):
    from mlflow.tracking import MlflowClient

    uri = new_store()
    MlflowClient(uri).create_experiment("e")
    p = tmp_path / "m.csv"
    p.write_text("run_id,key,step,value\nr,loss,0,1.0\n")
    for name, values, runs in (("mlflow", {"tracking_uri": uri, "experiments": ["e"]}, []),
                               ("file", {"paths": [str(p)]}, ["r"])):
        backend = build(name, values)
        backend.close()
        backend.close()  # twice is harmless, and a closed backend that is used again reconnects
        assert [r.run_id for r in backend.list_runs()] == runs
