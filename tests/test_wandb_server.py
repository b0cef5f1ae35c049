"""The W&B test server, driven by the real wandb SDK (the base of the W&B connector's tests)."""

import json
import urllib.request

import numpy as np
import pytest
from wandb_server import StoredRun


def test_real_sdk_lists_runs_one_request_per_page(wb):
    import wandb

    wb.runs[("ent", "proj")] = [StoredRun(f"r{i}", tags=["mine"], summary={"loss": 0.1 * i}, notes="n")
                                for i in range(7)]
    runs = list(wandb.Api(timeout=60).runs("ent/proj", per_page=3, lazy=False))
    assert [r.name for r in runs] == [f"r{i}" for i in range(7)]
    assert runs[3].tags == ["mine"] and runs[3].summary["loss"] == pytest.approx(0.3)
    ops = [q["operation"] for q in wb.requests]
    assert all(not q["errors"] for q in wb.requests), wb.requests
    assert ops.count("Runs") == 3  # 7 runs, 3 per page
    assert ops.count("Viewer") <= 1


def test_every_query_is_validated_against_the_schema(wb):
    body = json.dumps({"query": "query { project(name: \"p\", entityName: \"ent\") { runs { edges { node "
                                "{ name notAField } } } } }"}).encode()
    req = urllib.request.Request(wb.url + "/graphql", data=body, headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        answer = json.load(resp)
    assert answer["data"] is None and "notAField" in answer["errors"][0]["message"]
    assert wb.requests[-1]["errors"]


def _curves(kind, n=40):
    x = np.arange(n, dtype=float)
    if kind == "learning":
        return 2 * np.exp(-x / 80) + 0.1, 2 * np.exp(-x / 90) + 0.2
    if kind == "overfitting":
        return 2 * np.exp(-x / 5) + 0.01, 0.6 + 0.001 * (x - 10) ** 2
    return np.full(n, 2.3026), np.full(n, 2.3026)


def test_label_wandb_reads_each_key_in_one_request_per_run(wb, capsys):
    from helpers import run_cli

    kinds = {"a": "learning", "b": "overfitting", "c": "plateau"}
    for name, kind in kinds.items():
        train, test = _curves(kind)
        rows = []
        for i, (t, v) in enumerate(zip(train, test)):  # train and eval in separate log() calls
            rows.append({"_step": 2 * i, "train/loss": float(t), "train/global_step": i})
            rows.append({"_step": 2 * i + 1, "eval/loss": float(v), "train/global_step": i})
        wb.runs.setdefault(("ent", "proj"), []).append(
            StoredRun(name, summary={"train/loss": float(train[-1]), "eval/loss": float(test[-1]),
                                     "train/global_step": 39, "_step": 79}, history=rows, config={"lr": 0.1}))
    wb.runs[("ent", "proj")].append(StoredRun("live", state="running"))  # left alone without --include-running
    blown = [{"_step": i, "train/loss": 1.0 + i if i < 12 else "NaN", "eval/loss": 1.0 + i} for i in range(15)]
    wb.runs[("ent", "proj")].append(StoredRun("blew-up", state="crashed", history=blown,  # ended, so labelled
                                              summary={"train/loss": "NaN", "eval/loss": 15.0}))
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--json", "-"], capsys)
    rep = json.loads(out)
    assert code == 0 and {r["run_id"]: r["regime"] for r in rep["runs"]} == {**kinds, "blew-up": "diverging"}
    assert rep["runs"][0]["keys"] == {"train_loss": "train/loss", "test_loss": "eval/loss"}
    ops = [q["operation"] for q in wb.requests]
    assert ops.count("RunSampledHistory") == len(kinds) + 1  # one history request per run, every key in it
    assert all(not q["errors"] for q in wb.requests), wb.requests


def _log(srv, name, kind, **extra):
    train, test = _curves(kind)
    rows = []
    for i, (t, v) in enumerate(zip(train, test)):
        rows.append({"_step": 2 * i, "train/loss": float(t)})
        rows.append({"_step": 2 * i + 1, "eval/loss": float(v)})
    srv.runs.setdefault(("ent", "proj"), []).append(
        StoredRun(name, summary={"train/loss": float(train[-1]), "eval/loss": float(test[-1]), "user_key": 7},
                  history=rows, **extra))


def test_write_back_keeps_user_data_and_second_pass_costs_nothing(wb, capsys):
    from helpers import run_cli

    _log(wb, "a", "overfitting", tags=["mine", "learning"], notes="my notes")  # "learning" is the user's tag
    _log(wb, "b", "learning", tags=[])
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)
    assert code == 0, out
    a, b = wb.runs[("ent", "proj")]
    assert a.tags == ["mine", "learning", "overfitting"] and b.tags == ["learning"]
    assert a.summary["user_key"] == 7 and a.summary["diag_regime"] == "overfitting"
    assert a.summary["diag_version"] and a.summary["diag_checked"]
    assert a.summary["diag_confidence"] in ("high", "medium", "low")
    assert a.notes.startswith("my notes\n\n<!-- tracker-diag -->") and "overfitting" in a.notes
    ops = [q["operation"] for q in wb.requests]
    assert ops.count("UpsertBucket") == 2 and ops.count("RunSampledHistory") == 2  # one each per run
    assert ops.count("RunState") == 2 and ops.count("Run") == 0  # one state request a run, no Api.run besides
    assert all(not q["errors"] for q in wb.requests), wb.requests
    assert all(len(t) <= 64 for r in (a, b) for t in r.tags)

    wb.requests.clear()
    before = [(r.tags, dict(r.summary), r.notes) for r in (a, b)]
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--write"], capsys)
    ops = [q["operation"] for q in wb.requests]
    assert code == 0 and "2 skipped" in out
    assert "RunSampledHistory" not in ops and "UpsertBucket" not in ops  # decided from the listing alone
    assert [(r.tags, dict(r.summary), r.notes) for r in (a, b)] == before

    # new data turns b into an overfitting run: only the regime tag tracker_diag set is replaced
    train, _ = _curves("overfitting")
    _, test = _curves("overfitting")
    b.history = [{"_step": i, "train/loss": float(t), "eval/loss": float(v)} for i, (t, v) in enumerate(zip(train, test))]
    b.tags = ["learning", "user-tag"]
    code, _, _ = run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)
    assert code == 0 and b.tags == ["user-tag", "overfitting"] and b.summary["diag_regime"] == "overfitting"
    assert a.tags == ["mine", "learning", "overfitting"]  # unchanged run untouched


