"""W&B offline run files written by the real wandb SDK (WANDB_MODE=offline), read back."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tracker_diag.analyze import analyze_frame
from tracker_diag.connectors.wandb_offline import read_offline_run
from tracker_diag.training import long_frame

WRITER = textwrap.dedent("""
    import json, sys, wandb
    spec = json.load(open(sys.argv[1]))
    for run in spec:
        r = wandb.init(project="offline-test", name=run["name"], config={"lr": run["lr"]})
        for step, row in sorted(run["rows"].items(), key=lambda kv: int(kv[0])):
            r.log({k: float(v) for k, v in row.items()}, step=int(step))
        r.finish()
""")


def write_offline(tmp_path, runs):
    """runs: [{"name", "lr", "rows": {step: {key: value}}}] -> offline run dirs, by the real SDK."""
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(runs))
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
           "WANDB_ERROR_REPORTING": "false", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", WRITER, str(spec)], env=env, check=True, timeout=300,
                   capture_output=True)
    return sorted((tmp_path / "wandb").glob("offline-run-*"))


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory, corpus):
    """The trained corpus logged through the real SDK, one W&B run per corpus run."""
    tmp = tmp_path_factory.mktemp("wb")
    runs = []
    for r in corpus[:8]:
        rows = {}
        for key, step, value in r.frame[["key", "step", "value"]].itertuples(index=False):
            rows.setdefault(int(step), {})[key] = float(value)  # NaN/inf travel as JSON NaN/Infinity
        runs.append({"name": r.run_name, "lr": r.params["lr"], "rows": rows})
    dirs = write_offline(tmp, runs)
    by_name = {read_offline_run(d, []).run_name: d for d in dirs}
    return [by_name[r.run_name] for r in corpus[:8]]  # in corpus order (dir names sort by time, then at random)


def test_same_regimes_from_a_file_mlflow_and_wandb(new_store, corpus, corpus_runs, tmp_path):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    from tracker_diag.batch import label
    from tracker_diag.connectors.files import FileBackend
    from tracker_diag.connectors.mlflow import MlflowBackend

    runs = corpus[:8]
    csv = tmp_path / "runs.csv"
    long_frame(runs)[["run_id", "run_name", "key", "step", "value"]].to_csv(csv, index=False)
    from_file = {r.ref.run_name: r.diagnosis.regime for r in label(FileBackend([str(csv)])).results}

    uri = new_store("m.db")
    client = MlflowClient(uri)
    exp = client.create_experiment("same")
    for r in runs:
        run = client.create_run(exp, run_name=r.run_name)
        ms = [Metric(k, float(v), 1000 + int(s), int(s)) for k, s, v in r.frame[["key", "step", "value"]].itertuples(index=False)]
        for i in range(0, len(ms), 1000):
            client.log_batch(run.info.run_id, metrics=ms[i:i + 1000])
        client.set_terminated(run.info.run_id, "FINISHED")
    from_mlflow = {r.ref.run_name: r.diagnosis.regime for r in label(MlflowBackend.open(uri, experiments=["same"])).results}

    backend = FileBackend([str(p) for p in corpus_runs])
    from_wandb = {r.ref.run_name: r.diagnosis.regime for r in label(backend).results}
    assert backend.warnings == []
    assert from_file == from_mlflow == from_wandb
    assert len(set(from_file.values())) >= 5  # the corpus covers the regimes


def test_values_nan_and_names_survive_the_round_trip(corpus, corpus_runs):
    w = []
    got = read_offline_run(corpus_runs[0], w)
    assert w == [] and got.run_name == corpus[0].run_name and got.config["lr"] == pytest.approx(corpus[0].params["lr"])
    frame = corpus[0].frame
    for key in frame.key.unique():
        want = frame[frame.key == key].sort_values("step")
        have = sorted((s, v) for k, s, v in got.rows if k == key)
        np.testing.assert_array_equal([s for s, _ in have], want.step.to_numpy())
        np.testing.assert_allclose([v for _, v in have], want.value.to_numpy(), equal_nan=True)


def test_truncated_and_corrupt_files_keep_what_came_before(corpus_runs, tmp_path, capsys):
    from tracker_diag.cli import main

    src = next(corpus_runs[1].glob("*.wandb"))
    data = src.read_bytes()
    whole = read_offline_run(src, [])
    cut = tmp_path / "cut.wandb"
    cut.write_bytes(data[: len(data) * 2 // 3])
    warnings = []
    part = read_offline_run(cut, warnings)
    assert warnings and "truncated" in warnings[0]
    assert 0 < len(part.rows) < len(whole.rows) and part.rows == whole.rows[: len(part.rows)]
    bad = tmp_path / "bad.wandb"
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0xFF
    bad.write_bytes(bytes(flipped))
    warnings = []
    part = read_offline_run(bad, warnings)
    assert "checksum" in warnings[0] and part.rows == whole.rows[: len(part.rows)]
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", str(cut), "--json", "-"])
    out = capsys.readouterr()
    assert exc.value.code == 0 and "warning:" in out.err and "truncated" in out.err
    assert json.loads(out.out)["runs"][0]["run_name"] == whole.run_name
    (tmp_path / "junk.wandb").write_bytes(b"not a wandb file")
    with pytest.raises(SystemExit) as exc:
        main(["diagnose", str(tmp_path / "junk.wandb")])
    assert exc.value.code == 2 and "not a W&B run file" in capsys.readouterr().err


def test_analyze_frame_on_an_offline_run(corpus, corpus_runs):
    from tracker_diag.connectors.wandb_offline import offline_frame

    for i in (2, 3):
        got = analyze_frame(offline_frame([str(corpus_runs[i])], []))
        want = analyze_frame(corpus[i].frame)
        assert got["regime"] == want["regime"] and got["keys"] == want["keys"]


def test_label_wandb_offline_dir(corpus, corpus_runs, capsys):
    from helpers import run_cli

    root = corpus_runs[0].parent
    code, out, _ = run_cli(["label", "wandb", "--offline", str(root), "--json", "-"], capsys)
    rep = json.loads(out)
    assert code == 0 and {r["run_name"] for r in rep["runs"]} == {r.run_name for r in corpus[:8]}
    assert run_cli(["label", "wandb", "--offline", str(root), "--write"], capsys)[0] == 2


STEP_WRITER = textwrap.dedent("""
    import json, sys, wandb
    train_acc, test_acc, train, test = json.load(open(sys.argv[1]))
    r = wandb.init(project="offline-test", name="hf-like")
    r.define_metric("train/global_step")
    r.define_metric("*", step_metric="train/global_step", step_sync=True)  # what HF's WandbCallback does
    r.define_metric("epoch/epoch")
    r.define_metric("epoch/*", step_metric="epoch/epoch")  # what Keras' WandbMetricsLogger does
    for i in range(len(train)):
        r.log({"train/loss": train[i], "train/accuracy": train_acc[i], "train/global_step": 50 * (i + 1)})
        r.log({"eval/loss": test[i], "eval/accuracy": test_acc[i]})  # its own row; step_sync adds the step
        r.log({"epoch/val_loss": test[i], "epoch/epoch": i})
    r.finish()
