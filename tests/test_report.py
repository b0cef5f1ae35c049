"""The HTML report: self-contained, escaped, and working in a real headless Chromium."""

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from helpers import run_cli

from tracker_diag.batch import label
from tracker_diag.connectors.files import FileBackend
from tracker_diag.model import SEVERITY
from tracker_diag.page import B, T, fmt
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
    sure = re.findall(r'<tr data-regime="\w+" data-name="[^"]*"[^>]*data-i="(\d+)">.*?<td data-label="confidence">'
                      r'(high|medium|low)(<div class="muted">close to (\w+)</div>)?</td>', page)
    assert len(sure) == len(batch.results)
    assert {int(i): s[2] or None for i, *s in sure} == {i: r.diagnosis.runner_up for i, r in enumerate(batch.results)}
    # rows in severity order (diverging first), surest first within a regime
    ranks = [(SEVERITY.index(batch.results[int(i)].diagnosis.regime), "hml".index(c[0])) for i, c, *_ in sure]
    assert ranks == sorted(ranks) and len({r for r, _ in ranks}) > 3


def test_write_html_is_readable_by_others(batch, tmp_path):
    out = tmp_path / "sub" / "report.html"
    write_html(batch, str(out))
    assert out.read_text().startswith("<!doctype html>")
    assert oct(out.stat().st_mode & 0o044) == oct(0o044 & ~_umask())


def _umask():
    u = os.umask(0)
    os.umask(u)
    return u


@pytest.fixture(scope="module")
def browser():
    """The system Chromium, driven by Playwright (no browser download)."""
    if CHROMIUM is None:
        if os.environ.get("CI_REQUIRES_BROWSER"):
            pytest.fail("chromium is required here")
        pytest.skip("chromium not installed (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _open(browser, url: str, width: int, height: int):
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(url)
    return page, errors


def _no_sideways_scroll(page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"page is {width} px wide in a {inner} px window"


@pytest.mark.parametrize("width,height", [(1400, 1000), (390, 844)], ids=["desktop", "phone"])
def test_in_headless_chromium(batch, tmp_path, browser, width, height):
    page_file = tmp_path / "report.html"
    write_html(batch, str(page_file), title="browser test")
    page, errors = _open(browser, f"file://{page_file}#regime=overfitting", width, height)
    # the regime filter, from the URL as a click would, shows only that regime's rows
    shown = page.eval_on_selector_all("#runs tbody tr", "rs => rs.map(r => [r.dataset.regime, r.offsetParent !== null])")
    assert any(r == "overfitting" for r, _ in shown) and all((r == "overfitting") == visible for r, visible in shown)
    page.locator(".counts button[data-regime=all]").click()
    _no_sideways_scroll(page)
    # the hostile run name is text: its handler never ran, the title is ours
    assert page.title() == "browser test"
    assert page.locator("td.run", has_text="<script>alert(1)</script>").count() == 1
    # sorting shows its arrow and sorts; blanks last either way
    assert page.get_attribute("th[data-key=rank]", "aria-sort") == "ascending"
    for direction in ("ascending", "descending"):
        page.locator("th[data-key=gap] button").click()
        assert page.get_attribute("th[data-key=gap]", "aria-sort") == direction
        assert page.get_attribute("th[data-key=rank]", "aria-sort") is None
        gaps = page.eval_on_selector_all("#runs tbody tr", "rs => rs.map(r => r.dataset.gap)")
        filled = [float(g) for g in gaps if g]
        assert filled == sorted(filled, reverse=direction == "descending") and gaps[len(filled):] == [""] * (len(gaps) - len(filled))
    # the value under the pointer is the logged value at the nearest step
    data = json.loads(page.locator("#td-data").text_content())["runs"]
    svg = page.locator("svg.mini").nth(3)
    run = data[int(svg.get_attribute("data-i"))]
    svg.scroll_into_view_if_needed()
    box = svg.bounding_box()
    page.mouse.move(box["x"] + box["width"] - 3, box["y"] + box["height"] / 2)
    tip = page.locator("#tip").inner_text().splitlines()
    xs, ys = run["curves"]["test_loss"]
    assert tip[0] == f"step {fmt(xs[-1])}"
    assert f"{run['names']['test_loss']}: {fmt(ys[-1])}" in tip
    # the detail view: loss and accuracy at full size, on a log scale when a curve spans decades
    svg.click()
    charts = page.locator("#d-charts svg")
    assert page.locator("#detail").is_visible() and charts.count() >= 1
    assert page.evaluate("location.hash") == "#run=" + quote(run["id"], safe="")
    _no_sideways_scroll(page)
    # smoothing draws the raw curve faintly under its EMA, and the tooltip gives both
    page.locator("#d-smooth").fill("0.9")
    assert page.locator("#d-charts path.raw").count() == page.locator("#d-charts path.smooth").count() > 0
    cbox = charts.first.bounding_box()
    page.mouse.move(cbox["x"] + cbox["width"] / 2, cbox["y"] + cbox["height"] / 2)
    assert "smoothed" in page.locator("#tip").inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"report-detail-{width}.png"))
    page.locator("#d-close").click()
    assert not page.locator("#detail").is_visible()
    page.screenshot(path=str(ARTIFACTS / f"report-{width}.png"))
    assert (ARTIFACTS / f"report-{width}.png").stat().st_size > 10_000
    assert not errors, errors


