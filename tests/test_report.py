"""The HTML report: self-contained, escaped, and working in a real headless Chromium."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from helpers import run_cli

from tracker_diag.batch import label
from tracker_diag.connectors.files import FileBackend
from tracker_diag.report import render_html, write_html
from tracker_diag.training import long_frame

HOSTILE = '<script>alert(1)</script><img src=x onerror="document.title=\'pwned\'">'
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# screenshots for a person to look at, outside the repository tree
ARTIFACTS = Path(os.environ.get("TRACKER_DIAG_ARTIFACTS") or Path(tempfile.gettempdir()) / "tracker-diag-artifacts")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, corpus):
    frame = long_frame(corpus)[["run_id", "run_name", "key", "step", "value"]]
    frame.loc[frame.run_id == corpus[0].run_id, "run_name"] = HOSTILE
    path = tmp_path_factory.mktemp("r") / "runs.csv"
    frame.to_csv(path, index=False)
    return label(FileBackend([str(path)]), keep_curves=True)


def test_page_is_self_contained_and_escaped(batch):
    page = render_html(batch, title=HOSTILE)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page)  # nothing fetched from anywhere
    assert page.count("<tr data-regime=") == len(batch.results)
    assert page.count("<svg") == sum(bool(r.curves) and any(
        y is not None for c in r.curves.values() for y in c[1]) for r in batch.results)
    counts = re.findall(r'data-regime="(\w+)" style="[^"]*">\w+ <b>(\d+)</b>', page)
    assert sum(int(n) for _, n in counts) == len(batch.results)
    # every row says how sure its label is, the runner-up when there is one
    sure = re.findall(r'</span></td><td>(high|medium|low)(<div class="muted">close to (\w+)</div>)?</td>', page)
    assert len(sure) == len(batch.results)
    assert [s[2] or None for s in sure] == [r.diagnosis.runner_up for r in batch.results]


def test_write_html_is_readable_by_others(batch, tmp_path):
    out = tmp_path / "sub" / "report.html"
    write_html(batch, str(out))
    assert out.read_text().startswith("<!doctype html>")
    assert oct(out.stat().st_mode & 0o044) == oct(0o044 & ~_umask())


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


def _chromium(url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0", *extra, url],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None and not os.environ.get("CI_REQUIRES_BROWSER"),
                    reason="chromium not installed (.ci/run installs it)")
def test_in_headless_chromium(batch, tmp_path):
    page = tmp_path / "report.html"
    write_html(batch, str(page), title="browser test")
    # the regime filter, applied from the URL as a click would, hides every other row
    out = _chromium(f"file://{page}#regime=overfitting", tmp_path, "--dump-dom")
    assert out.returncode == 0, out.stderr[-2000:]
    dom = out.stdout
    rows = re.findall(r'<tr data-regime="(\w+)"[^>]*?( class="hidden")?>', dom)
    assert rows and all((regime != "overfitting") == bool(hidden) for regime, hidden in rows)
    assert any(regime == "overfitting" for regime, _ in rows)
    # the hostile run name is text: its handler never ran, the title is ours
    assert "<title>browser test</title>" in dom and "pwned" not in re.search(r"<title>.*?</title>", dom).group(0)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom
    errors = [line for line in out.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not errors, errors
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = _chromium(f"file://{page}", tmp_path, "--window-size=1400,1100",
                     f"--screenshot={ARTIFACTS / 'report.png'}")
    assert shot.returncode == 0 and (ARTIFACTS / "report.png").stat().st_size > 10_000


def test_report_command_rebuilds_the_page_from_json_and_source(tmp_path, capsys, corpus):
    src = tmp_path / "runs.csv"
    long_frame(corpus)[["run_id", "run_name", "key", "step", "value"]].to_csv(src, index=False)
    assert run_cli(["diagnose", str(src), "--json", str(tmp_path / "d.json"), "--report", str(tmp_path / "a.html"),
                 "-q"], capsys)[0] == 0
    code, out, _ = run_cli(["report", str(tmp_path / "d.json"), "--source", str(src), "-o", str(tmp_path / "b.html")],
                        capsys)
    assert code == 0 and "16 runs" in out
    a, b = (tmp_path / "a.html").read_text(), (tmp_path / "b.html").read_text()
    conf = r'<td>(high|medium|low)(?:<div class="muted">close to \w+</div>)?</td>'
    assert re.findall(conf, a) == re.findall(conf, b) and len(re.findall(conf, a)) == 16  # kept through the JSON
    assert b.count("<svg") == a.count("<svg") > 10
    assert re.findall(r'<polyline class="te" points="([^"]*)"', a) == re.findall(r'<polyline class="te" points="([^"]*)"', b)
    (tmp_path / "bad.json").write_text("{}")
    assert run_cli(["report", str(tmp_path / "bad.json"), "--source", str(src)], capsys)[0] == 2


def test_report_of_an_incremental_mlflow_pass_still_has_every_curve(new_store, tmp_path, capsys):
    from mlflow.tracking import MlflowClient
    from mlflow_helpers import log_run

    uri = new_store("m.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("r")
    for k in ("learning", "overfitting", "diverging"):
        log_run(client, exp, k)
    base = ["label", "mlflow", "--tracking-uri", uri, "-e", "r", "-q"]
    assert run_cli([*base, "--write"], capsys)[0] == 0
    code, _, _ = run_cli([*base, "--write", "--json", str(tmp_path / "j.json"), "--report", str(tmp_path / "m.html")],
                      capsys)
    rep = json.loads((tmp_path / "j.json").read_text())
    assert code == 0 and rep["summary"]["skipped"] == 3
    assert (tmp_path / "m.html").read_text().count("<svg") == 3
