"""The screenshots in docs/: the demo's HTML report (desktop, phone, a run's detail view) and
the MLflow runs page reached by the URL `label --write` prints.

    python scripts/screenshots.py [--out docs] [--runs 24]

Trains the demo store in a temporary directory, serves it with a real `mlflow server` on
127.0.0.1, labels it through the server and photographs both in the system Chromium
(driven by Playwright, as the tests do).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, seconds: float = 90) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{url} did not answer within {seconds:.0f} s")


def _cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "tracker_diag", *args], capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1, 3):
        raise SystemExit(f"tracker-diag {' '.join(args)} exited {done.returncode}:\n{done.stderr[-2000:]}")
    return done.stdout


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"))
    p.add_argument("--runs", type=int, default=24)
    a = p.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("needs chromium (apt install chromium)")
    from playwright.sync_api import sync_playwright

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="td-shots-"))
    store = f"sqlite:///{tmp / 'mlflow.db'}"
    _cli("demo", "--tracking-uri", store, "--runs", str(a.runs))
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store, "--host",
                               "127.0.0.1", "--port", str(port), "--workers", "1",
                               "--default-artifact-root", str(tmp / "artifacts")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        uri = f"http://127.0.0.1:{port}"
        _wait(f"{uri}/health")
        printed = _cli("label", "mlflow", "--tracking-uri", uri, "-e", "tracker-diag-demo", "--write", "-q",
                       "--report", str(tmp / "report.html"))
        found = re.search(r"The (\w+) runs:\s+(\S+)", printed)  # the most severe regime found
        if not found:
            raise SystemExit(f"no runs URL in the output:\n{printed}")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(found.group(2))
            page.wait_for_selector(f"text={found.group(1)}", timeout=60_000)
            page.wait_for_timeout(2500)
            page.screenshot(path=str(out / "mlflow-runs-filtered.png"))
            for width, height, name in ((1400, 1000, "report-desktop.png"), (390, 844, "report-phone.png")):
                page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
                page.goto(f"file://{tmp / 'report.html'}")
                page.screenshot(path=str(out / name))
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            page.goto(f"file://{tmp / 'report.html'}#regime=overfitting")
            page.locator("tr:not(.hidden) svg.mini").first.click()
            page.locator("#d-smooth").fill("0.6")
            page.screenshot(path=str(out / "report-detail.png"))
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    for name in ("mlflow-runs-filtered.png", "report-desktop.png", "report-phone.png", "report-detail.png"):
        print(out / name, f"{os.path.getsize(out / name) / 1e3:.0f} kB")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
