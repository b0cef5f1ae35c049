"""Peak memory of listing a large W&B project: tracker-diag's streamed listing vs the SDK's loop.

    python scripts/bench_wandb_listing.py [--runs 400 4000]

Each measurement runs in its own process with the test server of tests/wandb_server.py
(127.0.0.1) in it, so both columns carry the same server cost; what differs is the client.
The naive way is `for run in wandb.Api().runs(...)`: the SDK's paginator keeps every run.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def child(mode: str, n: int) -> None:
    sys.path.insert(0, os.path.join(HERE, "..", "tests"))
    from wandb_server import StoredRun, WandbTestServer

    with WandbTestServer() as srv:
        config = {f"hp{i}": i * 0.1 for i in range(40)}
        summary = {f"metric_{i}": 0.5 for i in range(60)}
        history = [{"_step": i, "loss": 1.0, "val_loss": 1.0} for i in range(3)]
        srv.runs[("ent", "p")] = [StoredRun(f"r{i}", config=config, summary=summary, history=history)
                                  for i in range(n)]
        os.environ.update(WANDB_BASE_URL=srv.url, WANDB_API_KEY="a" * 40, WANDB_ENTITY="ent",
                          WANDB_ERROR_REPORTING="false", WANDB_SILENT="true")
        t0 = time.perf_counter()
        seen = 0
        if mode == "naive":
            import wandb

            for run in wandb.Api(timeout=60).runs("ent/p", per_page=200, lazy=False):
                seen += bool(dict(run.summary))
        else:
            from tracker_diag.connectors.wandb import WandbBackend

            backend = WandbBackend("ent/p")
            for _ in backend.list_runs():
                seen += 1
                if seen % 200 == 0:  # what label() does after each page: read the page's histories
                    list(backend.fetch([], {}))
        took = time.perf_counter() - t0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{mode} {n} {seen} {took:.2f} {rss:.0f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, nargs=2, default=[400, 4000], metavar=("SMALL", "LARGE"))
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        return child(a.child[0], int(a.child[1]))
    peak = {}
    for mode in ("naive", "tracker-diag"):
        for n in a.runs:
            out = subprocess.run([sys.executable, __file__, "--child", mode, str(n)], capture_output=True, text=True,
                                 check=True).stdout.split()
            peak[mode, n] = float(out[-1])
            print(f"{mode:13s} {n:6d} runs listed in {float(out[-2]):6.2f} s, peak {peak[mode, n]:6.0f} MiB")
    small, large = a.runs
    grow = {m: peak[m, large] - peak[m, small] for m in ("naive", "tracker-diag")}
    print(f"memory growth from {small} to {large} runs: tracker-diag {grow['tracker-diag']:.0f} MiB, "
          f"naive loop {grow['naive']:.0f} MiB ({grow['naive'] / max(grow['tracker-diag'], 1):.1f}x)")


if __name__ == "__main__":
    main()