""")


def _sdk_step_metric(path, key: str) -> str:
    """The step metric the SDK's own (last) metric record gives ``key``: the SDK's decision, not
    StepAxes' rule (the records framed by our reader, decoded by the SDK's protobuf)."""
    from wandb.proto import wandb_internal_pb2 as pb

    from tracker_diag.connectors.wandb_offline import records

    found = ""
    for data in records(path, []):
        rec = pb.Record()
        rec.ParseFromString(data)
        if rec.WhichOneof("record_type") == "metric" and rec.metric.name == key:
            found = rec.metric.step_metric
    return found


def _wandb_before(version: str) -> bool:
    import wandb
    from packaging.version import Version

    return Version(wandb.__version__) < Version(version)


def test_offline_keys_on_their_step_metric(tmp_path):
    """define_metric as HF Trainer and Keras call it: the curves are read on train/global_step
    and epoch/epoch, not on the _step row counter (3 rows per epoch here)."""
    from tracker_diag.batch import label
    from tracker_diag.connectors.files import FileBackend

    x = np.arange(30, dtype=float)
    curves = [0.6 + 0.39 * (1 - np.exp(-x / 4)), 0.6 + 0.12 * (1 - np.exp(-x / 4)),
              2 * np.exp(-x / 5) + 0.01, 0.6 + 0.001 * (x - 10) ** 2]
    spec = tmp_path / "curves.json"
    spec.write_text(json.dumps([c.tolist() for c in curves]))
    env = {"WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
           "WANDB_ERROR_REPORTING": "false", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    subprocess.run([sys.executable, "-c", STEP_WRITER, str(spec)], env=env, check=True, timeout=300,
                   capture_output=True)
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir, [])
    steps = {k: sorted({s for key, s, _ in run.rows if key == k}) for k in ("train/loss", "eval/loss", "epoch/val_loss")}
    assert steps["train/loss"] == steps["eval/loss"] == [50.0 * (i + 1) for i in range(30)]
    # wandb 0.31 writes only the globs and W&B takes the longer one (epoch/* -> epoch/epoch);
    # wandb 0.23 wrote its own binding of each key, the first glob (* -> train/global_step): kept
    axis = _sdk_step_metric(next(run_dir.glob("*.wandb")), "epoch/val_loss") or "epoch/epoch"
    assert axis == "epoch/epoch" or (axis == "train/global_step" and _wandb_before("0.24"))
    assert steps["epoch/val_loss"] == ([float(i) for i in range(30)] if axis == "epoch/epoch"
                                       else [50.0 * (i + 1) for i in range(30)])
    (res,) = label(FileBackend([str(run_dir)]), keys={"train_loss": "train/loss", "test_loss": "eval/loss",
                                                      "train_acc": "train/accuracy", "test_acc": "eval/accuracy"}).results
    d = res.diagnosis
    assert d.regime == "overfitting" and d.best_step == 50 * (int(np.argmin(curves[3])) + 1)
    assert d.acc_gap == pytest.approx(curves[0][-1] - curves[1][-1], abs=1e-6)
    assert any("at step 1500" in r for r in d.reasons)  # the last global step, not row 88
