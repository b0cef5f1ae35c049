"""Faults against a real `mlflow server`: does `tracker-diag label --write` hold up?

    python scripts/fault_harness.py                 # 200 runs per mode, every mode
    python scripts/fault_harness.py --runs 60 --modes cut,dead

For each fault mode: a fresh experiment of ``--runs`` runs (user tags, params and
descriptions; a third with accuracy curves, so a gap metric is written) on a real `mlflow
server` (sqlite, 127.0.0.1), the loopback fault proxy of tests/fault_proxy.py in front of it,
`tracker-diag label mlflow --write` run as a user runs it (a separate process, tracker-diag's
default retry policy), while a user edits descriptions through the server directly. Passes
are repeated until one exits 0 (at most 4). Then the store is checked against its snapshot:

- lost: runs without a current label at the end;
- edits lost: user edits made during the batch that are not in the description afterwards;
- user data: runs whose tags/params outside tracker-diag's keys changed;
- duplicates: runs with more than one diag_acc_gap point;
- half-written: runs whose diag_checked is "pending" at the end;
- first exit / first pass s: the first pass's exit code and time (a dead server: exit 2 fast).

Modes: ok, 429 (a storm: every request for the first 8 s, then 30 %; Retry-After 1), 503
(30 % of requests, Retry-After 1), slow (30 %, 2 s each), cut (30 % of answers cut mid-body),
dead (the proxy refuses all connections 3 s into the first pass, back for the next), kill (the
real server is killed with SIGKILL 3 s in and restarted 5 s later).

The direct database modes (sqlite-ok / postgresql-ok: the same user editing descriptions in the
database while `label --write` writes it; sqlite-kill / postgresql-kill: the labelling process
killed with SIGKILL inside a write transaction, then rerun; PostgreSQL is Debian's server,
started for the mode, with three times the runs) measure the SQL write path: edits lost,
half-written and partial at kill must be 0 there.

The W&B modes (wandb-ok, wandb-429, wandb-cut, wandb-dead) do the same with
`tracker-diag label wandb --write` and the real wandb SDK against the W&B test server of
tests/wandb_server.py behind the proxy, while a user edits notes on the server. W&B keeps no
metric history of a summary value (duplicates: n/a); half-written: a run whose regime tag and
summary diag_regime disagree.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
from fault_proxy import FaultProxy

NOTE = "mlflow.note.content"
MODES = ("ok", "429", "503", "slow", "cut", "dead", "kill", "sqlite-ok", "sqlite-kill", "postgresql-ok",
         "postgresql-kill", "wandb-ok", "wandb-429", "wandb-cut", "wandb-dead")
STORM_S = 8  # the 429 mode: every request refused this long, then 30 %


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db}",
                             "--host", "127.0.0.1", "--port", str(port), "--workers", "1"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2):
                return proc
        except OSError:
            time.sleep(0.3)
    raise SystemExit("mlflow server did not start")


def kill_and_restart(holder: list, db: Path, port: int) -> None:
    """SIGKILL the real server, and start it again on the same port 5 s later."""
    os.killpg(holder[0].pid, signal.SIGKILL)
    holder[0].wait()
    time.sleep(5)
    holder[0] = start_server(db, port)


def log_runs(client, exp: str, n: int, rng: np.random.Generator) -> list[str]:
    from mlflow.entities import Metric, Param, RunTag

    ids = []
    x = np.arange(40, dtype=float)
    for i in range(n):
        kind = i % 3
        curves = {"loss": 2 * np.exp(-x / 30) + 0.1 + rng.normal(0, 0.01, 40),
                  "val_loss": (2 * np.exp(-x / 33) + 0.2) if kind != 1 else 0.6 + 0.001 * (x - 10) ** 2}
        if kind == 2:
            curves |= {"accuracy": 0.9 - 0.5 * np.exp(-x / 30), "val_accuracy": 0.6 - 0.3 * np.exp(-x / 30)}
        run = client.create_run(exp, run_name=f"run-{i}", tags={"team": "vision", "note": f"user tag {i}"})
        rid = run.info.run_id
        client.log_batch(rid, metrics=[Metric(k, float(v), 1000 + s, s) for k, vs in curves.items()
                                       for s, v in enumerate(vs)],
                         params=[Param("lr", str(0.01 * (i % 5 + 1)))],
                         tags=[RunTag(NOTE, f"My notes for run {i}.\n<!-- tracker-diag --> a lone marker of mine")])
        client.set_terminated(rid, "FINISHED")
        ids.append(rid)
    return ids


def user_data(client, exp: str) -> dict:
    return {r.info.run_id: ({k: v for k, v in r.data.tags.items() if not k.startswith("diag_") and k != NOTE},
                            dict(r.data.params)) for r in client.search_runs([exp], max_results=5000)}


class Editor(threading.Thread):
    """A user editing descriptions (directly on the server) while tracker-diag writes."""

    def __init__(self, client, ids: list[str], seed: int):
        super().__init__(daemon=True)
        self.client, self.ids, self.rng = client, ids, random.Random(seed)
        self.stop = threading.Event()
        self.edits: dict[str, str] = {}

    def run(self) -> None:
        from tracker_diag.writeback import our_section

        while not self.stop.is_set():
            rid = self.rng.choice(self.ids)
            try:
                note = self.client.get_run(rid).data.tags.get(NOTE, "")
                span = our_section(note)
                user = note[:span[0]] if span else note
                text = f"{user.rstrip()}\nedit {len(self.edits)}\n\n"
                self.client.set_tag(rid, NOTE, text + (note[span[0]:span[1]] if span else ""))
                self.edits[rid] = text.rstrip()
            except Exception:  # noqa: BLE001 - the server may be down in this mode: try again
                time.sleep(0.2)
            time.sleep(0.05)


def one_mode(mode: str, n: int, seed: int) -> dict:
    from mlflow.tracking import MlflowClient

    tmp = Path(tempfile.mkdtemp(prefix="tracker-diag-faults-"))
    port = free_port()
    holder = [start_server(tmp / "mlflow.db", port)]  # the kill mode replaces it
    direct = f"http://127.0.0.1:{port}"
    client = MlflowClient(direct)
    exp_name = f"faults-{mode}"
    exp = client.create_experiment(exp_name)
    with contextlib.redirect_stdout(io.StringIO()):  # mlflow prints a "View run" line per run ended
        ids = log_runs(client, exp, n, np.random.default_rng(seed))
    before = user_data(client, exp)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["XDG_CACHE_HOME"] = str(tmp / "cache")
    out: dict = {"mode": mode, "runs": n}
    with FaultProxy("127.0.0.1", port, seed=seed) as proxy:
        editor = Editor(client, ids, seed)
        editor.start()
        passes = []
        for attempt in range(4):
            timers = []
            if attempt == 0 and mode in ("429", "503", "slow", "cut"):
                proxy.mode, proxy.rate, proxy.delay = mode, 1.0 if mode == "429" else 0.3, 2.0
                if mode == "429":
                    timers.append(threading.Timer(STORM_S, setattr, args=(proxy, "rate", 0.3)))
            if attempt == 0 and mode == "dead":
                timers.append(threading.Timer(3, proxy.kill))
            if attempt == 0 and mode == "kill":
                timers.append(threading.Timer(3, kill_and_restart, args=(holder, tmp / "mlflow.db", port)))
            for t in timers:
                t.start()
            t0 = time.monotonic()
            p = subprocess.run([sys.executable, "-m", "tracker_diag", "label", "mlflow", "--tracking-uri", proxy.url,
                                "-e", exp_name, "--write", "-q"], env=env, capture_output=True, text=True,
                               check=False)
            passes.append((p.returncode, time.monotonic() - t0))
            for t in timers:
                t.join()
            if mode == "dead":
                proxy.revive()
            proxy.mode = "ok"
            if p.returncode == 0:
                break
        editor.stop.set()
        editor.join()
    out.update(measure(client, exp, ids, before, editor, passes))
    os.killpg(holder[0].pid, signal.SIGTERM)
    holder[0].wait(timeout=30)
    return out


def measure(client, exp: str, ids: list[str], before: dict, editor: Editor, passes: list) -> dict:
    """The store checked against its snapshot (the columns of the table)."""
    from tracker_diag.model import ANALYZER_VERSION

    runs = {r.info.run_id: r for r in client.search_runs([exp], max_results=5000)}
    return {"first exit": passes[0][0], "first pass s": round(passes[0][1], 1), "passes": len(passes),
            "total s": round(sum(t for _, t in passes), 1),
            "lost": sum(r.data.tags.get("diag_version") != ANALYZER_VERSION or not r.data.tags.get("diag_checked")
                        for r in runs.values()),
            "half-written": sum(r.data.tags.get("diag_checked") == "pending" for r in runs.values()),
            "user data": sum(user_data(client, exp).get(rid) != before[rid] for rid in ids),
            "edits lost": sum(not runs[rid].data.tags.get(NOTE, "").startswith(text)
                              for rid, text in editor.edits.items()),
            "edits": len(editor.edits),
            "duplicates": sum(len(client.get_metric_history(rid, "diag_acc_gap")) > 1
                              for rid, r in runs.items() if "diag_acc_gap" in r.data.metrics)}


def writing(pid: int, journal: Path) -> bool:
    """Whether process ``pid`` has sqlite's rollback journal open: it is inside a write transaction."""
    try:
        return any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(journal) for fd in os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return False