def test_an_exploding_curve_is_drawn_on_a_log_scale_and_flattens_nothing(tmp_path, browser):
    """Train loss from 2 to 1e6 beside a test loss falling from 2 to 1: on a linear axis the
    test curve would be a flat line along the bottom."""
    steps = list(range(50))
    rows = [("boom", "boom", k, s, v) for s in steps for k, v in
            (("train_loss", 2 * 1.3 ** s), ("test_loss", 2 - s / 49))]
    src = tmp_path / "boom.csv"
    pd.DataFrame(rows, columns=["run_id", "run_name", "key", "step", "value"]).to_csv(src, index=False)
    batch = label(FileBackend([str(src)]), keep_curves=True)
    html = render_html(batch)
    svg = re.search(r'<svg class="mini".*?</svg>', html).group(0)
    test_ys = [float(p.split(",")[1]) for p in re.search(r'class="te" points="([^"]*)"', svg).group(1).split()]
    assert max(test_ys) - min(test_ys) > 0.4 * (B - T)  # spans real height, not a line along the axis
    # the axes say where the curves are: min and max drawn, first and last step, and the real maximum
    for text in (f">{fmt(1.0)}<", f">{fmt(3.0)}<", ">0<", ">49<", f"max {fmt(2 * 1.3 ** 49)}<"):
        assert text in svg, text
    # a curve that is merely far higher (train far below a flat test: overfitting) is not cut: both drawn, log scale
    rows = [("high", "high", k, s, v) for s in steps for k, v in (("train_loss", 3e-3 / (s + 1)), ("test_loss", 0.24))]
    pd.DataFrame(rows, columns=["run_id", "run_name", "key", "step", "value"]).to_csv(src, index=False)
    svg = re.search(r'<svg class="mini".*?</svg>', render_html(label(FileBackend([str(src)]), keep_curves=True))).group(0)
    assert "log scale" in svg and "leaves the chart" not in svg and f">{fmt(0.24)}<" in svg
    page_file = tmp_path / "boom.html"
    page_file.write_text(html)
    page, errors = _open(browser, f"file://{page_file}#run=boom", 1200, 900)
    # the detail view shows the full range, on a log scale since it spans decades
    assert page.locator("#d-charts svg title").first.text_content() == "loss (log scale)"
    page.select_option("#d-scale", "linear")
    assert page.locator("#d-charts svg title").first.text_content() == "loss"
    assert not errors, errors


def test_run_data_in_the_page_cannot_close_its_script(tmp_path):
    evil = "</script><script>document.title='pwned'</script><!--"
    rows = [(evil, evil, k, s, 1.0 / (s + 1)) for s in range(30) for k in ("loss", "val_loss")]
    src = tmp_path / "e.csv"
    pd.DataFrame(rows, columns=["run_id", "run_name", "key", "step", "value"]).to_csv(src, index=False)
    html = render_html(label(FileBackend([str(src)]), keep_curves=True))
    assert "</script><script>document.title" not in html and html.count("<script") == 2
    data = re.search(r'<script type="application/json" id="td-data">(.*?)</script>', html, re.DOTALL).group(1)
    assert json.loads(data)["runs"][0]["name"] == evil


def test_report_command_rebuilds_the_page_from_json_and_source(tmp_path, capsys, corpus):
    src = tmp_path / "runs.csv"
    long_frame(corpus)[["run_id", "run_name", "key", "step", "value"]].to_csv(src, index=False)
    assert run_cli(["diagnose", str(src), "--json", str(tmp_path / "d.json"), "--report", str(tmp_path / "a.html"),
                 "-q"], capsys)[0] == 0
    code, out, _ = run_cli(["report", str(tmp_path / "d.json"), "--source", str(src), "-o", str(tmp_path / "b.html")],
                        capsys)
    assert code == 0 and "16 runs" in out
    a, b = (tmp_path / "a.html").read_text(), (tmp_path / "b.html").read_text()
    conf = r'<td data-label="confidence">(high|medium|low)(?:<div class="muted">close to \w+</div>)?</td>'
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