def test_429_is_survived_without_duplicate_writes_and_a_broken_run_fails_alone(wb, capsys):
    from helpers import run_cli

    for name in ("a", "b", "c"):
        _log(wb, name, "learning")
    wb.broken_runs.add("b")
    wb.throttle["UpsertBucket"] = 1  # the first write is answered 429 with Retry-After: 1
    code, out, err = run_cli(["label", "wandb", "ent/proj", "--write", "--json", "-"], capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 1 and rep["b"]["action"] == "failed" and "b" in err
    assert rep["a"]["action"] == rep["c"]["action"] == "written"
    applied = [q for q in wb.requests if q["operation"] == "UpsertBucket" and q.get("status") != 429]
    assert sum(q.get("status") == 429 for q in wb.requests) == 1
    assert sorted(q["variables"]["id"] for q in applied) == ["run-a", "run-c"]  # retried once, applied once
    a, b, c = wb.runs[("ent", "proj")]
    assert a.tags == c.tags == ["learning"] and b.tags == [] and "diag_regime" not in b.summary


def test_same_regimes_through_the_wandb_api_as_from_a_file(wb, corpus, tmp_path):
    from tracker_diag.batch import label
    from tracker_diag.connectors.files import FileBackend
    from tracker_diag.connectors.wandb import WandbBackend
    from tracker_diag.training import long_frame

    runs = corpus[:8]
    for r in runs:
        rows = {}
        for key, step, value in r.frame[["key", "step", "value"]].itertuples(index=False):
            v = float(value)
            rows.setdefault(int(step), {"_step": int(step)})[key] = v if np.isfinite(v) else str(v).replace(
                "nan", "NaN").replace("inf", "Infinity")
        wb.runs.setdefault(("ent", "proj"), []).append(
            StoredRun(r.run_id, display_name=r.run_name, history=[rows[s] for s in sorted(rows)],
                      summary={k: 0.0 for k in r.frame.key.unique()}))
    csv = tmp_path / "runs.csv"
    long_frame(runs)[["run_id", "run_name", "key", "step", "value"]].to_csv(csv, index=False)
    from_file = {r.ref.run_id: r.diagnosis.regime for r in label(FileBackend([str(csv)])).results}
    from_wandb = {r.ref.run_id: r.diagnosis.regime for r in label(WandbBackend("ent/proj")).results}
    assert from_wandb == from_file and len(set(from_file.values())) >= 5


def test_run_without_history_and_filters_passed_through(wb, capsys):
    from helpers import run_cli

    _log(wb, "a", "learning")
    wb.runs[("ent", "proj")].append(StoredRun("empty"))  # finished, never logged a metric
    train, test = _curves("overfitting")  # wandb.log({"train": {"loss": ...}}): nested keys, "train.loss"
    wb.runs[("ent", "proj")].append(StoredRun(
        "nested", history=[{"_step": i, "train.loss": float(t), "eval.loss": float(v)} for i, (t, v) in
                           enumerate(zip(train, test))],
        summary={"train": {"loss": float(train[-1])}, "eval": {"loss": float(test[-1])},
                 "samples": {"_type": "table-file", "path": "x.json"}}))
    wb.runs[("ent", "proj")].append(StoredRun(  # keys only in the history, not in the summary
        "unsummarised", history=[{"_step": i, "loss": float(t), "val_loss": float(v)} for i, (t, v) in
                                 enumerate(zip(train, test))]))
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--filter", '{"config.lr": {"$gt": 0.01}}', "--json", "-"],
                           capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 0 and rep["empty"]["regime"] == "insufficient_data" and rep["a"]["regime"] == "learning"
    assert rep["nested"]["regime"] == "overfitting"
    assert rep["nested"]["keys"] == {"train_loss": "train.loss", "test_loss": "eval.loss"}
    assert rep["unsummarised"]["regime"] == "overfitting"
    sent = [q["variables"]["filters"] for q in wb.requests if q["operation"] == "Runs"]
    assert sent and all(json.loads(f) == {"config.lr": {"$gt": 0.01}} for f in sent)
    assert run_cli(["label", "wandb", "ent/proj", "--filter", "{not json"], capsys)[0] == 2


# define_metric as wandb-core stores it in the run config (_wandb.m): MetricRecords keyed by
# proto field number, "1" name, "2" glob, "5" the 1-based index of the step metric's entry.
HF_AXES = [{"1": "train/global_step", "6": [3]}, {"2": "*", "5": 1, "6": [1, 3]}]
KERAS_AXES = [{"1": "epoch/epoch", "6": [3]}, {"2": "epoch/*", "5": 1, "6": [1, 3]}]


def _overfit_acc(n=30):
    x = np.arange(n, dtype=float)
    return 0.6 + 0.39 * (1 - np.exp(-x / 4)), 0.6 + 0.12 * (1 - np.exp(-x / 4))  # ends 27 points apart


def test_keys_are_read_on_the_run_step_metric(wb, capsys):
    from helpers import run_cli

    train_acc, test_acc = _overfit_acc()
    train, test = _curves("overfitting", 30)
    hf, keras, no_sync = [], [], []
    for i in range(30):  # HF Trainer: train and eval rows apart, train/global_step in both (step_sync)
        hf.append({"_step": 2 * i, "train/loss": float(train[i]), "train/accuracy": float(train_acc[i]),
                   "train/global_step": 50 * (i + 1)})
        hf.append({"_step": 2 * i + 1, "eval/loss": float(test[i]), "eval/accuracy": float(test_acc[i]),
                   "train/global_step": 50 * (i + 1)})
        keras.append({"_step": i, "epoch/loss": float(train[i]), "epoch/val_loss": float(test[i]),
                      "epoch/accuracy": float(train_acc[i]), "epoch/val_accuracy": float(test_acc[i]),
                      "epoch/epoch": i})
        # eval logged without the step metric (no step_sync): its steps lie between the train rows'
        no_sync.append({"_step": 3 * i, "train/loss": float(train[i]), "train/global_step": 10 * i})
        no_sync.append({"_step": 3 * i + 2, "eval/loss": float(test[i])})
    proj = wb.runs.setdefault(("ent", "proj"), [])
    proj.append(StoredRun("hf", history=hf, config={"_wandb": {"m": HF_AXES}, "lr": 1e-3},
                          summary={k: 0.0 for k in ("train/loss", "eval/loss", "train/accuracy", "eval/accuracy")}))
    proj.append(StoredRun("keras", history=keras, config={"_wandb": {"m": KERAS_AXES}},
                          summary={k: 0.0 for k in ("epoch/loss", "epoch/val_loss", "epoch/accuracy",
                                                    "epoch/val_accuracy")}))
    proj.append(StoredRun("nosync", history=no_sync, config={"_wandb": {"m": HF_AXES}},
                          summary={"train/loss": 0.0, "eval/loss": 0.0}))
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--json", "-"], capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 0 and {r["regime"] for r in rep.values()} == {"overfitting"}
    assert rep["hf"]["history"]["x_axis"] == dict.fromkeys(rep["hf"]["keys"].values(), "train/global_step")
    assert rep["keras"]["history"]["x_axis"]["epoch/val_loss"] == "epoch/epoch"
    gap_reason = next(x for x in rep["hf"]["reasons"] if "accuracy is" in x)
    assert "at step 1500" in gap_reason  # the last global step both reached, not a _step row number
    assert rep["hf"]["acc_gap"] == pytest.approx(train_acc[-1] - test_acc[-1], abs=1e-6)
    assert rep["keras"]["best_step"] < 30 and rep["hf"]["best_step"] % 50 == 0
    assert rep["hf"]["best_step"] == 50 * (rep["keras"]["best_step"] + 1)  # same curve, other axis
    # eval rows without the step metric sit between train rows: interpolated, 2/3 of the way to the next
    assert rep["nosync"]["history"]["x_axis"] == {"train/loss": "train/global_step", "eval/loss": "train/global_step"}
    assert rep["nosync"]["best_step"] == pytest.approx(10 * rep["keras"]["best_step"] + 20 / 3, abs=1e-3)
    ops = [q["operation"] for q in wb.requests]
    assert ops.count("RunSampledHistory") == 3 and all(not q["errors"] for q in wb.requests)


def test_step_axes_follow_wandb_rules():
    from tracker_diag.connectors.wandb_offline import StepAxes

    axes = StepAxes.from_config([*HF_AXES, {"1": "epoch/epoch"}, {"2": "epoch/*", "5": 3}])
    assert axes.for_key("eval/loss") == "train/global_step"
    assert axes.for_key("epoch/val_loss") == "epoch/epoch"  # the longer glob wins
    assert axes.for_key("train/global_step") is None and axes.for_key("epoch/epoch") is None  # own axes
    assert StepAxes.from_config(None).for_key("loss") is None
    assert StepAxes.from_config([{"1": "a", "5": 99}, "junk", {"2": "b*", "4": "s"}]).for_key("bx") == "s"


def test_long_histories_are_sampled_and_say_so_nan_and_inf_kept(wb, capsys, tmp_path):
    from helpers import run_cli

    from tracker_diag.report import from_json

    n = 2500  # more rows than one sampledHistory spec returns
    rows = [{"_step": i, "loss": float(2 * np.exp(-i / 800) + 0.1), "val_loss": float(2 * np.exp(-i / 900) + 0.2),
             "train/global_step": 8 * i} for i in range(n)]
    wb.runs.setdefault(("ent", "proj"), []).append(StoredRun("long", history=rows, summary={"loss": 0.1, "val_loss": 0.2},
                                                             config={"_wandb": {"m": HF_AXES}}))
    short = [{"_step": i, "loss": 1.0 / (i + 1), "val_loss": 1.0 / (i + 1) + 0.1} for i in range(20)]
    # Non-finite values come back as strings: wandb-core rejects a bare NaN token in an answer
    # ("invalid character 'N'"), so a server that works with the SDK cannot send one
    short += [{"_step": 20, "loss": "NaN", "val_loss": "Infinity"}, {"_step": 21, "loss": "NaN", "val_loss": "-Infinity"}]
    wb.runs[("ent", "proj")].append(StoredRun("blown", history=short, summary={"loss": 0.1, "val_loss": 0.2}))
    html = tmp_path / "r.html"
    code, out, err = run_cli(["label", "wandb", "ent/proj", "--json", "-", "--report", str(html)], capsys)
    rep = {r["run_id"]: r for r in json.loads(out[out.index("{"):out.rindex("}") + 1])["runs"]}
    assert code == 0, err
    assert rep["long"]["history"]["sampled"] == ["loss", "val_loss"]
    assert rep["long"]["history"]["points"] == {"loss": 1000, "val_loss": 1000}
    assert rep["long"]["history"]["rows"] == {"loss": n, "val_loss": n}  # from the listing's historyKeys
    assert rep["long"]["regime"] == "learning" and rep["long"]["history"]["x_axis"]["loss"] == "train/global_step"
    (res,) = [r for r in from_json(json.loads(out[out.index("{"):out.rindex("}") + 1])).results
              if r.ref.run_id == "long"]
    assert res.ref.extra["history"]["sampled"] == ["loss", "val_loss"]  # survives a saved report
    assert rep["blown"]["history"]["sampled"] == [] and rep["blown"]["history"]["points"]["loss"] == 22
    assert rep["blown"]["regime"] == "diverging" and "nonfinite" in rep["blown"]["flags"]
    assert f"sampled: loss (1000 of {n} rows), val_loss (1000 of {n} rows)" in html.read_text()
    code, out, _ = run_cli(["label", "wandb", "ent/proj"], capsys)
    assert "1 run(s) have longer histories than W&B serves whole" in out


def test_history_reads_are_concurrent_and_bounded(wb, capsys):
    from helpers import run_cli

    for i in range(9):
        _log(wb, f"r{i}", "learning")
    wb.delay["RunSampledHistory"] = 0.3
    code, out, _ = run_cli(["label", "wandb", "ent/proj", "--workers", "3", "--json", "-"], capsys)
    assert code == 0 and [r["run_id"] for r in json.loads(out)["runs"]] == [f"r{i}" for i in range(9)]  # in order
    assert wb.max_in_flight["RunSampledHistory"] == 3
    wb.max_in_flight.clear()
    assert run_cli(["label", "wandb", "ent/proj", "--workers", "1", "-q"], capsys)[0] == 0
    assert wb.max_in_flight["RunSampledHistory"] == 1


def test_a_run_with_an_over_long_tag_is_reported_not_stripped(wb, capsys):
    from helpers import run_cli

    _log(wb, "ok", "learning", tags=["mine"])
    _log(wb, "legacy", "learning", tags=["mine", "x" * 70])  # from a time the server allowed it
    code, out, err = run_cli(["label", "wandb", "ent/proj", "--write", "--json", "-"], capsys)
    rep = {r["run_id"]: r for r in json.loads(out)["runs"]}
    assert code == 1 and rep["legacy"]["action"] == "failed" and "64 characters" in rep["legacy"]["error"] and "legacy" in err
    ok, legacy = wb.runs[("ent", "proj")]
    assert ok.tags == ["mine", "learning"] and legacy.tags == ["mine", "x" * 70]  # nothing lost, nothing half-written
    assert "diag_regime" not in legacy.summary and legacy.notes == ""
    sent = [t for q in wb.requests if q["operation"] == "UpsertBucket" for t in q["variables"].get("tags") or []]
    assert sent and all(len(t) <= 64 for t in sent)


def test_connection_and_credential_errors_are_one_line_and_never_show_the_key(wb, capsys, monkeypatch, tmp_path):
    from helpers import run_cli

    _log(wb, "a", "learning")
    wb.api_key = "b" * 40
    code, out, err = run_cli(["label", "wandb", "ent/proj"], capsys)  # the fixture's key is "a" * 40
    assert code == 2 and err.startswith("error: W&B") and "Traceback" not in err + out
    assert "a" * 40 not in out + err and "b" * 40 not in out + err
    assert any(q.get("status") == 401 for q in wb.requests) and len(err.strip().splitlines()) == 1

    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc to fall back on
    code, out, err = run_cli(["label", "wandb", "ent/proj"], capsys)
    assert code == 2 and "API key" in err and "Traceback" not in err + out

    monkeypatch.setenv("WANDB_API_KEY", "b" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    code, out, err = run_cli(["label", "wandb", "ent/proj"], capsys)
    assert code == 2 and "cannot reach the W&B server at http://127.0.0.1:9" in err and "b" * 40 not in err


def test_project_from_the_environment(wb, capsys, monkeypatch):
    from helpers import run_cli

    _log(wb, "a", "learning")
    monkeypatch.setenv("WANDB_PROJECT", "proj")  # WANDB_ENTITY=ent from the fixture
    code, out, _ = run_cli(["label", "wandb", "--json", "-"], capsys)
    assert code == 0 and json.loads(out)["runs"][0]["regime"] == "learning"
    assert run_cli(["label", "wandb", "proj", "-q"], capsys)[0] == 0  # the entity from WANDB_ENTITY
    monkeypatch.delenv("WANDB_ENTITY")
    code, _, err = run_cli(["label", "wandb", "-q"], capsys)
    assert code == 2 and "ENTITY/PROJECT" in err


def test_attach_plots_uploads_only_for_changed_runs(wb, capsys):
    from helpers import run_cli

    _log(wb, "a", "overfitting")
    _log(wb, "b", "learning")
    code, _, err = run_cli(["label", "wandb", "ent/proj", "--write", "--attach-plots", "-q"], capsys)
    assert code == 0, err
    a, b = wb.runs[("ent", "proj")]
    assert a.files["tracker_diag/diagnosis.png"].startswith(b"\x89PNG") and b.files["tracker_diag/diagnosis.png"]
    assert a.tags == ["overfitting"] and b.tags == ["learning"]
    first = dict(b.files)

    wb.requests.clear()
    assert run_cli(["label", "wandb", "ent/proj", "--write", "--attach-plots", "-q"], capsys)[0] == 0
    assert not any(q["operation"] in ("CreateRunFiles", "(upload)") for q in wb.requests)  # nothing changed

    train, test = _curves("overfitting")  # b now overfits: only its plot is uploaded again
    b.history = [{"_step": i, "train/loss": float(t), "eval/loss": float(v)} for i, (t, v) in enumerate(zip(train, test))]
    wb.requests.clear()
    assert run_cli(["label", "wandb", "ent/proj", "--write", "--attach-plots", "-q"], capsys)[0] == 0
    uploads = [q["variables"]["path"] for q in wb.requests if q["operation"] == "(upload)"]
    assert uploads == ["/upload/ent/proj/b/tracker_diag/diagnosis.png"] and b.files != first
    assert b.tags == ["overfitting"] and all(not q["errors"] for q in wb.requests)


def test_a_users_own_regime_tag_is_never_removed_and_marker_look_alikes_in_notes_stay(wb, capsys):
    """Issue 11, points 3 and 11, through the real SDK: the user tagged the run 'overfitting'
    by hand before any label, and wrote a lone opening marker in the notes."""
    from helpers import run_cli

    from tracker_diag.writeback import BEGIN

    notes = f"{BEGIN} my heading\nmy text after it"
    _log(wb, "a", "overfitting", tags=["overfitting"], notes=notes)
    assert run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)[0] == 0
    (a,) = wb.runs[("ent", "proj")]
    assert a.tags == ["overfitting"] and a.summary["diag_regime"] == "overfitting"
    train, test = _curves("learning")  # new data: the run is now learning
    a.history = [{"_step": i, "train/loss": float(t), "eval/loss": float(v)} for i, (t, v) in enumerate(zip(train, test))]
    assert run_cli(["label", "wandb", "ent/proj", "--write", "-q"], capsys)[0] == 0
    assert a.summary["diag_regime"] == "learning"
    assert a.tags == ["overfitting", "learning"]  # the user's tag stays; the one tracker-diag added is learning
    assert a.notes.startswith(notes + "\n\n" + BEGIN) and a.notes.count("tracker-diag: learning") == 1


def test_report_of_a_wandb_json_report_reads_the_curves_again(wb, capsys, tmp_path):
    """``report labels.json`` of a W&B report fetches runs it never listed (it failed with
    "run … is not in the given source": fetch only knew the runs list_runs had cached)."""
    import re

    from helpers import run_cli

    for name, kind in (("a", "learning"), ("b", "overfitting")):
        _log(wb, name, kind)
    code, _, _ = run_cli(["label", "wandb", "ent/proj", "-q", "--json", str(tmp_path / "w.json"),
                          "--report", str(tmp_path / "live.html")], capsys)
    assert code == 0
    listings = [q["operation"] for q in wb.requests].count("Runs")
    code, out, err = run_cli(["report", str(tmp_path / "w.json"), "-o", str(tmp_path / "again.html")], capsys)
    assert code == 0, err
    assert "2 runs" in out
    live, again = (tmp_path / "live.html").read_text(), (tmp_path / "again.html").read_text()
    curves = r'<polyline class="te" points="([^"]*)"'
    assert len(re.findall(curves, again)) == 2 and re.findall(curves, again) == re.findall(curves, live)
    assert [q["operation"] for q in wb.requests].count("Runs") == listings  # no listing: each run read by id
    assert all(not q["errors"] for q in wb.requests), wb.requests
    rep = json.loads((tmp_path / "w.json").read_text())
    rep["runs"][0]["run_id"] = "deleted-since"
    (tmp_path / "w.json").write_text(json.dumps(rep))
    code, _, err = run_cli(["report", str(tmp_path / "w.json"), "-o", str(tmp_path / "gone.html")], capsys)
    assert code == 0 and "warning: drawn without curves:" in err and "deleted-since" in err
    assert len(re.findall(curves, (tmp_path / "gone.html").read_text())) == 1


def test_a_wandb_server_that_dies_mid_batch_stops_it_in_under_a_minute(wb, monkeypatch):
    """Every SDK call runs under a deadline and the circuit breaker: the SDK's own retry loop
    waited a minute per call (four minutes for this batch) on a server that was gone."""
    import time

    from fault_proxy import FaultProxy

    from tracker_diag.batch import label
    from tracker_diag.connectors import build

    for i in range(24):
        _log(wb, f"r{i}", "learning")
    monkeypatch.setenv("TRACKER_DIAG_CALL_TIMEOUT", "5")
    with FaultProxy("127.0.0.1", int(wb.url.rsplit(":", 1)[1])) as proxy:
        monkeypatch.setenv("WANDB_BASE_URL", proxy.url)
        seen = []

        def kill_after_six(result):
            seen.append(result)
            if len(seen) == 6:
                proxy.kill()

        t0 = time.monotonic()
        batch = label(build("wandb", {"project": "ent/proj"}), write=True, page_size=8, progress=kill_after_six)
        elapsed = time.monotonic() - t0
    written = sum(r.action == "written" for r in batch.results)
    assert batch.stopped and "stopped answering" in batch.stopped and elapsed < 60, (batch.stopped, elapsed)
    assert written >= 6 and batch.not_attempted > 0 and written + batch.failed == len(batch.results)
    stored = {r.name: r for r in wb.runs[("ent", "proj")]}
    assert sum("diag_regime" in stored[r.ref.run_id].summary for r in batch.results) == written  # nothing half-done


def test_state_is_read_from_the_server_every_time(wb):
    """``Api.run`` hands back the run object it returned before (and ``load(force=True)`` keeps
    its summary): a write retried after a cut answer planned from that stale copy and wrote
    the user's newer notes over. state() reads the server each time."""
    from tracker_diag.connectors import build

    _log(wb, "a", "learning", notes="first notes", tags=["mine"])
    backend = build("wandb", {"project": "ent/proj"})
    (ref,) = list(backend.list_runs())
    first = backend.state(ref)
    stored = wb.runs[("ent", "proj")][0]
    stored.notes, stored.tags = "the user's edit", ["mine", "theirs"]
    stored.summary = {**stored.summary, "diag_regime": "plateau"}
    again = backend.state(ref)
    assert first.notes == "first notes" and again.notes == "the user's edit"
    assert again.labels == ("mine", "theirs") and again.keys.get("diag_regime") == "plateau"