def partial(uri: str) -> int:
    """Runs holding some of tracker-diag's seven tags but not all: a write cut in half."""
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    try:
        with engine.connect() as con:
            counts = con.exec_driver_sql("SELECT run_uuid, COUNT(*) FROM tags WHERE key IN ('diag_regime', "
                                         "'diag_confidence', 'diag_flags', 'diag_version', 'diag_checked') "
                                         "GROUP BY run_uuid").fetchall()
    finally:
        engine.dispose()
    return sum(n not in (0, 5) for _, n in counts)


def database_mode(mode: str, n: int, seed: int) -> dict:
    """A direct database URI (sqlite-…: a file; postgresql-…: Debian's server, started here):
    `label --write` on it while a user edits descriptions in it (…-ok), or the labelling
    process killed with SIGKILL inside a write transaction and rerun (…-kill; "partial at
    kill" counts the runs holding some of tracker-diag's tags but not all right after it)."""
    from mlflow.tracking import MlflowClient
    from pg_server import PostgresServer

    tmp = Path(tempfile.mkdtemp(prefix="tracker-diag-db-faults-"))
    with contextlib.ExitStack() as stack:
        if mode.startswith("postgresql"):
            uri = stack.enter_context(PostgresServer()).create("faults")
            n *= 3  # three pages of writes: a kill lands between or inside them
        else:
            uri = f"sqlite:///{tmp / 'mlflow.db'}"
        client = MlflowClient(uri)
        exp = client.create_experiment("faults")
        with contextlib.redirect_stdout(io.StringIO()):
            ids = log_runs(client, exp, n, np.random.default_rng(seed))
        before = user_data(client, exp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
        env["XDG_CACHE_HOME"] = str(tmp / "cache")
        editor = Editor(client, ids, seed)
        editor.start()
        passes, cut = [], "n/a"
        for attempt in range(4):
            t0 = time.monotonic()
            p = subprocess.Popen([sys.executable, "-m", "tracker_diag", "label", "mlflow", "--tracking-uri", uri,
                                  "-e", "faults", "--write", "-q"], env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
            if attempt == 0 and mode.endswith("-kill"):
                while p.poll() is None and not in_write(p.pid, uri, tmp):
                    time.sleep(0.001)
                p.kill()
                p.wait()
                cut = partial(uri)
            passes.append((p.wait(), time.monotonic() - t0))
            if passes[-1][0] == 0:
                break
        editor.stop.set()
        editor.join()
        return {"mode": mode, "runs": n, "partial at kill": cut, **measure(client, exp, ids, before, editor, passes)}


def in_write(pid: int, uri: str, tmp: Path) -> bool:
    """Whether the labelling process is inside a write transaction: it holds sqlite's rollback
    journal open, or (PostgreSQL) it has written some of its pages and not all."""
    if uri.startswith("sqlite"):
        return writing(pid, tmp / "mlflow.db-journal")
    import sqlalchemy as sa

    engine = sa.create_engine(uri)
    try:
        with engine.connect() as con:
            done = con.exec_driver_sql("SELECT COUNT(*) FROM tags WHERE key = 'diag_checked'").scalar()
    finally:
        engine.dispose()
    return bool(done)


def wandb_mode(mode: str, n: int, seed: int) -> dict:
    """One W&B fault mode: the real SDK in a `tracker-diag label wandb --write` process, the W&B
    test server (this process) behind the fault proxy, a user editing notes meanwhile."""
    from wandb_server import StoredRun, WandbTestServer

    from tracker_diag.model import ANALYZER_VERSION, REGIMES
    from tracker_diag.writeback import our_section

    fault = mode.removeprefix("wandb-")
    rng = np.random.default_rng(seed)
    tmp = Path(tempfile.mkdtemp(prefix="tracker-diag-wandb-faults-"))
    out: dict = {"mode": mode, "runs": n}
    x = np.arange(40, dtype=float)
    with WandbTestServer(entity="ent") as srv:
        runs = []
        for i in range(n):
            train = 2 * np.exp(-x / 30) + 0.1 + rng.normal(0, 0.01, 40)
            test = 2 * np.exp(-x / 33) + 0.2 if i % 3 != 1 else 0.6 + 0.001 * (x - 10) ** 2
            rows = [{"_step": s, "train/loss": float(a), "eval/loss": float(b)} for s, (a, b) in enumerate(zip(train, test))]
            runs.append(StoredRun(f"run-{i}", tags=["mine", f"user-{i}"], notes=f"My notes for run {i}.",
                                  config={"lr": 0.01 * (i % 5 + 1)}, history=rows,
                                  summary={"train/loss": float(train[-1]), "eval/loss": float(test[-1]), "mine": i}))
        srv.runs[("ent", "proj")] = runs
        before = {r.name: ([t for t in r.tags if t not in REGIMES], dict(r.config), r.summary.get("mine")) for r in runs}
        edits: dict[str, str] = {}
        stop = threading.Event()

        def editor() -> None:  # a user editing notes in the W&B UI while tracker-diag writes
            pick = random.Random(seed)
            while not stop.is_set():
                r = pick.choice(runs)
                span = our_section(r.notes)
                user = r.notes[:span[0]] if span else r.notes
                text = f"{user.rstrip()}\nedit {len(edits)}\n\n"
                r.notes = text + (r.notes[span[0]:span[1]] if span else "")
                edits[r.name] = text.rstrip()
                time.sleep(0.05)

        env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "MLFLOW_"))}
        env.update(WANDB_API_KEY="a" * 40, WANDB_ERROR_REPORTING="false", XDG_CACHE_HOME=str(tmp / "cache"),
                   TRACKER_DIAG_CALL_TIMEOUT="10")
        with FaultProxy("127.0.0.1", int(srv.url.rsplit(":", 1)[1]), seed=seed) as proxy:
            env["WANDB_BASE_URL"] = proxy.url
            user = threading.Thread(target=editor, daemon=True)
            user.start()
            passes = []
            for attempt in range(4):
                timers = []
                if attempt == 0 and fault in ("429", "cut"):
                    proxy.mode, proxy.rate = fault, 1.0 if fault == "429" else 0.3
                    if fault == "429":
                        timers.append(threading.Timer(STORM_S, setattr, args=(proxy, "rate", 0.3)))
                if attempt == 0 and fault == "dead":
                    timers.append(threading.Timer(3, proxy.kill))
                for t in timers:
                    t.start()
                t0 = time.monotonic()
                p = subprocess.run([sys.executable, "-m", "tracker_diag", "label", "wandb", "ent/proj", "--write", "-q"],
                                   env=env, capture_output=True, text=True, check=False)
                passes.append((p.returncode, time.monotonic() - t0))
                for t in timers:
                    t.cancel()
                    if t.is_alive():
                        t.join()
                if fault == "dead":
                    proxy.revive()
                proxy.mode = "ok"
                if p.returncode == 0:
                    break
            stop.set()
            user.join()
    out["first exit"], out["first pass s"] = passes[0][0], round(passes[0][1], 1)
    out["passes"], out["total s"] = len(passes), round(sum(t for _, t in passes), 1)
    out["lost"] = sum(r.summary.get("diag_version") != ANALYZER_VERSION for r in runs)
    out["half-written"] = sum(r.summary.get("diag_regime") not in r.tags for r in runs)
    out["user data"] = sum(([t for t in r.tags if t not in REGIMES], dict(r.config), r.summary.get("mine"))
                           != before[r.name] for r in runs)
    by_name = {r.name: r for r in runs}
    out["edits"], out["edits lost"] = len(edits), sum(not by_name[k].notes.startswith(v) for k, v in edits.items())
    out["duplicates"] = "n/a"
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    cols = ["mode", "runs", "first exit", "first pass s", "passes", "total s", "lost", "edits", "edits lost",
            "user data", "duplicates", "half-written", "partial at kill"]
    print(" | ".join(cols))
    print(" | ".join("---" for _ in cols))
    for mode in a.modes.split(","):
        run = (wandb_mode if mode.startswith("wandb-") else
               database_mode if mode.startswith(("sqlite-", "postgresql-")) else one_mode)
        row = run(mode, a.runs, a.seed)
        print(" | ".join(str(row.get(c, "n/a")) for c in cols), flush=True)


if __name__ == "__main__":
    main()
