"""HTML report size and generation time at 2,000 runs (4 curves x 1,000 points each).

    python scripts/bench_report.py [--runs 2000] [--browser]

--browser also times headless Chromium loading the page and taking a screenshot.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
from bench_analyzer import make_frame

from tracker_diag.batch import label
from tracker_diag.connectors.files import FileBackend
from tracker_diag.report import write_html


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2000)
    p.add_argument("--browser", action="store_true")
    a = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-report-")
    src = os.path.join(tmp, "runs.parquet")
    make_frame(a.runs, 1000).to_parquet(src)
    t0 = time.perf_counter()
    batch = label(FileBackend([src]), keep_curves=True)
    t1 = time.perf_counter()
    out = os.path.join(tmp, "report.html")
    write_html(batch, out)
    t2 = time.perf_counter()
    size = os.path.getsize(out)
    print(f"{a.runs} runs: analysis {t1 - t0:.2f} s, HTML {t2 - t1:.2f} s, {size / 1e6:.1f} MB "
          f"({size / a.runs / 1e3:.1f} kB per run) -> {out}")
    chromium = shutil.which("chromium")
    if a.browser and chromium:
        t0 = time.perf_counter()
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                        "--no-first-run", f"--user-data-dir={tmp}/profile", "--window-size=1400,1100",
                        f"--screenshot={tmp}/shot.png", f"file://{out}"], capture_output=True, check=True)
        print(f"headless Chromium load + screenshot: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
