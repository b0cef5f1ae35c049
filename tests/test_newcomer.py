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
    code, _, err = run_cli(["label", "mlflow", "--tracking-uri", uri, "-e", "empty", "--filter",
                              "params.lr = '0.1'"], capsys)
    assert code == 0 and "no runs matched: searched experiment(s) 1 of" in err
    assert "statuses FAILED, FINISHED, KILLED" in err and "filter \"params.lr = '0.1'\"" in err


def test_the_table_is_in_severity_order_under_its_counts_and_fits_80_columns(tmp_path, monkeypatch, capsys):
    import math

    rows = ["run_id,key,step,value"]
    shapes = {"a-learning": (lambda s: 2 * math.exp(-s / 30), lambda s: 2 * math.exp(-s / 33) + 0.1),
              "b-diverging": (lambda s: 1 + s * 0.5, lambda s: 1 + s * 0.6),
              "c-overfitting-with-a-very-long-run-name-that-goes-on-and-on-until-the-end": (
                  lambda s: 2 * math.exp(-s / 5) + 0.01, lambda s: 0.6 + 0.001 * (s - 10) ** 2)}
    for name, (tr, te) in shapes.items():
        rows += [f"{name},loss,{s},{tr(s)}" for s in range(40)] + [f"{name},val_loss,{s},{te(s)}" for s in range(40)]
    path = tmp_path / "m.csv"
    path.write_text("\n".join(rows) + "\n")
    monkeypatch.setenv("COLUMNS", "80")
    code, out, _ = run_cli(["diagnose", str(path)], capsys)
    lines = out.splitlines()
    assert code == 0 and all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert lines[1].startswith("3 runs, 1 learning, 1 overfitting, 1 diverging")  # the counts on top
    body = [line for line in lines if line.startswith("│")]
    order = [next(r for r in ("diverging", "overfitting", "learning") if r in line) for line in body]
    assert order == ["diverging", "overfitting", "learning"]
    assert any("│ c-ove…" in line and "-end │" in line for line in body)  # cut in the middle


def test_the_readme_names_every_command_and_points_only_inside_the_repository():
    import re
    from pathlib import Path

    from tracker_diag.cli import cli

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    commands = [f"{name} {sub}" if hasattr(cmd, "commands") else name
                for name, cmd in cli.commands.items() for sub in (getattr(cmd, "commands", None) or [""])]
    missing = [c.strip() for c in commands if f"tracker-diag {c.strip()}" not in readme]
    assert not missing, missing
    links = re.findall(r"\]\(([^)#]+)", readme) + re.findall(r'src="([^"]+)"', readme)
    root = Path(__file__).resolve().parents[1]
    assert all(not link.startswith("..") and (link.startswith("http") or (root / link).exists()) for link in links), links


@pytest.mark.server
def test_the_printed_url_opens_the_filtered_runs_in_the_real_ui(server, capsys, tmp_path):
    import re
    import shutil
    import subprocess

    from mlflow_helpers import log_run

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        if os.environ.get("CI_REQUIRES_BROWSER"):
            pytest.fail("chromium is required here")
        pytest.skip("chromium not installed (.ci/run installs it)")
    client = MlflowClient(server)
    exp = client.create_experiment("ui-link")
    client.set_experiment_tag(exp, "mlflow.experimentKind", "custom_model_development")
    for i, kind in enumerate(["overfitting", "learning", "overfitting", "plateau"]):
        log_run(client, exp, kind, name=f"{kind}-run-{i}")
    capsys.readouterr()
    code, out, _ = run_cli(["label", "mlflow", "--tracking-uri", server, "-e", "ui-link", "--write", "-q"], capsys)
    url = re.search(r"The overfitting runs:\s+(\S+)", out).group(1)
    assert code == 0 and url.startswith(f"{server}/#/experiments/{exp}/runs?searchFilter=")
    dom = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", f"--user-data-dir={tmp_path / 'chrome'}",
                          "--virtual-time-budget=20000", "--window-size=1400,1000", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120, check=False).stdout
    assert "overfitting-run-0" in dom and "overfitting-run-2" in dom, dom[-2000:]
    assert "learning-run-1" not in dom and "plateau-run-3" not in dom


def test_the_labelling_bar_knows_its_total_on_a_terminal(new_store, tmp_path):
    """The SQL fast path counts the runs it will list in one query; the bar, on a terminal,
    shows done/total. A running run (not listed by default) is not counted."""
    import pty
    import subprocess
    import sys

    from mlflow_helpers import log_run

    from tracker_diag.connectors import build

    uri = new_store()
    client = MlflowClient(uri)
    exp = client.create_experiment("bar")
    for i, kind in enumerate(["learning", "overfitting", "plateau", "diverging", "learning"]):
        log_run(client, exp, kind, name=f"r{i}")
    log_run(client, exp, "learning", name="still-running", finish=False)
    backend = build("mlflow", {"tracking_uri": uri, "experiments": ["bar"]})
    try:
        assert backend.total() == sum(1 for _ in backend.list_runs()) == 5
    finally:
        backend.close()
    main, child = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "CI"} | {"COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.run([sys.executable, "-m", "tracker_diag", "label", "mlflow", "--tracking-uri", uri,
                           "-e", "bar"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=child,
                          env=env, timeout=120, check=False)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    assert proc.returncode == 0, seen[-2000:]
    assert b"5/5" in seen and b"/?" not in seen, seen[-2000:]


def test_the_supported_ranges_in_the_readme_are_the_packaged_ones_and_ci_tests_their_lower_ends():
    import re
    import tomllib
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    readme = (root / "README.md").read_text(encoding="utf-8")
    extras = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]["optional-dependencies"]
    oldest = dict(re.findall(r"^([a-z]+)==(\S+)", (root / ".ci" / "oldest.txt").read_text(), re.MULTILINE))
    for name in ("mlflow", "wandb"):
        (spec,) = [d[len(name):] for d in extras[name] if re.match(rf"{name}[<>=]", d)]
        assert f"| `{spec}`" in readme, (name, spec)  # the README's range is the packaged one
        low = re.search(r">=([\d.]+)", spec).group(1)
        assert oldest[name].startswith(low) and f"{oldest[name]} (oldest" in readme  # and CI installs its lower end
    assert ".ci/oldest.txt" in (root / ".ci" / "run").read_text()
