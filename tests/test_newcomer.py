"""A newcomer's first hour (issue 12): no silent empty stores, clear hints."""

import os

import pytest
from helpers import run_cli

pytest.importorskip("mlflow")
from mlflow.tracking import MlflowClient


def test_a_dry_run_on_a_missing_sqlite_store_creates_nothing_and_says_where_it_looked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")  # MLflow's own default: ./mlflow.db
    code, _, err = run_cli(["label", "mlflow"], capsys)
    assert code == 2 and f"no MLflow store at {tmp_path / 'mlflow.db'}" in err
    assert os.listdir(tmp_path) == []  # v1 created a 1 MB ./mlflow.db and printed an empty table


def test_one_slash_too_few_is_caught_with_the_uri_that_was_meant(tmp_path, new_store, monkeypatch, capsys):
    uri = new_store("real.db")  # sqlite:////tmp/.../real.db, absolute
    monkeypatch.chdir(tmp_path / "..")
    short = "sqlite:///" + uri[len("sqlite:////"):]  # what a user types for an absolute path
    before = set(os.listdir("."))
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", short, "-e", "x"], capsys)
    assert code == 2 and f"did you mean sqlite:////{uri[len('sqlite:////'):]}" in err
    assert set(os.listdir(".")) == before  # no nested ./tmp/.../real.db


def test_zero_runs_matched_says_what_was_searched(new_store, capsys):
    uri = new_store()
    MlflowClient(uri).create_experiment("empty")
    code, out, err = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", "empty", "--filter",
                              "params.lr = '0.1'"], capsys)
    assert code == 0 and "no runs matched: searched experiment(s) 1 of" in err
    assert "statuses FAILED, FINISHED, KILLED" in err and "filter \"params.lr = '0.1'\"" in err
