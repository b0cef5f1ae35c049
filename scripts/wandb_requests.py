"""Requests sent to a W&B-compatible server for a 500-run project: tracker-diag vs the naive way.

    python scripts/wandb_requests.py [--runs 500] [--latency-ms 30]

Runs the real wandb SDK against the test server of tests/wandb_server.py (127.0.0.1) and
counts the GraphQL operations it receives: `label wandb --write`, then a second unchanged
pass, then the naive loop (`run.history(keys=[k])` per key, `run.update()` per run).
Every request is answered after --latency-ms, as a remote server would be, so the wall
times show what bounded concurrency buys (tracker-diag with 1 and with 4 requests in flight).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from wandb_server import StoredRun, WandbTestServer


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--latency-ms", type=float, default=30.0, help="server time per request (default 30)")
    a = p.parse_args()
    rng = np.random.default_rng(0)
    with WandbTestServer(entity="ent") as srv:
        runs = []
        for i in range(a.runs):
            tau = rng.uniform(20, 400)
            x = np.arange(100)
            rows = []
            for s in x:  # train and eval logged in separate calls, as trainers do
                rows.append({"_step": 2 * int(s), "train/loss": float(2 * np.exp(-s / tau) + 0.1)})
                rows.append({"_step": 2 * int(s) + 1, "eval/loss": float(2 * np.exp(-s / tau) + 0.3)})
            runs.append(StoredRun(f"run{i:04d}", history=rows, summary={"train/loss": 0.1, "eval/loss": 0.3}))
        srv.runs[("ent", "proj")] = runs
        srv.delay["*"] = a.latency_ms / 1000
        os.environ.update(WANDB_BASE_URL=srv.url, WANDB_API_KEY="a" * 40, WANDB_ERROR_REPORTING="false",
                          WANDB_ENTITY="ent", WANDB_SILENT="true")
        from tracker_diag.batch import label
        from tracker_diag.connectors.wandb import WandbBackend

        def measure(what, fn):
            srv.requests.clear()
            t0 = time.perf_counter()
            fn()
            ops = Counter(q["operation"] for q in srv.requests)
            took = time.perf_counter() - t0
            print(f"{what:42s} {sum(ops.values()):6d} requests in {took:6.1f} s  {dict(ops)}")
            return sum(ops.values()), took

        def fresh():
            for r in runs:
                r.summary = {"train/loss": 0.1, "eval/loss": 0.3}
                r.tags, r.notes = [], ""

        print(f"{a.runs} runs, {a.latency_ms:g} ms per request")
        _, serial = measure("tracker-diag, dry run, 1 request in flight",
                            lambda: label(WandbBackend("ent/proj", workers=1)))
        _, parallel = measure("tracker-diag, dry run, 4 requests in flight",
                              lambda: label(WandbBackend("ent/proj", workers=4)))
        fresh()
        ours, ours_t = measure("tracker-diag label wandb --write", lambda: label(WandbBackend("ent/proj"), write=True))
        again, again_t = measure("second, unchanged pass", lambda: label(WandbBackend("ent/proj"), write=True))

        def naive():
            import wandb

            api = wandb.Api(timeout=60)
            for run in api.runs("ent/proj", per_page=50, lazy=False):
                for key in ("train/loss", "eval/loss"):  # one key per call: a multi-key call is empty
                    run.history(keys=[key], pandas=False)
                run.summary["naive_label"] = "x"  # what a naive labeller writes, one run at a time
                run.update()

        theirs, theirs_t = measure("naive: history per key, update per run", naive)
    print(f"tracker-diag sends {ours} requests against {theirs} ({theirs / ours:.1f}x fewer) and takes "
          f"{ours_t:.1f} s against {theirs_t:.1f} s ({theirs_t / ours_t:.1f}x); the second pass sends {again} "
          f"({again_t:.1f} s); 4 reads in flight instead of 1: {serial / parallel:.1f}x faster")


if __name__ == "__main__":
    main()
