import json
from pathlib import Path

import pandas as pd
import pytest
from helpers import run_cli

from tracker_diag.training import long_frame

ROOT = Path(__file__).resolve().parents[1]




@pytest.fixture
def corpus_csv(tmp_path, corpus):
    path = tmp_path / "runs.csv"
    long_frame(corpus)[["run_id", "run_name", "key", "step", "value"]].to_csv(path, index=False)
    return path


def test_json_report_follows_the_schema(corpus_csv, corpus, tmp_path, capsys):
    out = tmp_path / "r" / "report.json"
    code, stdout, _ = run_cli(["diagnose", str(corpus_csv), "--json", str(out)], capsys)
    assert code == 0
    rep = json.loads(out.read_text())
    assert rep["schema_version"] == 1 and rep["tool_version"]
    assert rep["summary"]["runs"] == len(corpus) == len(rep["runs"])
    assert sum(rep["summary"]["by_regime"].values()) == len(corpus)
    run0 = rep["runs"][0]
    assert set(run0) >= {"run_id", "run_name", "source", "regime", "acc_gap", "best_step", "onset_step", "flags",
                         "keys", "reasons", "advice", "action"}
    assert {r["action"] for r in rep["runs"]} == {"dry-run"}
    by_id = {r["run_id"]: r for r in rep["runs"]}
    for r in corpus:  # the names are the ones in the file
        assert by_id[r.run_id]["run_name"] == r.run_name
    assert "overfitting" in stdout and "16 runs" in stdout
    assert not list(out.parent.glob(".report.json.*"))  # no temp file left behind


def test_json_to_stdout_is_pure_json(corpus_csv, capsys):
    code, stdout, stderr = run_cli(["diagnose", str(corpus_csv), "--json", "-"], capsys)
    assert code == 0 and json.loads(stdout)["summary"]["runs"] == 16
    assert "16 runs" in stderr


def test_fail_on_sets_exit_code_3(corpus_csv, capsys):
    code, _, err = run_cli(["diagnose", str(corpus_csv), "--fail-on", "diverging", "-q"], capsys)
    assert code == 3 and "diverging" in err
    code, _, _ = run_cli(["diagnose", str(corpus_csv), "--fail-on", "learning", "-q"], capsys)
    assert code == 3


def test_fail_on_absent_regime_exits_0(tmp_path, capsys):
    import numpy as np

    steps = np.arange(40)
    rows = [("r1", "loss", s, 2 * np.exp(-s / 80)) for s in steps] + \
           [("r1", "val_loss", s, 2.1 * np.exp(-s / 90)) for s in steps]
    p = tmp_path / "one.jsonl"
    pd.DataFrame(rows, columns=["run_id", "key", "step", "value"]).to_json(p, orient="records", lines=True)
    code, stdout, _ = run_cli(["diagnose", str(p), "--fail-on", "overfitting,diverging"], capsys)
    assert code == 0 and "learning" in stdout


def test_parquet_and_run_name_only(tmp_path, corpus, capsys):
    frame = long_frame(corpus[:4])[["run_name", "key", "step", "value"]]
    p = tmp_path / "runs.parquet"
    frame.to_parquet(p)
    code, _, _ = run_cli(["diagnose", str(p), "--json", str(tmp_path / "o.json"), "-q"], capsys)
    rep = json.loads((tmp_path / "o.json").read_text())
    assert code == 0 and {r["run_id"] for r in rep["runs"]} == {r.run_name for r in corpus[:4]}


def test_keys_override_is_used_and_reported(tmp_path, capsys):
    rows = [("r", k, s, v) for s in range(30) for k, v in (("a", 2 - s / 20), ("b", 2.1 - s / 25))]
    p = tmp_path / "x.csv"
    pd.DataFrame(rows, columns=["run_id", "key", "step", "value"]).to_csv(p, index=False)
    _code, stdout, _ = run_cli(["diagnose", str(p), "--keys", "train_loss=a,test_loss=b", "--json", "-"], capsys)
    rep = json.loads(stdout)
    assert rep["runs"][0]["keys"] == {"train_loss": "a", "test_loss": "b"}
    assert rep["runs"][0]["regime"] == "learning"


@pytest.mark.parametrize("content, name, message", [
    ("run_id,key,step\nr,loss,1\n", "a.csv", "missing column(s) value"),
    ("key,step,value\nloss,1,2\n", "b.csv", "run_id (or run_name)"),
    ("\x00\x01garbage", "c.parquet", "cannot be parsed"),
    ("{not json", "d.jsonl", "cannot be parsed"),
    ("x", "e.txt", "unknown file type"),
])
def test_malformed_files_get_one_line_and_exit_2(tmp_path, capsys, content, name, message):
    p = tmp_path / name
    p.write_text(content)
    code, _, err = run_cli(["diagnose", str(p)], capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(p) in lines[0] and message in lines[0]


def test_missing_file_and_bad_options_exit_2(tmp_path, capsys):
    assert run_cli(["diagnose", str(tmp_path / "nope.csv")], capsys)[0] == 2
    assert run_cli(["diagnose", str(ROOT / "samples/runs.csv"), "--fail-on", "bogus"], capsys)[0] == 2
    assert run_cli(["diagnose", str(ROOT / "samples/runs.csv"), "--keys", "loss"], capsys)[0] == 2
    assert run_cli(["diagnose", str(ROOT / "samples/runs.csv"), "--gap-threshold", "7"], capsys)[0] == 2


def test_words_and_nan_in_values_are_labels_not_crashes(tmp_path, capsys):
    p = tmp_path / "w.csv"
    p.write_text("run_id,key,step,value\n" + "".join(f"r,loss,{i},{'oops' if i % 7 == 0 else 'nan'}\n"
                                                     for i in range(20)))
    code, stdout, _ = run_cli(["diagnose", str(p), "--json", "-"], capsys)
    run = json.loads(stdout)["runs"][0]
    # a loss that is NaN (or unreadable) at every point is what a blown-up run logs
    assert code == 0 and run["regime"] == "diverging" and "NaN/inf at all 20 logged points" in run["reasons"][-1]


def test_shipped_sample_file_works(capsys):
    code, stdout, _ = run_cli(["diagnose", str(ROOT / "samples/runs.csv")], capsys)
    assert code == 0 and "overfitting" in stdout and "diverging" in stdout


def _commands(group=None, path=()):
    """Every command the CLI registers, groups and subcommands included."""
    import click

    from tracker_diag.cli import cli

    group = group or cli
    yield list(path)
    if isinstance(group, click.Group):
        for name, cmd in group.commands.items():
            yield from _commands(cmd, (*path, name))


@pytest.mark.parametrize("argv", list(_commands()), ids=lambda a: " ".join(a) or "tracker-diag")
def test_every_command_has_help_with_an_example(argv, capsys):
    code, stdout, _ = run_cli(argv + ["--help"], capsys)
    assert code == 0 and "Example" in stdout and "tracker-diag" in stdout


def test_python_dash_m(tmp_path):
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-m", "tracker_diag", "--version"], capture_output=True, text=True, check=False)
    assert out.returncode == 0 and "tracker-diag" in out.stdout
